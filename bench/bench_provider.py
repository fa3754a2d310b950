"""Issue 3, item 12: the OpenRouter provider against plain requests, on loopback.

Runs the local OpenRouter test server in a separate process, then, in one
interleaved run (rounds alternate baseline and provider so drift hits both):

* ``execute``: time per call of ``OpenRouterProvider.execute`` against a naive
  ``session.post(url, json=body, headers=...).json()`` loop (one
  ``requests.Session`` reused, the same request and answer). Target: <= 0.75x.
* ``stream_execute``: chunks per second of iterating the provider's stream
  against a bare ``iter_lines()`` + ``json.loads`` loop over the same stream.
  Target: >= 0.75x.

Prints medians over rounds and the ratios. Usage::

    python bench/bench_provider.py [--rounds 15] [--calls 200] [--streams 20] [--words 300]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.support

MODEL = "openai/gpt-4o-mini"
REQUEST = {"model": MODEL, "messages": [{"role": "user", "content": "Say hello in five words."}]}


def _serve(port_queue: multiprocessing.Queue, words: int) -> None:  # type: ignore[type-arg]
    from tests.support.fake_server import FakeOpenRouter

    server = FakeOpenRouter(one_write=True, comments=2)
    server.stream_words = words
    server.start()
    port_queue.put(server.port)
    server.release.wait()


def _naive_execute(session, url: str, headers: dict[str, str], calls: int) -> float:  # type: ignore[no-untyped-def]
    body = dict(REQUEST, usage={"include": True})
    start = time.perf_counter()
    for _ in range(calls):
        session.post(url, json=body, headers=headers).json()
    return (time.perf_counter() - start) / calls


def _provider_execute(provider, calls: int) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    for _ in range(calls):
        provider.execute(REQUEST)
    return (time.perf_counter() - start) / calls


def _naive_stream(session, url: str, headers: dict[str, str], streams: int) -> float:  # type: ignore[no-untyped-def]
    body = dict(REQUEST, stream=True, usage={"include": True})
    chunks = 0
    start = time.perf_counter()
    for _ in range(streams):
        with session.post(url, json=body, headers=headers, stream=True) as response:
            for line in response.iter_lines():
                if line.startswith(b"data: "):
                    data = line[6:]
                    if data == b"[DONE]":
                        break
                    json.loads(data)
                    chunks += 1
    return chunks / (time.perf_counter() - start)


def _provider_stream(provider, streams: int) -> float:  # type: ignore[no-untyped-def]
    chunks = 0
    start = time.perf_counter()
    for _ in range(streams):
        with provider.stream_execute(REQUEST) as stream:
            for _chunk in stream:
                chunks += 1
    return chunks / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=200, help="execute calls per round and side")
    parser.add_argument("--streams", type=int, default=20, help="streams per round and side")
    parser.add_argument("--words", type=int, default=300, help="content chunks per stream")
    args = parser.parse_args()

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
        session = requests.Session()
        provider = OpenRouterProvider(api_key=VALID_KEY, base_url=base)
        # Warm up both (connections, imports, caches).
        _naive_execute(session, url, headers, 20)
        _provider_execute(provider, 20)
        _naive_stream(session, url, headers, 2)
        _provider_stream(provider, 2)

        naive_exec, ours_exec, naive_stream, ours_stream = [], [], [], []
        for _ in range(args.rounds):
            naive_exec.append(_naive_execute(session, url, headers, args.calls))
            ours_exec.append(_provider_execute(provider, args.calls))
            naive_stream.append(_naive_stream(session, url, headers, args.streams))
            ours_stream.append(_provider_stream(provider, args.streams))
        provider.close()
        session.close()
    finally:
        server.terminate()
        server.join(timeout=5)

    n_exec, o_exec = statistics.median(naive_exec), statistics.median(ours_exec)
    n_stream, o_stream = statistics.median(naive_stream), statistics.median(ours_stream)
    print(f"rounds={args.rounds} calls/round={args.calls} streams/round={args.streams} chunks/stream={args.words + 2}")
    print(f"execute   naive requests   median {n_exec * 1e6:8.1f} us/call")
    print(f"execute   OpenRouter       median {o_exec * 1e6:8.1f} us/call")
    print(f"execute   ratio (ours/naive, target <= 0.75): {o_exec / n_exec:.2f}x")
    print(f"stream    iter_lines+json  median {n_stream:10.0f} chunks/s")
    print(f"stream    OpenRouter       median {o_stream:10.0f} chunks/s")
    print(f"stream    ratio (ours/naive, target >= 0.75): {o_stream / n_stream:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
