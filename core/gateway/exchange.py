"""One HTTP exchange as the gateway's handlers see it: the request and the response they return.

:mod:`.app` dispatches a :class:`Request` to a handler of :mod:`.routes`,
which answers with a :class:`Response`; both sides import them from here.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..errors import BadRequestError
from . import openai_ingress as openai

__all__ = ["ANTHROPIC", "JSON", "OPENAI", "SSE", "BodyTooLarge", "Request", "Response", "json_response"]

OPENAI, ANTHROPIC = "openai", "anthropic"
JSON = "application/json"
SSE = "text/event-stream"


class BodyTooLarge(Exception):
    """The request body is over the gateway's limit (answered 413)."""


class Request:
    """One request as the handlers see it, read from the WSGI environ (the body on first use)."""

    __slots__ = ("environ", "method", "path", "started", "upstream", "_body")

    def __init__(self, environ: dict[str, Any], started: float) -> None:
        self.environ = environ
        self.method: str = environ.get("REQUEST_METHOD", "GET")
        self.path: str = environ.get("PATH_INFO", "/") or "/"
        self.started = started
        self.upstream = 0.0  # seconds spent waiting for the upstream
        self._body: bytes | None = None

    def header(self, name: str) -> str | None:
        value = self.environ.get("HTTP_" + name.upper().replace("-", "_"))
        return value if isinstance(value, str) else None

    @property
    def client_socket(self) -> socket.socket | None:
        """The client's connection, where the server hands it over (gunicorn: ``environ["gunicorn.socket"]``).

        A stream watches it to notice a client that hung up (:mod:`.pump`).
        """
        sock = self.environ.get("gunicorn.socket")
        return sock if isinstance(sock, socket.socket) else None

    @property
    def query(self) -> str:
        return str(self.environ.get("QUERY_STRING", ""))

    def body(self, limit: int) -> bytes:
        if self._body is None:
            length_text = self.environ.get("CONTENT_LENGTH") or ""
            stream = self.environ["wsgi.input"]
            if length_text:
                try:
                    length = int(length_text)
                except ValueError:
                    raise BadRequestError("Content-Length is not a number") from None
                if length > limit:
                    raise BodyTooLarge()
                self._body = stream.read(length) if length else b""
            else:  # chunked: read one byte past the limit to know it was passed
                self._body = stream.read(limit + 1)
                if len(self._body) > limit:
                    raise BodyTooLarge()
        return self._body

    def json(self, limit: int) -> Any:
        raw = self.body(limit)
        try:
            return json.loads(raw)
        except ValueError:
            raise BadRequestError("the request body is not valid JSON") from None


@dataclass(slots=True)
class Response:
    status: int
    # A streamed body is an iterable with close(): the server calls it when the
    # response ends or the client went away (see .pump.Pump).
    body: bytes | Iterable[bytes]
    content_type: str = JSON
    headers: list[tuple[str, str]] = field(default_factory=list)


def json_response(status: int, data: Any, headers: list[tuple[str, str]] | None = None) -> Response:
    return Response(status, openai.dumps(data), headers=headers or [])
