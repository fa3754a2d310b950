"""Issue 3, item 12: the OpenRouter provider against plain requests, on loopback.

The local OpenRouter test server runs in a **separate process**, so the
client's CPU time (``time.process_time`` of this process) counts the client's
work only. Both sides then run in one interleaved run of many short batches
(the order flips every round, so drift and bursts of load hit both sides):

* ``execute``: time per call of ``OpenRouterProvider.execute`` against a naive
  ``session.post(url, json=body, headers=...).json()`` loop (one
  ``requests.Session`` reused, the same request and answer). Target: <= 0.75x.
* ``stream``: chunks per second of iterating the provider's stream against a
  bare ``iter_lines()`` + ``json.loads`` loop over the same stream.
  Target: >= 0.75x.

For each, it prints the medians of both sides and two ratios, by wall time
and by **client CPU time**: the median of the per-round ratios (each round
compares batches run back to back) and the ratio of the medians. On a shared,
loaded machine wall time swings with other processes; CPU time of the client
barely does, so it is the figure to compare between runs.

``--profile stream`` (or ``execute``) runs only the provider's loop under
cProfile, still against the server in its own process, and prints the top
functions by own time. Usage::

    python bench/bench_provider.py [--rounds 40] [--calls 30] [--streams 3] [--words 300]
    python bench/bench_provider.py --profile stream
"""

from __future__ import annotations

import argparse
import cProfile
import json
import multiprocessing
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.support

__all__ = ["main"]

MODEL = "openai/gpt-4o-mini"
REQUEST = {"model": MODEL, "messages": [{"role": "user", "content": "Say hello in five words."}]}
# The same body the provider sends (it adds usage.include), so both sides get the same answer.
WIRE_BODY = dict(REQUEST, usage={"include": True})

Batch = Callable[[int], int]  # runs n requests, returns the units done (calls or chunks)


def _serve(port_queue: multiprocessing.Queue, words: int) -> None:  # type: ignore[type-arg]
    from tests.support.fake_server import FakeOpenRouter

    server = FakeOpenRouter(one_write=True, comments=2)
    server.stream_words = words
    server.start()
    port_queue.put(server.port)
    server.release.wait()


def naive_execute(session: Any, url: str, headers: dict[str, str]) -> Batch:
    def run(calls: int) -> int:
        for _ in range(calls):
            session.post(url, json=WIRE_BODY, headers=headers).json()
        return calls

    return run


def provider_execute(provider: Any) -> Batch:
    def run(calls: int) -> int:
        for _ in range(calls):
            provider.execute(REQUEST)
        return calls

    return run


def naive_stream(session: Any, url: str, headers: dict[str, str]) -> Batch:
    body = dict(WIRE_BODY, stream=True)
    loads = json.loads

    def run(streams: int) -> int:
        chunks = 0
        for _ in range(streams):
            with session.post(url, json=body, headers=headers, stream=True) as response:
                for line in response.iter_lines():
                    if line.startswith(b"data: "):
                        data = line[6:]
                        if data == b"[DONE]":
                            break
                        loads(data)
                        chunks += 1
        return chunks

    return run


def provider_stream(provider: Any) -> Batch:
    def run(streams: int) -> int:
        chunks = 0
        for _ in range(streams):
            with provider.stream_execute(REQUEST) as stream:
                for _chunk in stream:
                    chunks += 1
        return chunks

    return run


def _measure(batch: Batch, size: int) -> tuple[float, float, int]:
    """(wall seconds, client CPU seconds, units) of one batch."""
    wall, cpu = time.perf_counter(), time.process_time()
    units = batch(size)
    return time.perf_counter() - wall, time.process_time() - cpu, units


class Sides:
    """Per-round figures of a baseline and the provider, in units per second (higher is better)."""

    def __init__(self) -> None:
        self.rates: dict[tuple[str, str], list[float]] = {}

    def add(self, side: str, wall: float, cpu: float, units: int) -> None:
        self.rates.setdefault((side, "wall"), []).append(units / wall)
        self.rates.setdefault((side, "cpu"), []).append(units / max(cpu, 1e-9))

    def median(self, side: str, clock: str) -> float:
        return statistics.median(self.rates[(side, clock)])

    def ratio_of_medians(self, clock: str) -> float:
        """Provider speed over baseline speed: > 1 means the provider is faster."""
        return self.median("ours", clock) / self.median("naive", clock)

    def median_of_ratios(self, clock: str) -> float:
        pairs = zip(self.rates[("ours", clock)], self.rates[("naive", clock)], strict=True)
        return statistics.median(ours / naive for ours, naive in pairs)


