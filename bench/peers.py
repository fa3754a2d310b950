"""The contenders the benchmark suite compares, each behind the same three callables.

A :class:`Contender` offers ``call(i)`` (one non-streamed chat call; ``i``
varies the prompt so cache-miss rows really miss), ``stream()`` (one long
streamed answer, returns the number of chunks the client delivered) and
``close()``. Builders return ``None`` plus a reason when a peer is not
installed or a service (Redis) is not reachable, so the suite prints
"skipped: ..." instead of failing.

Every contender sends the same request to the same local server and parses
the whole answer the way its users would (``.json()`` for the bare session,
typed objects for the SDKs and llmrelay).
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BENCH_KEY", "MODEL", "Contender", "Skipped", "build_all", "request_body"]

BENCH_KEY = "sk-or-v1-" + "b" * 64
MODEL = "openai/gpt-4o-mini"


def request_body(i: int | None) -> dict[str, Any]:
    """The chat request; a distinct prompt per ``i`` (``None``: always the same prompt)."""
    text = "Say hello in five words." if i is None else f"Say hello in five words. ({i})"
    return {"model": MODEL, "messages": [{"role": "user", "content": text}]}


@dataclass
class Contender:
    name: str
    call: Callable[[int], Any]
    stream: Callable[[], int] | None = None
    close: Callable[[], None] = lambda: None
    threads_ok: bool = True  # whether the concurrency rows include it
    note: str = ""
    group: str = "peer"  # "baseline", "llmrelay" or "peer"


@dataclass
class Skipped:
    name: str
    reason: str
    group: str = "peer"


@dataclass
class Server:
    port: int
    stream_chunks: int
    base_url: str = field(init=False)

    def __post_init__(self) -> None:
        self.base_url = f"http://127.0.0.1:{self.port}/api/v1"


# --------------------------------------------------------------------------- baselines


def bare_session(server: Server) -> Contender:
    """The naive way: one ``requests.Session``, ``post(json=...)``, ``.json()``."""
    import requests

    session = requests.Session()
    url = f"{server.base_url}/chat/completions"
    headers = {"Authorization": f"Bearer {BENCH_KEY}"}

    def call(i: int) -> Any:
        return session.post(url, json=request_body(i), headers=headers).json()

    def stream() -> int:
        # The floor for streaming: iter_lines + json.loads, nothing else.
        chunks = 0
        body = dict(request_body(0), stream=True)
        with session.post(url, json=body, headers=headers, stream=True) as response:
            for line in response.iter_lines():
                if line.startswith(b"data: "):
                    data = line[6:]
                    if data == b"[DONE]":
                        break
                    json.loads(data)
                    chunks += 1
        return chunks

    return Contender("requests.Session (naive)", call, stream, session.close, group="baseline")


def raw_socket(server: Server) -> Contender:
    """For scale only: a keep-alive socket, a precomputed request, ``json.loads`` of the body."""
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def call(i: int) -> Any:
        body = json.dumps(request_body(i)).encode()
        head = (
            f"POST /api/v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            f"Authorization: Bearer {BENCH_KEY}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        sock.sendall(head + body)
        data = b""
        while True:
            data += sock.recv(65536)
            end = data.find(b"\r\n\r\n")
            if end < 0:
                continue
            marker = data.lower().find(b"content-length:", 0, end)
            length = int(data[marker + 15 : data.find(b"\r\n", marker)])
            if len(data) >= end + 4 + length:
                return json.loads(data[end + 4 : end + 4 + length])

    return Contender("raw socket (scale)", call, None, sock.close, threads_ok=False, group="baseline")


# --------------------------------------------------------------------------- llmrelay


def _llmrelay(server: Server, *, plugins: Any, config: dict[str, Any] | None = None) -> Any:
    from llmrelay.core import create_provider

    return create_provider("openrouter", api_key=BENCH_KEY, base_url=server.base_url, plugins=plugins, config=config)


def _stream_of(provider: Any, request: Callable[[], dict[str, Any]]) -> Callable[[], int]:
    def stream() -> int:
        chunks = 0
        with provider.stream_execute(request()) as chat:
            for _ in chat:
                chunks += 1
        return chunks

    return stream


def llmrelay_bare(server: Server) -> Contender:
    provider = _llmrelay(server, plugins=False)
    return Contender(
        "llmrelay, no plugins",
        lambda i: provider.execute(request_body(i)),
        _stream_of(provider, lambda: request_body(0)),
        provider.close,
        group="llmrelay",
    )


def llmrelay_default(server: Server) -> Contender:
    """What ``create_provider("openrouter")`` gives: every plugin on, default config (chat not cached)."""
    provider = _llmrelay(server, plugins=True, config={"plugins": {"cache": {"warm_up": []}}})
    return Contender(
        "llmrelay default plugins (chat not cached)",
        lambda i: provider.execute(request_body(i)),
        _stream_of(provider, lambda: request_body(0)),
        provider.close,
        group="llmrelay",
    )


def _cache_config(**cache: Any) -> dict[str, Any]:
    section = {
        "warm_up": [],  # no background GET /models racing the measured calls
        "operations": {"execute": {"enabled": True}, "stream_execute": {"enabled": True}},
    }
    section.update(cache)
    return {"plugins": {"cache": section}}


def llmrelay_full_miss(server: Server) -> Contender:
    """metrics + breaker + cache, every call a new prompt: lookup, miss, upstream call, store."""
    provider = _llmrelay(server, plugins=True, config=_cache_config(backend="memory"))
    counter = iter(range(10**12))
    return Contender(
        "llmrelay metrics+breaker+cache (miss)",
        lambda i: provider.execute(request_body(i)),
        _stream_of(provider, lambda: request_body(next(counter))),
        provider.close,
        group="llmrelay",
    )


def llmrelay_l1_hit(server: Server) -> Contender:
    provider = _llmrelay(server, plugins=True, config=_cache_config(backend="memory"))
    fixed = request_body(None)
    provider.execute(fixed)
    first = provider.execute(fixed)
    if first.meta.cache != "hit":
        raise RuntimeError(f"L1 row is not hitting the cache (meta.cache={first.meta.cache!r})")
    with provider.stream_execute(fixed) as primed:
        for _ in primed:
            pass
    return Contender(
        "llmrelay L1 hit",
        lambda i: provider.execute(fixed),
        _stream_of(provider, lambda: fixed),
        provider.close,
        group="llmrelay",
    )


def redis_reachable(host: str = "127.0.0.1", port: int = 6379) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def llmrelay_l2_hit(server: Server) -> Contender | Skipped:
    """L1 holds one entry and two prompts alternate, so every call misses L1 and hits Redis."""
    name = "llmrelay L2 (Redis) hit"
    try:
        import redis  # noqa: F401
    except ImportError:
        return Skipped(name, "skipped: redis (the Python client) not installed", "llmrelay")
    if not redis_reachable():
        return Skipped(name, "skipped: no Redis on 127.0.0.1:6379", "llmrelay")
    namespace = f"llmrelay-bench-{os.getpid()}"
    provider = _llmrelay(
        server,
        plugins=True,
        config=_cache_config(backend="redis", redis_url="redis://127.0.0.1:6379/0", namespace=namespace, max_entries=1),
    )
    pair = [request_body(None), request_body(-1)]
    turns = iter(range(10**12))
    for request in pair * 2:
        provider.execute(request)
        with provider.stream_execute(request) as primed:
            for _ in primed:
                pass
    cache = provider.layer("cache")
    before = cache.stats()
    for request in pair * 2:
        if provider.execute(request).meta.cache != "hit":
            raise RuntimeError("L2 row is not hitting the cache")
    after = cache.stats()
    if after.l2.hits - before.l2.hits != 4:
        raise RuntimeError(f"L2 row is not hitting Redis (L2 hits {before.l2.hits} -> {after.l2.hits})")

    def close() -> None:
        cache.invalidate_all()
        provider.close()

    return Contender(
        name,
        lambda i: provider.execute(pair[i & 1]),
        _stream_of(provider, lambda: pair[next(turns) & 1]),
        close,
        group="llmrelay",
    )


# --------------------------------------------------------------------------- peers


def openai_sdk(server: Server) -> Contender | Skipped:
    name = "openai SDK"
    try:
        import openai
    except ImportError:
        return Skipped(name, 'skipped: not installed (pip install -e ".[bench]")')
    client = openai.OpenAI(api_key=BENCH_KEY, base_url=server.base_url, max_retries=0)

    def call(i: int) -> Any:
        return client.chat.completions.create(**request_body(i))

    def stream() -> int:
        chunks = 0
        with client.chat.completions.create(**request_body(0), stream=True) as response:
            for _ in response:
                chunks += 1
        return chunks

    return Contender(name, call, stream, client.close)


def litellm_completion(server: Server) -> Contender | Skipped:
    name = "LiteLLM completion()"
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # else it downloads its price list at import
    try:
        import litellm
    except ImportError:
        return Skipped(name, 'skipped: not installed (pip install -e ".[bench]")')
    litellm.telemetry = False  # (the suite sets LITELLM_LOCAL_MODEL_COST_MAP: no price-list download)
    litellm.suppress_debug_info = True
    model = f"openrouter/{MODEL}"

    def call(i: int) -> Any:
        return litellm.completion(
            model=model,
            api_base=server.base_url,
            api_key=BENCH_KEY,
            num_retries=0,
            **{k: v for k, v in request_body(i).items() if k != "model"},
        )

    def stream() -> int:
        chunks = 0
        response = litellm.completion(
            model=model,
            api_base=server.base_url,
            api_key=BENCH_KEY,
            stream=True,
            num_retries=0,
            messages=request_body(0)["messages"],
        )
        for _ in response:
            chunks += 1
        return chunks

    return Contender(name, call, stream)


BUILDERS: list[Callable[[Server], Contender | Skipped]] = [
    bare_session,
    raw_socket,
    llmrelay_bare,
    llmrelay_default,
    llmrelay_full_miss,
    llmrelay_l1_hit,
    llmrelay_l2_hit,
    openai_sdk,
    litellm_completion,
]


def build_all(server: Server) -> list[Contender | Skipped]:
    return [builder(server) for builder in BUILDERS]
