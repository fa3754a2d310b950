"""Benchmark of the cache plugin. Prints figures; asserts nothing.

    python bench/bench_cache.py [--rounds 15] [--redis redis://127.0.0.1:6379/15]

1. L1 hit: ``provider.list_models()`` through the layered provider (cache
   layer only) answered from L1, vs a bare ``requests.Session().get`` of a
   tiny JSON body from an ``http.server`` on 127.0.0.1 in this process.
   Interleaved rounds; medians of per-call means. Target: < 2 %.
2. L2 (Redis) hit vs a bare redis-py ``GET`` of the same stored bytes, for a
   300-model list: (a) L1 holds the same version (the usual case after the
   60 s L1 TTL: the payload is not parsed again), (b) L1 empty (payload
   parsed and validated). Target: within 1.5x.
3. 100 threads making the same cold call at once -> upstream calls
   (in-process single-flight; memory L2, then Redis L2 with the fleet lock).
4. A simulated day: 20 cache instances (one per "process") sharing one Redis
   namespace, each with its own counting upstream. SIMULATED: the instances
   run in this one process, in turn, on one fake clock stepped a minute at a
   time for 24 h; each instance runs its due refreshes and serves one
   ``list_models`` call per minute. Redis and the cache code are real.
   Upstream ``/models`` calls are counted, against the same fleet without
   a shared L2 (L1 only, 60 s).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.support.fake_provider

import requests
from llmrelay.core import LayeredProvider, ModelInfo, ModelList, Pricing
from llmrelay.plugins.cache import CacheSettings
from llmrelay.plugins.cache.backends import MemoryBackend
from llmrelay.plugins.cache.keys import KeyBuilder
from llmrelay.plugins.cache.layer import CacheLayer

from tests.support.fake_provider import FakeProvider, FakeSettings

BODY = json.dumps({"data": [{"id": "fake/small"}]}).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without this, Nagle + delayed ACK add 40 ms per call.
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *args: Any) -> None:
        pass


def model_list(count: int = 300) -> ModelList:
    """A model list the size of OpenRouter's (about 300 models with prices)."""
    return ModelList(
        provider="fake",
        models=[
            ModelInfo(
                id=f"vendor{i % 40}/model-{i}",
                name=f"Model {i}",
                description="A model. " * 20,
                context_length=128_000,
                input_modalities=["text", "image"],
                output_modalities=["text"],
                supported_parameters=["tools", "temperature", "top_p", "max_tokens"],
                pricing=Pricing(prompt="0.0000025", completion="0.00001", request="0", image="0.003613"),
            )
            for i in range(count)
        ],
    )


def layer_for(
    settings: dict[str, Any],
    backend: Any,
    *,
    namespace: str = "bench",
    clock: Callable[[], float] = time.time,
    upstream: FakeProvider | None = None,
) -> tuple[LayeredProvider, CacheLayer, FakeProvider]:
    data = {"background": False, "warm_up": [], "namespace": namespace, **settings}
    cache_settings = CacheSettings.model_validate(data)
    fake = upstream or FakeProvider(FakeSettings(api_key="sk-bench-0000000000000000"))
    keys = KeyBuilder(namespace=namespace, provider="fake", base_url="", api_key="sk-bench-0000000000000000")
    layer = CacheLayer(cache_settings, keys=keys, provider_name="fake", backend=backend, clock=clock)
    return LayeredProvider(fake, [layer]), layer, fake


