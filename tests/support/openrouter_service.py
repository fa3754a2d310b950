"""An OpenRouter behind a ``MockTransport``: real recorded bodies per path, and an outage switch.

For the pricing, embeddings and catalog-fallback tests: each path answers
with its body (the recorded samples under ``tests/data/openrouter_samples``
unless a test sets another), ``down`` makes every request fail the way an
unreachable service does, and ``requests`` counts what was sent per path.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from llmrelay.core.errors import APIConnectionError
from llmrelay.core.http.transport import HTTPRequest, HTTPResponse, MockTransport

__all__ = ["EMBEDDINGS", "KEY", "SAMPLES", "OpenRouterService", "json_reply", "sample"]

SAMPLES = Path(__file__).resolve().parent.parent / "data" / "openrouter_samples"
KEY = "sk-or-v1-" + "0123456789abcdef" * 4

# A POST /embeddings answer in the documented shape (no real recording was found);
# entries out of order, as the spec allows (index says which input).
EMBEDDINGS = {
    "object": "list",
    "data": [
        {"object": "embedding", "embedding": [0.25, -0.5, 0.125], "index": 1},
        {"object": "embedding", "embedding": [0.5, 0.75, -0.25], "index": 0},
    ],
    "model": "Qwen/Qwen3-Embedding-8B",
    "usage": {"prompt_tokens": 9, "total_tokens": 9, "cost": 1.8e-7},
    "provider": "Nebius",
    "id": "gen-emb-1750000000-AbCdEfGhIjKlMnOpQrSt",
}


def sample(name: str) -> Any:
    return json.loads((SAMPLES / name).read_text())


def json_reply(status: int, body: Any, headers: dict[str, str] | None = None) -> HTTPResponse:
    return HTTPResponse(status, {"content-type": "application/json", **(headers or {})}, json.dumps(body).encode())


class OpenRouterService:
    """Callable as a ``MockTransport`` handler. ``bodies`` maps a path ("/models") to a JSON body;
    a streamed chat request gets ``stream_body`` (recorded SSE bytes)."""

    def __init__(self, bodies: dict[str, Any] | None = None) -> None:
        self.bodies: dict[str, Any] = {
            "/models": sample("models_2026.json"),
            "/chat/completions": sample("chat_usage_2025.json")["response"],
        }
        self.bodies.update(bodies or {})
        self.stream_body = (SAMPLES / "stream_native_options_2025.sse").read_bytes()
        self.down = False
        self.requests: Counter[str] = Counter()

    def transport(self) -> MockTransport:
        return MockTransport(self)

    def __call__(self, request: HTTPRequest) -> HTTPResponse:
        path = urlsplit(request.url).path.removeprefix("/api/v1")
        self.requests[path] += 1
        if self.down:
            raise APIConnectionError("connection refused (the test's outage)")
        if request.stream:
            return HTTPResponse(200, {"content-type": "text/event-stream"}, stream=iter([self.stream_body]))
        body = self.bodies.get(path)
        if body is None:
            return json_reply(404, {"error": {"code": 404, "message": f"no route {path}"}})
        return json_reply(200, body)