def interleave(naive: Batch, ours: Batch, *, rounds: int, size: int) -> Sides:
    sides = Sides()
    for number in range(rounds):
        order = [("naive", naive), ("ours", ours)]
        if number % 2:
            order.reverse()
        for side, batch in order:
            sides.add(side, *_measure(batch, size))
    return sides


def _report_execute(sides: Sides, args: argparse.Namespace) -> None:
    print(f"execute: {args.rounds} rounds x {args.calls} calls per side, order flipped every round")
    for clock in ("wall", "cpu"):
        naive_us = 1e6 / sides.median("naive", clock)
        ours_us = 1e6 / sides.median("ours", clock)
        # Time per call, ours over naive (target <= 0.75): the inverse of the speed ratios.
        print(
            f"  {clock:4}  naive {naive_us:8.1f} us/call   OpenRouter {ours_us:8.1f} us/call   "
            f"ratio median-of-rounds {1 / sides.median_of_ratios(clock):.2f}x   "
            f"of-medians {1 / sides.ratio_of_medians(clock):.2f}x   (target <= 0.75)"
        )


def _report_stream(sides: Sides, args: argparse.Namespace) -> None:
    print(
        f"stream: {args.rounds} rounds x {args.streams} streams x {args.words + 2} chunks per side, "
        "order flipped every round"
    )
    for clock in ("wall", "cpu"):
        unit = "chunks/s" if clock == "wall" else "chunks/cpu-s"
        print(
            f"  {clock:4}  naive {sides.median('naive', clock):9.0f} {unit}   "
            f"OpenRouter {sides.median('ours', clock):9.0f} {unit}   "
            f"ratio median-of-rounds {sides.median_of_ratios(clock):.2f}x   "
            f"of-medians {sides.ratio_of_medians(clock):.2f}x   (target >= 0.75)"
        )


def _profile(batch: Batch, size: int, rounds: int, top: int) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(rounds):
        batch(size)
    profiler.disable()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(top)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40, help="interleaved rounds (each runs both sides once)")
    parser.add_argument("--calls", type=int, default=30, help="execute calls per batch")
    parser.add_argument("--streams", type=int, default=3, help="streams per batch")
    parser.add_argument("--words", type=int, default=300, help="content chunks per stream")
    parser.add_argument("--only", choices=("execute", "stream"), help="run one of the two comparisons")
    parser.add_argument("--profile", choices=("execute", "stream"), help="cProfile the provider's loop instead")
    args = parser.parse_args(argv)

    import requests
    from llmrelay.providers.openrouter import OpenRouterProvider

    from tests.support.fake_server import VALID_KEY

    ports: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    server = multiprocessing.Process(target=_serve, args=(ports, args.words), daemon=True)
    server.start()
    try:
        port = ports.get(timeout=10)
        base = f"http://127.0.0.1:{port}/api/v1"
        url = f"{base}/chat/completions"
        headers = {"Authorization": f"Bearer {VALID_KEY}"}
        with requests.Session() as session, OpenRouterProvider(api_key=VALID_KEY, base_url=base) as provider:
            pairs = {
                "execute": (naive_execute(session, url, headers), provider_execute(provider), args.calls),
                "stream": (naive_stream(session, url, headers), provider_stream(provider), args.streams),
            }
            for naive, ours, size in pairs.values():  # warm up: connections, imports, caches
                naive(size)
                ours(size)
            if args.profile:
                _, ours, size = pairs[args.profile]
                _profile(ours, size, args.rounds, top=25)
                return 0
            print("server: separate process; client CPU = time.process_time() of this process")
            if args.only in (None, "execute"):
                naive, ours, size = pairs["execute"]
                _report_execute(interleave(naive, ours, rounds=args.rounds, size=size), args)
            if args.only in (None, "stream"):
                naive, ours, size = pairs["stream"]
                _report_stream(interleave(naive, ours, rounds=args.rounds, size=size), args)
    finally:
        server.terminate()
        server.join(timeout=5)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