def per_call(fn: Callable[[], Any], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def interleaved(rounds: int, cases: dict[str, tuple[Callable[[], Any], int]]) -> dict[str, float]:
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for fn, calls in cases.values():  # warm every path first
        per_call(fn, max(1, calls // 10))
    for _ in range(rounds):
        for name, (fn, calls) in cases.items():
            samples[name].append(per_call(fn, calls))
    return {name: statistics.median(values) for name, values in samples.items()}


def us(seconds: float) -> str:
    return f"{seconds * 1e6:9.2f} us"


# --------------------------------------------------------------------------- 1. L1 hit


def bench_l1(rounds: int) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/models"
    session = requests.Session()
    provider, _, fake = layer_for({}, None)
    models = model_list()
    fake.script = lambda op, req: models if op == "list_models" else None
    provider.list_models()
    assert provider.list_models().meta.cache == "hit"
    medians = interleaved(
        rounds,
        {
            "bare requests.Session().get, local server": (lambda: session.get(url).content, 200),
            "cache L1 hit, provider.list_models()": (provider.list_models, 5000),
        },
    )
    bare = medians["bare requests.Session().get, local server"]
    hit = medians["cache L1 hit, provider.list_models()"]
    print("1. L1 hit latency (300-model list), medians of", rounds, "interleaved rounds")
    for name, value in medians.items():
        print(f"   {name:45s} {us(value)}")
    print(f"   L1 hit / bare requests call = {hit / bare * 100:.2f} %   (target < 2 %)")
    server.shutdown()
    session.close()
    provider.close()


# --------------------------------------------------------------------------- 2. L2 Redis hit


def bench_l2(rounds: int, url: str) -> None:
    import redis
    from llmrelay.plugins.cache.redis_backend import RedisBackend

    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(url)
    # l1_ttl tiny: every call finds L1 expired and goes to Redis.
    provider, layer, fake = layer_for(
        {"backend": "redis", "operations": {"list_models": {"l1_ttl": 1e-6}}}, RedisBackend(url), namespace=namespace
    )
    models = model_list()
    fake.script = lambda op, req: models if op == "list_models" else None
    provider.list_models()
    key = layer.cache_key("list_models")
    size = len(client.get(key))

    def cold_l1() -> Any:
        layer._l1.delete(key)
        return provider.list_models()

    try:
        medians = interleaved(
            rounds,
            {
                "bare redis-py GET": (lambda: client.get(key), 500),
                "L2 hit, L1 holds that version": (provider.list_models, 500),
                "L2 hit, L1 empty (parse + validate)": (cold_l1, 20),
            },
        )
        assert provider.list_models().meta.cache == "hit" and fake.count("list_models") == 1
        stats = layer.stats()
    finally:
        layer.invalidate_all()
        provider.close()
        client.close()
    bare = medians["bare redis-py GET"]
    print(f"\n2. L2 (Redis) hit vs bare GET of the same {size / 1024:.0f} KiB value, medians of {rounds} rounds")
    for name, value in medians.items():
        print(f"   {name:45s} {us(value)}   ({value / bare:.2f}x bare GET)")
    print(f"   (L2 hits counted by the layer: {stats.l2.hits}; upstream calls: {stats.upstream_calls})")


# --------------------------------------------------------------------------- 3. 100 concurrent cold misses


def bench_stampede(url: str | None) -> None:
    print("\n3. 100 concurrent identical cold misses (upstream takes 50 ms)")
    variants: list[tuple[str, Any]] = [("memory L2", MemoryBackend())]
    if url:
        from llmrelay.plugins.cache.redis_backend import RedisBackend

        variants.append(("Redis L2 (fleet lock)", RedisBackend(url)))
    for label, backend in variants:
        namespace = f"bench-{uuid.uuid4().hex[:8]}"
        provider, layer, fake = layer_for(
            {"backend": "redis" if "Redis" in label else "memory"}, backend, namespace=namespace
        )
        fake.script = lambda op, req: time.sleep(0.05)
        barrier = threading.Barrier(100)
        results: list[Any] = []

        def call(barrier: threading.Barrier, results: list[Any], provider: Any) -> None:
            barrier.wait()
            results.append(provider.list_models())

        threads = [threading.Thread(target=call, args=(barrier, results, provider)) for _ in range(100)]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - start
        ok = sum(1 for r in results if len(r) == 2)
        print(
            f"   {label:22s}: {fake.count('list_models')} upstream call(s), {ok}/100 callers got the list, "
            f"{layer.stats().coalesced} coalesced, {elapsed * 1000:.0f} ms wall"
        )
        layer.invalidate_all()
        provider.close()


# --------------------------------------------------------------------------- 4. simulated day


class SimClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def simulate_day(url: str | None, *, shared: bool, instances: int = 20) -> tuple[int, int, dict[str, int]]:
    clock = SimClock(1_700_000_000.0)
    namespace = f"bench-day-{uuid.uuid4().hex[:8]}"
    fleet = []
    for _ in range(instances):
        if shared:
            from llmrelay.plugins.cache.redis_backend import RedisBackend

            settings: dict[str, Any] = {"backend": "redis", "warm_up": ["list_models"]}
            backend: Any = RedisBackend(url or "")
        else:
            settings = {"backend": "none", "warm_up": [], "operations": {"list_models": {"stale_while_revalidate": 0}}}
            backend = None
        fleet.append(layer_for(settings, backend, namespace=namespace, clock=clock))
    served: dict[str, int] = {}
    for _minute in range(24 * 60):
        for provider, layer, _ in fleet:
            layer.run_pending()
            state = provider.list_models().meta.cache or "none"
            served[state] = served.get(state, 0) + 1
        clock.now += 60
    upstream = sum(fake.count("list_models") for _, _, fake in fleet)
    calls = sum(served.values())
    for provider, layer, _ in fleet:
        if shared:
            layer.invalidate_all()
        provider.close()
    return upstream, calls, served


def bench_day(url: str | None) -> None:
    print("\n4. Simulated day: 20 instances, 1 list_models call per instance per minute (28,800 calls)")
    print("   SIMULATED: instances run in one process on one fake clock stepped per minute; Redis is real.")
    if url:
        upstream, calls, served = simulate_day(url, shared=True)
        print(
            f"   shared Redis L2, refresh-ahead every 55 min: {upstream} upstream /models calls "
            f"(target: 1 first load + {(86400 // 3300)} refreshes = {1 + (86400 // 3300)}); served {served}"
        )
    upstream, calls, served = simulate_day(None, shared=False)
    print(f"   L1 only (60 s), no shared tier:               {upstream} upstream /models calls; served {served}")
    print(f"   no cache at all:                              {calls} upstream /models calls")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15", help="Redis URL ('' to skip Redis figures)")
    args = parser.parse_args()
    url = args.redis or None
    if url:
        import redis

        try:
            redis.Redis.from_url(url, socket_connect_timeout=1).ping()
        except (redis.exceptions.RedisError, OSError) as exc:
            print(f"(no Redis at {url}: {type(exc).__name__}; Redis figures skipped)")
            url = None
    print(f"python {sys.version.split()[0]}, requests {requests.__version__}\n")
    bench_l1(args.rounds)
    if url:
        bench_l2(args.rounds, url)
    bench_stampede(url)
    bench_day(url)


if __name__ == "__main__":
    main()
