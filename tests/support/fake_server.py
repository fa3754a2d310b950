"""A local HTTP server that speaks OpenRouter, with scriptable faults.

It listens on 127.0.0.1 (port 0: the OS picks one) in a background thread
and answers like OpenRouter: ``POST /chat/completions`` (JSON, or SSE with
``: OPENROUTER PROCESSING`` comments when ``stream`` is true), ``GET /models``
(gzip when asked), ``/key``, ``/credits``, ``/generation``. Paths may carry a
prefix (``/api/v1``); matching is on the last part.

Script faults per route, consumed in order, one per request; when a
route's script is empty the normal answer is served::

    server.script("POST", "/chat/completions",
                  Reply(status=429, headers={"Retry-After": "2"}),
                  Reply(reset_before_headers=True),
                  Reply(stream_cut_after=3))

Every request is recorded (method, path, headers, JSON body) and connections
are counted (``open_connections``, ``connections_opened``), for pool and
leak checks. Stalls wait on :attr:`FakeOpenRouter.release` (set when the
server stops), so no test sleeps for a stall's full length.

Use the ``openrouter_server`` fixture from ``tests/support/fixtures.py`` (import it into
the test module: ``from tests.support.fixtures import openrouter_server``), or
``with FakeOpenRouter() as server:`` anywhere, including benchmarks.
"""

from __future__ import annotations

import gzip
import json
import socket
import struct
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = [
    "VALID_KEY",
    "FakeOpenRouter",
    "RecordedRequest",
    "Reply",
    "chat_completion",
    "sample_models",
    "stream_chunks",
]

VALID_KEY = "sk-or-v1-test-0000000000000000000000000000"


@dataclass
class Reply:
    """What to do with one request. Unset fields mean "answer normally".

    ``status`` / ``headers`` / ``body`` (bytes, str or JSON-able) replace the
    normal answer. Faults:

    * ``delay`` seconds before the headers (waits on ``release``, so a test's
      short read timeout fires first);
    * ``reset_before_headers`` / ``reset_after_headers``: TCP reset;
    * ``stream_cut_after=N``: send N data events, then drop the connection
      mid chunked body;
    * ``stream_stall_after=N``: send N events, then go silent (until release);
    * ``stream_error_after=N``: send N events, then an ``error`` event inside
      the HTTP 200 stream (``error`` sets its code/message);
    * ``malformed_json`` / ``html`` / ``empty``: bodies that are not what the
      API promises.
    """

    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    delay: float = 0.0
    reset_before_headers: bool = False
    reset_after_headers: bool = False
    stream_cut_after: int | None = None
    stream_stall_after: int | None = None
    stream_error_after: int | None = None
    error: dict[str, Any] = field(default_factory=lambda: {"code": 502, "message": "Upstream provider failed"})
    malformed_json: bool = False
    html: bool = False
    empty: bool = False
    pad: bytes = b""  # whitespace OpenRouter sends before a JSON body while it works


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


# --------------------------------------------------------------------------- canned answers


def chat_completion(
    model: str = "openai/gpt-4o-mini", text: str = "Hello there!", *, gen_id: str = "gen-1-abc"
) -> dict[str, Any]:
    """A non-streamed completion shaped like OpenRouter's 2025 bodies."""
    return {
        "id": gen_id,
        "provider": "OpenAI",
        "model": model,
        "object": "chat.completion",
        "created": 1754500000,
        "choices": [
            {
                "logprobs": None,
                "finish_reason": "stop",
                "native_finish_reason": "stop",
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None, "reasoning": None},
            }
        ],
        "usage": {
            "prompt_tokens": 12,
            "completion_tokens": 4,
            "total_tokens": 16,
            "cost": 0.0000042,
            "is_byok": False,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "cost_details": {"upstream_inference_cost": None},
            "completion_tokens_details": {"reasoning_tokens": 0, "image_tokens": 0},
        },
    }


