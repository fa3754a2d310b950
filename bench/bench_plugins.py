"""Added per-call cost of the metrics and breaker plugins.

Run:  /work/venv/bin/python bench/bench_plugins.py [--rounds 41] [--calls 200]

Two measurements, each in one interleaved run (every round runs every
variant, in rotating order, so drift hits them all alike):

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

Printed: the median per-call time of each variant over the rounds, its
ratio to the bare provider call and the added microseconds, and the same
against "pipeline" (the core's ``LayeredProvider`` with no layers, which
every plugin needs anyway: request coercion and the ``Call`` object), so
the plugins' own share is visible.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

from llmrelay.core import CallOptions, ChatRequest, ChatResponse, Message, Provider, ProviderSettings, Usage
from llmrelay.core.pipeline import LayerContext, LayeredProvider
from llmrelay.plugins import breaker as breaker_plugin
from llmrelay.plugins import metrics as metrics_plugin
from llmrelay.plugins.breaker import BreakerSettings
from llmrelay.plugins.metrics import MetricsSettings, metrics_registry

REPLY = json.dumps({
    "id": "gen-bench", "model": "bench/model", "object": "chat.completion",
    "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "pong"}}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6, "cost": 0.000001},
}).encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without this, Nagle plus the
    # client's delayed ACK adds ~40 ms to every call.
    disable_nagle_algorithm = True

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
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
            id=data["id"], model=data["model"], provider=self.name,
            message=Message.assistant(choice["message"]["content"]), finish_reason=choice["finish_reason"],
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
            id="gen-bench", model="bench/model", provider=self.name, message=Message.assistant("pong"),
            finish_reason="stop", usage=Usage(prompt_tokens=5, completion_tokens=1, total_tokens=6),
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


def run(providers: dict[str, Provider], rounds: int, calls: int) -> dict[str, float]:
    request = ChatRequest.coerce({"model": "bench/model", "messages": [{"role": "user", "content": "ping"}]})
    names = list(providers)
    for provider in providers.values():  # warm up connections and code paths
        for _ in range(50):
            provider.execute(request)
    per_call: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(rounds):
        order = names[round_index % len(names):] + names[: round_index % len(names)]
        for name in order:
            execute = providers[name].execute
            start = time.perf_counter()
            for _ in range(calls):
                execute(request)
            per_call[name].append((time.perf_counter() - start) / calls)
    return {name: statistics.median(values) for name, values in per_call.items()}


def report(title: str, medians: dict[str, float]) -> None:
    bare = medians["bare"]
    pipeline = medians["pipeline"]
    print(f"\n{title}")
    print(f"  {'variant':<17}{'median/call':>14}{'vs bare':>9}{'added':>12}{'vs pipeline':>13}{'added':>12}")
    for name, value in medians.items():
        print(
            f"  {name:<17}{value * 1e6:>11.1f} us{value / bare:>9.4f}{(value - bare) * 1e6:>+9.2f} us"
            f"{value / pipeline:>13.4f}{(value - pipeline) * 1e6:>+9.2f} us"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=41)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()

    ready: Any = multiprocessing.Queue()
    server = multiprocessing.Process(target=serve, args=(ready,), daemon=True)
    server.start()
    url = f"http://127.0.0.1:{ready.get(timeout=10)}/v1"
    try:
        loopback = variants(LoopbackProvider(url))
        report(f"loopback HTTP call ({args.rounds} interleaved rounds x {args.calls} calls)",
               run(loopback, args.rounds, args.calls))
        metrics_registry().clear()
        memory = variants(MemoryProvider())
        report(f"in-memory provider, layers only ({args.rounds} rounds x {args.calls * 20} calls)",
               run(memory, args.rounds, args.calls * 20))
    finally:
        server.terminate()
        server.join()


def serve(ready: Any) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ready.put(server.server_address[1])
    server.serve_forever()


if __name__ == "__main__":
    main()
