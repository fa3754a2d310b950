"""Issue 16, item 2: what the async API costs over the sync call it runs on llmrelay's thread pool.

One interleaved run of many short batches (the order flips every round, so
drift and bursts of load hit both sides alike), printed, never asserted:

* ``execute``: time per call of ``provider.execute`` against ``await
  provider.aexecute`` one after the other, on the same provider (the default
  plugins: metrics, cache, breaker) answered by a ``MockTransport``, so the
  figure is llmrelay's own work plus the hop to the pool and back;
* ``stream``: time per chunk of iterating a stream (``for chunk in stream``)
  against ``async for chunk in provider.astream_execute(...)``, each
  ``__anext__`` one job on the pool;
* ``loopback``: ``execute`` against ``aexecute`` over real HTTP to the local
  OpenRouter test server (in this process), where the hop is a fraction of a call;
* ``hop``: the bare hop, ``await run_sync(f)`` against asyncio's own
  ``await asyncio.to_thread(f)`` for a function that does nothing: what the
  pool costs compared with what asyncio offers for the same job.

The added cost per call or chunk is about two thread hand-offs (to the
worker and back to the loop), so it grows with the machine's load.

Usage::

    python bench/bench_async.py [--rounds 30] [--calls 200] [--chunks 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.support

from bench_provider import provider_stream  # bench/ is on sys.path: the directory of the script
from llmrelay.core import Provider, create_provider, run_sync, shutdown_async_pool
from llmrelay.core.aio import async_workers
from llmrelay.core.http.transport import HTTPRequest, HTTPResponse, MockTransport

from tests.support.fake_server import VALID_KEY, FakeOpenRouter, chat_completion, stream_chunks

__all__ = ["main"]

KEY = "sk-or-v1-0123456789abcdef0123456789abcdef0123456789abcdef"
REQUEST = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}

Batch = Callable[[int], int]  # runs n units (calls or streams), returns the units of work done (calls or chunks)


def mock_provider(chunks: int) -> Provider:
    completion = json.dumps(chat_completion()).encode()
    events = [b"data: " + json.dumps(o).encode() + b"\n\n" for o in stream_chunks(words=chunks)]
    events.append(b"data: [DONE]\n\n")

    def answer(request: HTTPRequest) -> HTTPResponse:
        if request.stream:
            return HTTPResponse(200, {"content-type": "text/event-stream"}, stream=iter(events))
        return HTTPResponse(200, {"content-type": "application/json"}, completion)

    # No cache warm-up: this mock answers chat only.
    config = {"plugins": {"cache": {"warm_up": []}}}
    return create_provider("openrouter", api_key=KEY, transport=MockTransport(answer), config=config)


def sync_calls(provider: Provider) -> Batch:
    def run(calls: int) -> int:
        for _ in range(calls):
            provider.execute(REQUEST)
        return calls

    return run


def async_calls(provider: Provider, loop: asyncio.AbstractEventLoop) -> Batch:
    async def calls_(calls: int) -> int:
        for _ in range(calls):
            await provider.aexecute(REQUEST)
        return calls

    return lambda calls: loop.run_until_complete(calls_(calls))


def async_stream(provider: Provider, loop: asyncio.AbstractEventLoop) -> Batch:
    async def streams_(streams: int) -> int:
        chunks = 0
        for _ in range(streams):
            async with provider.astream_execute(REQUEST) as stream:
                async for _chunk in stream:
                    chunks += 1
        return chunks

    return lambda streams: loop.run_until_complete(streams_(streams))


def hop(loop: asyncio.AbstractEventLoop, *, ours: bool) -> Batch:
    def nothing() -> None:
        return None

    async def hops(calls: int) -> int:
        for _ in range(calls):
            await (run_sync(nothing) if ours else asyncio.to_thread(nothing))
        return calls

    return lambda calls: loop.run_until_complete(hops(calls))


def compare(name: str, unit: str, baseline: Batch, measured: Batch, units: int, rounds: int) -> None:
    """Per-unit medians of both sides over interleaved rounds, the added cost and the ratio."""
    baseline(max(1, units // 10))  # warm up: validators, the pool's threads
    measured(max(1, units // 10))
    times: dict[str, list[float]] = {"baseline": [], "measured": []}
    ratios = []
    for round_ in range(rounds):
        order = [("baseline", baseline), ("measured", measured)]
        per_unit: dict[str, float] = {}
        for side, batch in order if round_ % 2 == 0 else order[::-1]:
            start = time.perf_counter()
            done = batch(units)
            per_unit[side] = (time.perf_counter() - start) / done
            times[side].append(per_unit[side])
        ratios.append(per_unit["measured"] / per_unit["baseline"])
    base_us = statistics.median(times["baseline"]) * 1e6
    measured_us = statistics.median(times["measured"]) * 1e6
    print(
        f"{name:<9} per {unit:<6} baseline {base_us:9.1f} us   measured {measured_us:9.1f} us   "
        f"added {measured_us - base_us:8.1f} us   ratio (median of rounds) {statistics.median(ratios):5.2f}x"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--calls", type=int, default=200, help="calls per batch (MockTransport)")
    parser.add_argument("--chunks", type=int, default=200, help="chunks per stream")
    parser.add_argument("--http-calls", type=int, default=40, help="calls per batch over loopback HTTP")
    args = parser.parse_args(argv)

    print(f"async thread pool: {async_workers()} workers; {args.rounds} interleaved rounds; wall time medians")
    print("baseline: the sync call (execute, stream, loopback) or asyncio.to_thread (hop); measured: the async one")
    loop = asyncio.new_event_loop()
    try:
        compare("hop", "call", hop(loop, ours=False), hop(loop, ours=True), args.calls, args.rounds)
        provider = mock_provider(args.chunks)
        compare("execute", "call", sync_calls(provider), async_calls(provider, loop), args.calls, args.rounds)
        compare("stream", "chunk", provider_stream(provider), async_stream(provider, loop), 3, args.rounds)
        provider.close()
        with FakeOpenRouter() as server:
            http = create_provider("openrouter", api_key=VALID_KEY, base_url=server.base_url, config={})
            compare("loopback", "call", sync_calls(http), async_calls(http, loop), args.http_calls, args.rounds)
            http.close()
    finally:
        loop.close()
        shutdown_async_pool()


if __name__ == "__main__":
    main()
