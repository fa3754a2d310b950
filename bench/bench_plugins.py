"""Added per-call cost of the metrics and breaker plugins.

Run:  /work/venv/bin/python bench/bench_plugins.py [--rounds 41] [--calls 200] [--provider minimal|openrouter]

Two measurements, each in one interleaved run. Variants alternate call
by call, in a fresh random order for each group of calls, rather than
block by block: a loopback call drifts by tens of microseconds from one
moment to the next, more than the layers cost, and only this paired design
keeps that out of the figures. Every variant wraps the same provider
instance (same session, same connection).

1. A real loopback HTTP call: a tiny ``http.server`` on 127.0.0.1, in its
   own process (so it does not compete for this process's GIL), answers
   an OpenAI-style chat completion; a minimal Provider defined here POSTs
   to it with one keep-alive ``requests.Session`` and builds the typed
   response. Variants: bare provider, +metrics, +breaker, +both. The
   figure that matters is the overhead of metrics + breaker as a share of
   that call (target: under 3 %).
2. The same layers around a provider that answers from memory, which
   isolates the layers' own cost in microseconds (the HTTP call's noise
   would otherwise swamp it).

A last summary states the target's verdict next to the layers' CPU cost
and the noise scale (the empty pipeline's measured vs known cost): on a
shared machine, any layer doing real work measures several times its CPU
cost around blocking I/O, so read the two together.

Printed: the median per-call time of each variant, its ratio to the bare
provider call and the added microseconds, and the paired added cost (the
median difference to the bare call made in the same group) with its share
of the bare call. "pipeline" is the core's ``LayeredProvider`` with no
layers (request coercion and the ``Call`` object), which every plugin
needs anyway.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from random import Random
from typing import Any

import requests
from llmrelay.core import CallOptions, ChatRequest, ChatResponse, Message, Provider, ProviderSettings, Usage
from llmrelay.core.pipeline import LayerContext, LayeredProvider
from llmrelay.plugins import breaker as breaker_plugin
from llmrelay.plugins import metrics as metrics_plugin
from llmrelay.plugins.breaker import BreakerSettings
from llmrelay.plugins.metrics import MetricsSettings, metrics_registry

REPLY = json.dumps(
    {
        "id": "gen-bench",
        "model": "bench/model",
        "object": "chat.completion",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "pong"}}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6, "cost": 0.000001},
    }
).encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without this, Nagle plus the
    # client's delayed ACK adds ~40 ms to every call.
    disable_nagle_algorithm = True

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", 0))
        self.rfile.read(length)
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(REPLY)))
        self.end_headers()
        self.wfile.write(REPLY)

    def log_message(self, *args: Any) -> None:
        pass


class LoopbackProvider(Provider):
    """The least a real provider does: POST JSON, parse it, build the typed response."""

    name = "loopback"
    requires_api_key = False

    def __init__(self, url: str) -> None:
        super().__init__(ProviderSettings(base_url=url))
        self.session = requests.Session()
        self.session.trust_env = False

    def execute(self, request: Any, *, options: CallOptions | None = None) -> ChatResponse:
        chat = ChatRequest.coerce(request)
        data = self.session.post(self.base_url + "/chat/completions", json=chat.to_wire(), timeout=10).json()
        choice = data["choices"][0]
        return ChatResponse(
            id=data["id"],
            model=data["model"],
            provider=self.name,
            message=Message.assistant(choice["message"]["content"]),
            finish_reason=choice["finish_reason"],
            usage=Usage.from_openai(data["usage"]),
        )

    def stream_execute(self, request: Any, *, options: CallOptions | None = None) -> Any:
        raise NotImplementedError

    def list_models(self, *, options: CallOptions | None = None) -> Any:
        raise NotImplementedError

    def validate_config(self) -> Any:
        raise NotImplementedError

    def close(self) -> None:
        self.session.close()


class MemoryProvider(LoopbackProvider):
    """Same response object, no network: isolates the layers' cost."""

    name = "memory"

    def __init__(self) -> None:
        Provider.__init__(self, ProviderSettings())
        self._reply = ChatResponse(
            id="gen-bench",
            model="bench/model",
            provider=self.name,
            message=Message.assistant("pong"),
            finish_reason="stop",
            usage=Usage(prompt_tokens=5, completion_tokens=1, total_tokens=6),
        )

    def execute(self, request: Any, *, options: CallOptions | None = None) -> ChatResponse:
        return self._reply

    def close(self) -> None:
        pass


def variants(inner: Provider) -> dict[str, Provider]:
    """Every variant wraps the same provider instance: same session, same connection."""

    def layered(*names: str) -> Provider:
        layers = []
        for name in names:
            if name == "metrics":
                context = LayerContext(inner, MetricsSettings(), inner.name, "")
                layers.append(metrics_plugin.build_layer(context))
            else:
                context = LayerContext(inner, BreakerSettings(), inner.name, "")
                layers.append(breaker_plugin.build_layer(context))
        return LayeredProvider(inner, layers)

    return {
        "bare": inner,
        "pipeline": layered(),  # LayeredProvider with no layers: the core's own cost
        "metrics": layered("metrics"),
        "breaker": layered("breaker"),
        "metrics+breaker": layered("metrics", "breaker"),
    }