def stream_chunks(
    model: str = "openai/gpt-4o-mini", words: int = 5, *, gen_id: str = "gen-2-abc"
) -> list[dict[str, Any]]:
    """Data objects of a streamed completion: deltas, a finish chunk, a usage chunk (2025 shape)."""
    base = {
        "id": gen_id,
        "provider": "OpenAI",
        "model": model,
        "object": "chat.completion.chunk",
        "created": 1754500000,
    }
    out = []
    for i in range(words):
        delta = {"role": "assistant", "content": ("word" if i == 0 else " word") + str(i)}
        out.append(
            {
                **base,
                "choices": [
                    {"index": 0, "delta": delta, "finish_reason": None, "native_finish_reason": None, "logprobs": None}
                ],
            }
        )
    out.append(
        {
            **base,
            "choices": [
                {
                    "index": 0,
                    "delta": {"role": "assistant", "content": ""},
                    "finish_reason": "stop",
                    "native_finish_reason": "stop",
                    "logprobs": None,
                }
            ],
        }
    )
    out.append(
        {
            **base,
            "choices": [
                {
                    "index": 0,
                    "delta": {"role": "assistant", "content": ""},
                    "finish_reason": None,
                    "native_finish_reason": None,
                    "logprobs": None,
                }
            ],
            "usage": {
                "prompt_tokens": 10,
                "completion_tokens": words,
                "total_tokens": 10 + words,
                "cost": 0.00001,
                "is_byok": False,
                "prompt_tokens_details": {"cached_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0},
            },
        }
    )
    return out


def sample_models() -> dict[str, Any]:
    """A small /models answer mixing the 2024, 2025 and 2026 shapes."""
    return {
        "data": [
            {
                "id": "openai/gpt-4o-mini",
                "name": "OpenAI: GPT-4o-mini",
                "created": 1721260800,
                "context_length": 128000,
                "architecture": {
                    "modality": "text+image->text",
                    "input_modalities": ["text", "image"],
                    "output_modalities": ["text"],
                    "tokenizer": "GPT",
                },
                "pricing": {"prompt": "0.00000015", "completion": "0.0000006", "request": "0", "image": "0.000217"},
                "top_provider": {"context_length": 128000, "max_completion_tokens": 16384, "is_moderated": True},
                "supported_parameters": ["max_tokens", "temperature", "tools", "tool_choice"],
            },
            {
                "id": "openrouter/auto",
                "name": "Auto Router",
                "created": 1699401600,
                "context_length": 2000000,
                "architecture": {"modality": "text->text", "tokenizer": "Router", "instruct_type": None},
                "pricing": {"prompt": "-1", "completion": "-1"},
                "top_provider": {"context_length": None, "max_completion_tokens": None, "is_moderated": False},
                "per_request_limits": None,
            },
            {
                "id": "meta-llama/llama-3.3-70b-instruct:free",
                "name": "Llama 3.3 70B (free)",
                "created": 1733506137,
                "context_length": None,
                "architecture": {"modality": "text->text", "input_modalities": ["text"], "output_modalities": ["text"]},
                "pricing": {"prompt": "0", "completion": "0"},
                "top_provider": {"context_length": 65536, "max_completion_tokens": None, "is_moderated": False},
            },
        ],
        "total_count": 3,
        "links": {"next": None},
    }


# --------------------------------------------------------------------------- server

Route = tuple[str, str]


class FakeOpenRouter:
    """The server. ``base_url`` is ``http://127.0.0.1:<port>/api/v1``."""

    def __init__(
        self, *, api_key: str = VALID_KEY, chunk_pause: float = 0.0, comments: int = 2, one_write: bool = False
    ) -> None:
        self.api_key = api_key
        self.chunk_pause = chunk_pause  # seconds between SSE events (0: write as fast as possible)
        # Benchmarks: send a whole stream (still one HTTP chunk per event) in one
        # write, so the server is not what limits the client's chunks/s.
        self.one_write = one_write
        self._one_write_cache: dict[Any, bytes] = {}
        self.comments = comments  # ": OPENROUTER PROCESSING" lines before the first event
        self.release = threading.Event()
        self.requests: list[RecordedRequest] = []
        self.scripts: dict[Route, deque[Reply]] = defaultdict(deque)
        self.handlers: dict[Route, Callable[[RecordedRequest], Reply | None]] = {}
        self.key_info: dict[str, Any] = {
            "label": "sk-or-v1-000...000",
            "limit": None,
            "limit_remaining": None,
            "usage": 0.25,
            "is_free_tier": False,
        }
        self.credits_status = 200
        self.generation_404s = 0  # /generation answers 404 this many times first
        self.models_payload: dict[str, Any] = sample_models()
        self.stream_words = 5
        self.open_connections = 0
        self.connections_opened = 0
        self.max_open_connections = 0
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v1"

    def start(self) -> FakeOpenRouter:
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeOpenRouter:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ------------------------------------------------------------------ scripting

    def script(self, method: str, path: str, *replies: Reply) -> None:
        """Queue ``replies`` for the next requests to ``method path`` (path without prefix)."""
        with self._lock:
            self.scripts[(method.upper(), path)].extend(replies)

    def handle(self, method: str, path: str, handler: Callable[[RecordedRequest], Reply | None]) -> None:
        """Decide every request to a route with ``handler`` (None = answer normally)."""
        self.handlers[(method.upper(), path)] = handler

    def count(self, method: str | None = None, path: str | None = None) -> int:
        with self._lock:
            return sum(
                1
                for r in self.requests
                if (method is None or r.method == method.upper()) and (path is None or r.path == path)
            )

    def _next_reply(self, request: RecordedRequest) -> Reply | None:
        route = (request.method, request.path)
        with self._lock:
            self.requests.append(request)
            queue = self.scripts.get(route)
            if queue:
                return queue.popleft()
        handler = self.handlers.get(route)
        return handler(request) if handler is not None else None

    def _connection(self, delta: int) -> None:
        with self._lock:
            self.open_connections += delta
            if delta > 0:
                self.connections_opened += 1
                self.max_open_connections = max(self.max_open_connections, self.open_connections)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


class _Reset(Exception):
    """Raised inside the handler to end the connection with a TCP reset."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without this, Nagle plus
    # delayed ACKs add ~40 ms to every response.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    @property
    def owner(self) -> FakeOpenRouter:
        return self.server.owner  # type: ignore[attr-defined,no-any-return]

    def setup(self) -> None:
        super().setup()
        self.owner._connection(+1)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.owner._connection(-1)

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except _Reset:
            self._reset()
            self.close_connection = True
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _reset(self) -> None:
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    # ------------------------------------------------------------------ dispatch

    def _dispatch(self, method: str) -> None:
        request = self._read_request(method)
        reply = self.owner._next_reply(request) or Reply()
        if reply.delay:
            self.owner.release.wait(reply.delay)
        if reply.reset_before_headers:
            raise _Reset()
        if reply.status is not None or reply.body is not None or reply.malformed_json or reply.html or reply.empty:
            return self._custom(reply)
        if self.headers.get("Authorization") != f"Bearer {self.owner.api_key}":
            return self._json(401, {"error": {"code": 401, "message": "No auth credentials found"}}, reply)
        return self._route(request, reply)

    def _read_request(self, method: str) -> RecordedRequest:
        parts = urlsplit(self.path)
        path = parts.path
        if path.startswith("/api/v1"):
            path = path[len("/api/v1") :]
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        return RecordedRequest(
            method, path, parse_qs(parts.query), {k.lower(): v for k, v in self.headers.items()}, body
        )

    def _route(self, request: RecordedRequest, reply: Reply) -> None:
        route = (request.method, request.path)
        body = request.body
        if route == ("POST", "/chat/completions"):
            if isinstance(body, dict) and body.get("stream"):
                return self._stream(reply, body)
            return self._json(200, chat_completion(model=(body or {}).get("model", "openai/gpt-4o-mini")), reply)
        if route == ("GET", "/models"):
            return self._json(200, self.owner.models_payload, reply, gzip_ok=True)
        if route == ("GET", "/key"):
            return self._json(200, {"data": self.owner.key_info}, reply)
        if route == ("GET", "/credits"):
            if self.owner.credits_status == 403:
                return self._json(
                    403,
                    {"error": {"code": 403, "message": "Only management keys can fetch credits for an account"}},
                    reply,
                )
            return self._json(200, {"data": {"total_credits": 20, "total_usage": 4.5}}, reply)
        if route == ("GET", "/generation"):
            return self._generation(request, reply)
        return self._json(404, {"error": {"code": 404, "message": f"no route {request.method} {request.path}"}}, reply)

    def _generation(self, request: RecordedRequest, reply: Reply) -> None:
        with self.owner._lock:
            missing = self.owner.generation_404s > 0
            if missing:
                self.owner.generation_404s -= 1
        if missing:
            return self._json(404, {"error": {"code": 404, "message": "Generation not found"}}, reply)
        gen_id = (request.query.get("id") or ["gen-x"])[0]
        return self._json(
            200,
            {
                "data": {
                    "id": gen_id,
                    "model": "openai/gpt-4o-mini",
                    "provider_name": "OpenAI",
                    "total_cost": 0.0000042,
                    "tokens_prompt": 12,
                    "tokens_completion": 4,
                    "latency": 321,
                    "generation_time": 250,
                    "finish_reason": "stop",
                    "streamed": False,
                    "cancelled": False,
                    "created_at": "2025-08-06T12:00:00Z",
                }
            },
            reply,
        )

    # ------------------------------------------------------------------ writers

    def _headers(self, status: int, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()

    def _json(self, status: int, payload: Any, reply: Reply, *, gzip_ok: bool = False) -> None:
        data = reply.pad + json.dumps(payload).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Generation-Id": str(payload.get("id", "")) if isinstance(payload, dict) else "",
        }
        if gzip_ok and "gzip" in (self.headers.get("Accept-Encoding") or ""):
            data = gzip.compress(data)
            headers["Content-Encoding"] = "gzip"
        headers["Content-Length"] = str(len(data))
        headers.update(reply.headers)
        self._headers(status, headers)
        if reply.reset_after_headers:
            self.wfile.flush()
            raise _Reset()
        self.wfile.write(data)

    def _custom(self, reply: Reply) -> None:
        status = reply.status or 200
        content_type = "application/json"
        if reply.empty:
            data = b""
        elif reply.html:
            content_type = "text/html"
            data = b"<html><head><title>502 Bad Gateway</title></head><body>cloudflare</body></html>"
        elif reply.malformed_json:
            data = b'{"id": "gen-broken", "choices": [ {"message": '
        elif isinstance(reply.body, bytes):
            data = reply.body
        elif isinstance(reply.body, str):
            data = reply.body.encode()
        else:
            data = json.dumps(reply.body).encode()
        data = reply.pad + data
        headers = {"Content-Type": content_type, "Content-Length": str(len(data))}
        headers.update(reply.headers)
        self._headers(status, headers)
        if reply.reset_after_headers:
            self.wfile.flush()
            raise _Reset()
        self.wfile.write(data)

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _stream(self, reply: Reply, body: dict[str, Any]) -> None:
        owner = self.owner
        headers = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "Transfer-Encoding": "chunked"}
        headers.update(reply.headers)
        self._headers(200, headers)
        self.wfile.flush()
        if reply.reset_after_headers:
            raise _Reset()
        events = stream_chunks(model=body.get("model", "openai/gpt-4o-mini"), words=owner.stream_words)
        if owner.one_write and reply == Reply():
            key = (body.get("model"), owner.stream_words, owner.comments)
            payload = owner._one_write_cache.get(key)
            if payload is None:
                frames = [b": OPENROUTER PROCESSING\n\n"] * owner.comments
                frames += [b"data: " + json.dumps(event).encode() + b"\n\n" for event in events]
                frames.append(b"data: [DONE]\n\n")
                payload = b"".join(b"%x\r\n%s\r\n" % (len(f), f) for f in frames) + b"0\r\n\r\n"
                owner._one_write_cache[key] = payload
            self.wfile.write(payload)
            self.wfile.flush()
            return
        for _ in range(owner.comments):
            self._chunk(b": OPENROUTER PROCESSING\n\n")
        for number, event in enumerate(events):
            if reply.stream_cut_after is not None and number >= reply.stream_cut_after:
                self.wfile.write(b'40\r\ndata: {"partial')  # half a chunk, then the connection dies
                self.wfile.flush()
                raise _Reset()
            if reply.stream_stall_after is not None and number >= reply.stream_stall_after:
                owner.release.wait(30)
                raise _Reset()
            if reply.stream_error_after is not None and number >= reply.stream_error_after:
                failed = {
                    **event,
                    "error": reply.error,
                    "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}],
                }
                self._chunk(b"data: " + json.dumps(failed).encode() + b"\n\n")
                break
            self._chunk(b"data: " + json.dumps(event).encode() + b"\n\n")
            if owner.chunk_pause:
                time.sleep(owner.chunk_pause)
        self._chunk(b"data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
