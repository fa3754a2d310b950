"""Benchmark of the pricing layer (the markup). Prints figures; asserts nothing.

    python bench/bench_pricing.py [--rounds 15]

Both cases run through a LayeredProvider over the tests' FakeProvider, with the
cache layer answering from L1 (no upstream), with and without the pricing layer
(markup 1.3) outside it. Interleaved rounds; medians of per-call means; the
ratio is against the run without the pricing layer, in the same run.

1. ``list_models()`` of the shipped 303-model catalog: a hit prices the list's
   models once per cache entry (memoised by model identity), then copies the list.
2. A cached 1000-chunk stream replayed and read to the end: with a markup the
   chunks pass through the pricing layer's generator and a second ChatStream.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.support.fake_provider

from bench_cache import interleaved  # bench/ is on sys.path: the directory of the script
from llmrelay.core import CallOptions, ChatStream, LayeredProvider, StreamChunk, Usage
from llmrelay.plugins.cache import CacheSettings
from llmrelay.plugins.cache.keys import KeyBuilder
from llmrelay.plugins.cache.layer import CacheLayer
from llmrelay.plugins.pricing.layer import PricingLayer
from llmrelay.providers.openrouter_models import load_fallback_models

from tests.support.fake_provider import FakeProvider

CHAT = {"model": "fake/small", "messages": [{"role": "user", "content": "hi"}]}


def stream_of(chunks: int) -> ChatStream:
    def produce() -> Any:
        for i in range(chunks):
            yield StreamChunk(text=f" w{i}")
        yield StreamChunk(
            finish_reason="stop", usage=Usage(prompt_tokens=3, completion_tokens=chunks, cost=Decimal("0.001"))
        )

    return ChatStream(produce(), provider="fake", model="fake/small")


def chain(markup: bool) -> LayeredProvider:
    fake = FakeProvider()
    catalog = load_fallback_models("fake")
    fake.script = lambda op, _: (
        catalog if op == "list_models" else (stream_of(1000) if op == "stream_execute" else None)
    )
    settings = CacheSettings.model_validate({"background": False, "warm_up": [], "backend": "none"})
    keys = KeyBuilder(namespace=f"bench-pricing-{markup}", provider="fake", base_url="", api_key=None)
    layers: list[Any] = [CacheLayer(settings, keys=keys, provider_name="fake")]
    if markup:
        layers.insert(0, PricingLayer(Decimal("1.3")))
    return LayeredProvider(fake, layers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    rounds = parser.parse_args().rounds
    plain, priced = chain(False), chain(True)
    options = CallOptions(cache=True)
    for provider in (plain, priced):  # fill the caches
        provider.list_models()
        provider.stream_execute(CHAT, options=options).final_response()

    lists = interleaved(rounds, {"without": (plain.list_models, 200), "markup 1.3": (priced.list_models, 200)})

    def read(provider: LayeredProvider) -> Callable[[], Any]:
        return lambda: provider.stream_execute(CHAT, options=options).final_response()

    streams = interleaved(rounds, {"without": (read(plain), 20), "markup 1.3": (read(priced), 20)})
    print(f"pricing layer, medians of {rounds} interleaved rounds (cache L1 hits, no upstream)")
    for title, figures, unit in (
        ("list_models(), 303 models", lists, "us/call"),
        ("cached stream, 1000 chunks read", streams, "us/stream"),
    ):
        base = figures["without"]
        print(f"  {title}:")
        for name, value in figures.items():
            print(f"    {name:<11} {value * 1e6:9.1f} {unit}   {value / base:5.2f}x")


if __name__ == "__main__":
    main()
