"""A tiny HTTP server on 127.0.0.1 that answers from a script, for provider tests.

Each test queues :class:`Reply` objects (or sets a ``handler``); the server
records every request it got. Streamed replies are written chunk by chunk
with ``Connection: close``; a body cut short (the connection closing before
the service's end-of-stream event) is a reply whose chunks stop early,
which is what a cassette cannot show.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict/list -> JSON, str/bytes as given
    headers: dict[str, str] = field(default_factory=dict)
    chunks: list[bytes] | None = None  # a streamed body, written one chunk at a time


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


def sse(*events: tuple[str | None, Any]) -> list[bytes]:
    """SSE frames: ``(event name or None, data)``; data dicts are JSON-encoded."""
    frames = []
    for name, data in events:
        text = data if isinstance(data, str) else json.dumps(data)
        head = f"event: {name}\n" if name else ""
        frames.append(f"{head}data: {text}\n\n".encode())
    return frames


class ScriptedServer:
    """``with ScriptedServer() as server: server.replies.append(Reply(...)); server.url``."""

    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self.handler: Callable[[Recorded], Reply] | None = None
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                recorded = Recorded(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                with outer._lock:
                    outer.requests.append(recorded)
                    if outer.handler is not None:
                        reply = outer.handler(recorded)
                    elif outer.replies:
                        reply = outer.replies.pop(0)
                    else:
                        reply = Reply(500, {"error": {"message": "the test script has no reply left"}})
                self._send(reply)

            do_GET = do_POST = _handle

            def _send(self, reply: Reply) -> None:
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if reply.chunks is not None:
                    self.send_header("Content-Type", reply.headers.get("Content-Type", "text/event-stream"))
                    self.send_header("Connection", "close")
                    self.end_headers()
                    for chunk in reply.chunks:
                        self.wfile.write(chunk)
                        self.wfile.flush()
                    self.close_connection = True
                    return
                if isinstance(reply.body, (dict, list)):
                    payload = json.dumps(reply.body).encode()
                    self.send_header("Content-Type", "application/json")
                elif isinstance(reply.body, str):
                    payload = reply.body.encode()
                else:
                    payload = reply.body or b""
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