def run(providers: dict[str, Provider], rounds: int, calls: int) -> dict[str, tuple[float, float]]:
    """Per variant: median per-call time, and median paired difference to "bare".

    Variants alternate call by call (in a fresh random order each time), so
    drift in the machine or the server hits all of them alike. The paired
    figure compares each call with the bare call of the same group, which
    cancels what the group shares; it is the better estimate of a small
    added cost. Both are medians of per-round medians.
    """
    request = ChatRequest.coerce({"model": "bench/model", "messages": [{"role": "user", "content": "ping"}]})
    names = list(providers)
    for provider in providers.values():  # warm up connections and code paths
        for _ in range(50):
            provider.execute(request)
    executes = [(name, providers[name].execute) for name in names]
    clock = time.perf_counter
    shuffle = Random(5).shuffle
    per_round: dict[str, list[float]] = {name: [] for name in names}
    paired_round: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(rounds):
        samples: dict[str, list[float]] = {name: [] for name in names}
        paired: dict[str, list[float]] = {name: [] for name in names}
        for _ in range(calls):
            order = list(executes)
            shuffle(order)  # balanced positions and predecessors, so neither biases a variant
            group = {}
            for name, execute in order:
                start = clock()
                execute(request)
                group[name] = clock() - start
            for name, elapsed in group.items():
                samples[name].append(elapsed)
                paired[name].append(elapsed - group["bare"])
        for name in names:
            per_round[name].append(statistics.median(samples[name]))
            paired_round[name].append(statistics.median(paired[name]))
    return {name: (statistics.median(per_round[name]), statistics.median(paired_round[name])) for name in names}


def report(title: str, results: dict[str, tuple[float, float]], *, share: bool = True) -> None:
    bare = results["bare"][0]
    print(f"\n{title}")
    print(
        f"  {'variant':<17}{'median/call':>14}{'vs bare':>9}{'added':>12}"
        f"{'paired added':>15}{'share' if share else '':>9}"
    )
    for name, (value, paired) in results.items():
        print(
            f"  {name:<17}{value * 1e6:>11.1f} us{value / bare:>9.4f}{(value - bare) * 1e6:>+9.2f} us"
            f"{paired * 1e6:>+12.2f} us" + (f"{paired / bare:>+9.2%}" if share else "")
        )


def summary(loopback: dict[str, tuple[float, float]], memory: dict[str, tuple[float, float]]) -> None:
    bare = loopback["bare"][0]
    measured = loopback["metrics+breaker"][1]
    cpu = memory["metrics+breaker"][1] - memory["pipeline"][1]
    noise = loopback["pipeline"][1] - (memory["pipeline"][1] - memory["bare"][1])
    verdict = "met" if measured / bare < 0.03 else "NOT met"
    print("\nsummary (target: metrics + breaker add under 3% to a loopback call)")
    print(
        f"  metrics + breaker, measured on the loopback call: {measured * 1e6:+.1f} us = "
        f"{measured / bare:.2%} -> {verdict}"
    )
    print(
        f"  their own CPU cost (in-memory, beyond the empty pipeline): {cpu * 1e6:.2f} us = "
        f"{cpu / bare:.2%} of the call"
    )
    print(
        f"  the empty pipeline (about 1 us of CPU) measured {loopback['pipeline'][1] * 1e6:+.1f} us on loopback "
        f"({noise * 1e6:+.1f} us beyond its CPU): the scale of measurement noise here"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=41)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument(
        "--provider",
        choices=("minimal", "openrouter"),
        default="minimal",
        help="the provider making the loopback call: the minimal one defined here, "
        "or llmrelay's OpenRouter provider pointed at the loopback server",
    )
    args = parser.parse_args()

    ready: Any = multiprocessing.Queue()
    server = multiprocessing.Process(target=serve, args=(ready,), daemon=True)
    server.start()
    url = f"http://127.0.0.1:{ready.get(timeout=10)}/v1"
    try:
        inner: Provider
        if args.provider == "openrouter":
            from llmrelay.core import create_provider

            # A dummy key: the loopback server never checks it.
            inner = create_provider("openrouter", api_key="sk-or-v1-" + "0" * 64, base_url=url, plugins=False)
        else:
            inner = LoopbackProvider(url)
        loopback_results = run(variants(inner), args.rounds, args.calls)
        report(
            f"loopback HTTP call, {args.provider} provider ({args.rounds} interleaved rounds x {args.calls} calls)",
            loopback_results,
        )
        metrics_registry().clear()
        memory_results = run(variants(MemoryProvider()), args.rounds, args.calls * 10)
        report(
            f"in-memory provider, layers only ({args.rounds} rounds x {args.calls * 10} calls)",
            memory_results,
            share=False,
        )
        summary(loopback_results, memory_results)
    finally:
        server.terminate()
        server.join()


def serve(ready: Any) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ready.put(server.server_address[1])
    server.serve_forever()


if __name__ == "__main__":
    main()
