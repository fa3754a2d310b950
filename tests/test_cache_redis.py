"""The cache with its Redis L2, against the real server on 127.0.0.1:6379.

These skip with a reason when no server is reachable; with
``LLMRELAY_REQUIRE_REDIS=1`` (CI) they fail instead. Time is a fake clock;
the only real waits are threads and processes meeting.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import threading
import time
import uuid
from typing import Any

import pytest
from llmrelay.core import LayeredProvider
from llmrelay.plugins.cache import CacheSettings
from llmrelay.plugins.cache.codec import FORMAT_VERSION
from llmrelay.plugins.cache.keys import KeyBuilder
from llmrelay.plugins.cache.layer import CacheLayer
from llmrelay.plugins.cache.redis_backend import RedisBackend

from tests.support.fake_provider import FakeProvider, FakeSettings
from tests.support.redis_fixture import REDIS_URL, FleetClock, RedisServer, fleet_process, redis_client, redis_namespace

pytestmark = pytest.mark.redis

__all__ = ["redis_client", "redis_namespace"]  # fixtures, imported to be found by pytest

API_KEY = "sk-redis-test-0123456789abcdef"


def instance(
    namespace: str,
    *,
    url: str = REDIS_URL,
    clock: FleetClock | None = None,
    sleep: Any = time.sleep,
    settings: dict[str, Any] | None = None,
) -> tuple[LayeredProvider, CacheLayer, FakeProvider]:
    """One llmrelay instance of a fleet sharing ``namespace`` in Redis."""
    data = {"backend": "redis", "background": False, "warm_up": [], "namespace": namespace, **(settings or {})}
    cache_settings = CacheSettings.model_validate(data)
    fake = FakeProvider(FakeSettings(api_key=API_KEY))
    keys = KeyBuilder(namespace=namespace, provider="fake", base_url="", api_key=API_KEY)
    backend = RedisBackend(url, timeout=cache_settings.redis_timeout)
    layer = CacheLayer(
        cache_settings,
        keys=keys,
        provider_name="fake",
        backend=backend,
        clock=clock or FleetClock(1_700_000_000.0),
        sleep=sleep,
        owns_backend=True,
    )
    return LayeredProvider(fake, [layer]), layer, fake


def test_an_entry_one_instance_loaded_is_a_hit_for_another(redis_client: Any, redis_namespace: str) -> None:
    first, first_layer, first_fake = instance(redis_namespace)
    second, second_layer, second_fake = instance(redis_namespace)
    try:
        first.list_models()
        got = second.list_models()
        assert got.meta.cache == "hit" and got.ids == ["fake/small", "fake/auto"]
        assert first_fake.count("list_models") == 1 and second_fake.count("list_models") == 0
        assert second_layer.stats().l2.hits == 1

        key = first_layer.cache_key("list_models")
        raw = redis_client.get(key)
        header = json.loads(raw.split(b"\n", 1)[0])
        assert header["v"] == FORMAT_VERSION and header["type"] == "ModelList"
        assert API_KEY not in key and API_KEY.encode() not in raw
        ttl_ms = redis_client.pttl(key)
        assert (3600 + 86400 - 5) * 1000 < ttl_ms <= (3600 + 86400) * 1000  # fresh 1 h + stale-if-error 1 day
    finally:
        first.close()
        second.close()


def test_a_cold_miss_loads_once_across_instances(redis_namespace: str) -> None:
    # Instance A takes the fleet lock and is slow upstream; instance B must wait
    # for A's value instead of calling the upstream too.
    a_upstream = threading.Event()
    b_waiting = threading.Event()

    def b_sleep(seconds: float) -> None:
        b_waiting.set()
        time.sleep(seconds)

    a, _, a_fake = instance(redis_namespace, settings={"lock_poll_interval": 0.01})
    b, _, b_fake = instance(redis_namespace, sleep=b_sleep, settings={"lock_poll_interval": 0.01})

    def slow(operation: str, _request: Any) -> None:
        a_upstream.set()
        b_waiting.wait(5)

    a_fake.script = slow
    results: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: results.setdefault("a", a.get_credits()))
    try:
        thread.start()
        assert a_upstream.wait(5)
        results["b"] = b.get_credits()
        thread.join(5)
        assert a_fake.count("get_credits") == 1 and b_fake.count("get_credits") == 0
        assert results["a"].meta.cache == "miss" and results["b"].meta.cache == "hit"
        assert results["b"].remaining == results["a"].remaining
    finally:
        a.close()
        b.close()


def test_the_lock_is_set_nx_px_and_released_by_compare_and_delete(redis_client: Any, redis_namespace: str) -> None:
    backend = RedisBackend(REDIS_URL)
    name = f"{redis_namespace}:lock:test"
    try:
        token = backend.acquire_lock(name, 30)
        assert token is not None
        assert backend.acquire_lock(name, 30) is None
        assert 0 < redis_client.pttl(name) <= 30_000
        assert backend.release_lock(name, "not-the-token") is False
        assert redis_client.get(name) == token.encode()
        assert backend.release_lock(name, token) is True
        assert redis_client.get(name) is None
        assert backend.acquire_lock(name, 30) is not None
    finally:
        backend.close()


def test_invalidate_removes_this_providers_entries_from_redis(redis_client: Any, redis_namespace: str) -> None:
    provider, layer, _ = instance(redis_namespace)
    try:
        provider.list_models()
        provider.get_generation_stats("g1")
        provider.get_generation_stats("g2")
        assert layer.invalidate(operation="get_generation_stats") == 4  # two in L1, two in Redis
        assert redis_client.get(layer.cache_key("get_generation_stats", "g1")) is None
        assert redis_client.get(layer.cache_key("list_models")) is not None
        layer.invalidate_all()
        assert list(redis_client.scan_iter(match=f"{layer.keys.scope_prefix}*")) == []
    finally:
        provider.close()


def test_unreachable_redis_never_fails_a_call(caplog: pytest.LogCaptureFixture) -> None:
    # Nothing listens on port 1: every call is served by the upstream and L1.
    caplog.set_level(logging.WARNING, logger="llmrelay.plugins.cache")
    provider, layer, fake = instance(f"down-{uuid.uuid4().hex[:8]}", url="redis://127.0.0.1:1/0")
    try:
        for _ in range(10):
            assert provider.list_models().ids == ["fake/small", "fake/auto"]
        assert fake.count("list_models") == 1
        assert len([r for r in caplog.records if "unavailable" in r.getMessage()]) == 1
        assert not layer.stats().l2_available and layer.stats().l2.errors >= 1
    finally:
        provider.close()


def test_l2_recovers_when_redis_comes_back(caplog: pytest.LogCaptureFixture) -> None:
    server = RedisServer()
    server.start()
    clock = FleetClock(1_700_000_000.0)
    caplog.set_level(logging.WARNING, logger="llmrelay.plugins.cache")
    provider, layer, fake = instance("recovery", url=server.url, clock=clock, settings={"l2_retry_interval": 10})
    try:
        provider.get_generation_stats("before")
        assert layer.stats().l2_available
        server.stop()
        provider.get_generation_stats("during-1")
        provider.get_generation_stats("during-2")
        assert not layer.stats().l2_available
        assert len([r for r in caplog.records if "unavailable" in r.getMessage()]) == 1

        server.start()  # an empty Redis on the same port
        clock.now += 11
        provider.get_generation_stats("after")
        assert layer.stats().l2_available
        assert any("available again" in r.getMessage() for r in caplog.records)
        import redis

        check = redis.Redis.from_url(server.url)
        assert check.get(layer.cache_key("get_generation_stats", "after")) is not None
        check.close()
        assert fake.count("get_generation_stats") == 4
    finally:
        provider.close()
        server.stop()


def test_one_upstream_refresh_per_period_across_processes(redis_client: Any, redis_namespace: str) -> None:
    processes, periods, period = 4, 5, 3300.0
    counter = f"{redis_namespace}:upstream-calls"
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(processes)
    results = context.Queue()
    start = time.time()
    workers = [
        context.Process(
            target=fleet_process,
            args=(results, REDIS_URL, redis_namespace, counter, start, period, periods, barrier),
        )
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    try:
        outcomes = [results.get(timeout=120) for _ in workers]
    finally:
        for worker in workers:
            worker.join(10)
            if worker.is_alive():
                worker.terminate()
    assert [kind for kind, _ in outcomes] == ["ok"] * processes, outcomes
    served = [states for _, states in outcomes]
    upstream_calls = int(redis_client.get(counter))
    # The first load plus one refresh per later period, whichever instance did it.
    assert upstream_calls == periods
    # And nobody waited: every call in every process was answered from the cache.
    assert all(state == "hit" for states in served for state in states)
    assert sum(len(states) for states in served) == processes * periods * 3
