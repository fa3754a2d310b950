"""What token management costs: the tokens layer per chat call, and rechunk_words per streamed chunk.

The layer: one OpenRouter provider without the layer and one with it, both on
a MockTransport (no network), called in interleaved rounds; the model list
(300 models) is fetched once before timing, as it is in a running process.
Three requests: ``max_tokens`` over the limit (clamped: a request copy), under
it (looked up, nothing changed), and none (nothing to look up).

rechunk_words: a 2,000-token stream of word pieces read plainly and through
the helper, in interleaved rounds.

    python bench/bench_tokens.py [--calls 2000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

from llmrelay.core import StreamChunk, create_provider, rechunk_words
from llmrelay.core.http.transport import HTTPRequest, HTTPResponse, MockTransport

KEY = "sk-or-v1-" + "0" * 48
MODELS = {
    "data": [
        {"id": f"vendor/model-{i}", "context_length": 128_000, "top_provider": {"max_completion_tokens": 16_384}}
        for i in range(300)
    ]
}
REPLY = json.dumps(
    {
        "id": "gen-1",
        "model": "vendor/model-7",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
).encode()
MODELS_BODY = json.dumps(MODELS).encode()
PROMPT = [{"role": "user", "content": "Summarise the following text. " * 20}]


def upstream(request: HTTPRequest) -> HTTPResponse:
    body = MODELS_BODY if request.url.endswith("/models") else REPLY
    return HTTPResponse(200, {"content-type": "application/json"}, body)


def provider(plugins: list[str]) -> Any:
    config = {"plugins": {"tokens": {"enabled": True}}}
    return create_provider("openrouter", api_key=KEY, transport=MockTransport(upstream), plugins=plugins, config=config)


def per_call(fn: Callable[[], Any], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def bench_layer(calls: int, rounds: int) -> None:
    plain, tokens = provider([]), provider(["tokens"])
    requests = {
        "clamped (max_tokens 100000)": {"model": "vendor/model-7", "messages": PROMPT, "max_tokens": 100_000},
        "unchanged (max_tokens 1000)": {"model": "vendor/model-7", "messages": PROMPT, "max_tokens": 1000},
        "no max_tokens": {"model": "vendor/model-7", "messages": PROMPT},
    }
    for request in requests.values():  # the model list fetched once; every path run before timing
        for _ in range(200):
            plain.execute(request)
            tokens.execute(request)
    print(f"tokens layer: {calls} calls per round, {rounds} interleaved rounds, medians per call")
    times: dict[str, tuple[list[float], list[float]]] = {label: ([], []) for label in requests}
    for _ in range(rounds):
        for label, request in requests.items():
            base, layered = times[label]
            base.append(per_call(lambda request=request: plain.execute(request), calls))
            layered.append(per_call(lambda request=request: tokens.execute(request), calls))
    for label, (base, layered) in times.items():
        b, t = statistics.median(base), statistics.median(layered)
        print(
            f"  {label:28s} without {b * 1e6:7.1f} us  with {t * 1e6:7.1f} us  +{(t - b) * 1e6:5.1f} us  ({t / b:.3f}x)"
        )
    plain.close()
    tokens.close()


def bench_rechunk(rounds: int) -> None:
    words = ("The quick brown fox jumps over the lazy dog and keeps running " * 200).split(" ")
    pieces = [piece for word in words for piece in (" " + word[: len(word) // 2], word[len(word) // 2 :])]
    chunks = [StreamChunk(text=piece, id="gen-1", model="m") for piece in pieces]

    def plain() -> int:
        return sum(len(chunk.text) for chunk in iter(chunks))

    def rechunked() -> int:
        return sum(len(chunk.text) for chunk in rechunk_words(iter(chunks)))

    assert plain() == rechunked()
    base, helper = [], []
    for _ in range(rounds):
        base.append(per_call(plain, 20))
        helper.append(per_call(rechunked, 20))
    b, h = statistics.median(base) / len(chunks), statistics.median(helper) / len(chunks)
    out = sum(1 for _ in rechunk_words(iter(chunks)))
    print(f"rechunk_words: {len(chunks)} chunks in, {out} out, {rounds} interleaved rounds, medians per input chunk")
    print(f"  plain iteration {b * 1e6:.3f} us  rechunk_words {h * 1e6:.3f} us  +{(h - b) * 1e6:.3f} us")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000, help="chat calls per round and request")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    bench_layer(args.calls, args.rounds)
    bench_rechunk(args.rounds)


if __name__ == "__main__":
    main()
