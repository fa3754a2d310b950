"""The gateway as a plain WSGI application: routes, authentication, body limit, errors.

Any WSGI server runs it; ``llmrelay serve`` runs it on gunicorn's ``gthread``
worker (:mod:`.server`), which writes each piece a streamed body yields at
once. A stream's body is an iterable with ``close()`` (:class:`.pump.Pump`):
when the client goes away the server's next write fails, the server calls
``close()``, and that closes the upstream stream, so an abandoned stream stops
costing tokens.

Every request but ``/healthz`` needs a gateway key (``Authorization: Bearer
KEY`` or ``x-api-key: KEY``), compared in constant time. Errors are answered
in the protocol of the route (Anthropic's shape under ``/v1/messages``,
OpenAI's elsewhere), never with a traceback. Each response carries
``x-llmrelay-overhead-ms``: the time spent in the gateway, the upstream wait
excluded (for a stream, up to its first byte).
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

from ..errors import BadRequestError, LLMRelayError
from ..secrets import redact
from . import routes
from .backend import Backend
from .errors import anthropic_error_body, openai_error_body
from .exchange import ANTHROPIC, OPENAI, BodyTooLarge, Request, Response, json_response
from .observability import Observer
from .settings import GatewaySettings

__all__ = ["GatewayApp", "Request", "Response"]

log = logging.getLogger("llmrelay.gateway")

Handler = Callable[["GatewayApp", Request], Response]


class GatewayApp:
    """``app(environ, start_response)``; ``close()`` closes the providers."""

    def __init__(
        self,
        backend: Backend,
        settings: GatewaySettings,
        observer: Observer | None = None,
        *,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.backend = backend
        self.settings = settings
        self.observer = observer or Observer(backend, settings)
        self.clock = clock
        self._keys = settings.keys()
        self._routes: dict[str, dict[str, tuple[Handler, str, bool]]] = {}
        routes.install(self)

    def route(self, method: str, path: str, handler: Handler, protocol: str = OPENAI, *, auth: bool = True) -> None:
        self._routes.setdefault(path, {})[method] = (handler, protocol, auth)

    # ------------------------------------------------------------------ WSGI

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ, self.clock())
        protocol = self._protocol_of(request)
        try:
            response = self._dispatch(request)
        except BodyTooLarge:
            response = self.error(
                protocol, BadRequestError(f"request body over {self.settings.max_body_bytes} bytes"), 413
            )
        except Exception as exc:
            response = self.error(protocol, exc)
        overhead = (self.clock() - request.started - request.upstream) * 1000
        headers = [("Content-Type", response.content_type), ("x-llmrelay-overhead-ms", f"{overhead:.3f}")]
        if isinstance(response.body, bytes):
            headers.append(("Content-Length", str(len(response.body))))
        else:
            headers += [("Cache-Control", "no-cache"), ("X-Accel-Buffering", "no")]
        headers += response.headers
        # Unknown paths share one label: a client must not grow the metrics without bound.
        path = request.path if request.path in self._routes else "other"
        self.observer.observe_request(path, response.status, overhead)
        start_response(f"{response.status} {HTTPStatus(response.status).phrase}", headers)
        if isinstance(response.body, bytes):
            return [response.body]
        return response.body

    def _protocol_of(self, request: Request) -> str:
        if request.path.startswith("/v1/messages") or request.header("anthropic-version"):
            return ANTHROPIC
        return OPENAI

    def _dispatch(self, request: Request) -> Response:
        methods = self._routes.get(request.path, {})
        entry = methods.get(request.method)
        # Only an open route (/healthz) answers without a key: anything else, even a
        # wrong path or method, is 401 first, so probing learns nothing.
        if (entry is None or entry[2]) and not self.authorized(request):
            return self.error(entry[1] if entry else self._protocol_of(request), _Unauthorized(), 401)
        if entry is None:
            if methods:
                return self.error(self._protocol_of(request), _NotFound(f"{request.method} is not allowed here"), 405)
            return self.error(self._protocol_of(request), _NotFound(f"no route {request.method} {request.path}"), 404)
        handler, protocol, _auth = entry
        try:
            return handler(self, request)
        except BodyTooLarge:
            raise
        except Exception as exc:
            return self.error(protocol, exc)

    def authorized(self, request: Request) -> bool:
        given = request.header("x-api-key")
        if given is None:
            bearer = request.header("authorization") or ""
            if bearer[:7].lower() == "bearer ":
                given = bearer[7:].strip()
        if not given:
            return False
        token = given.encode()
        # Every key is compared, each in constant time, so timing tells nothing about which one is close.
        matched = False
        for key in self._keys:
            matched |= hmac.compare_digest(token, key)
        return matched

    def error(self, protocol: str, exc: BaseException, status: int | None = None) -> Response:
        if not isinstance(exc, (LLMRelayError, _GatewayError)):
            # A bug: the client gets a plain 500; the log gets the type and a redacted message, not the request.
            log.error("gateway request failed: %s: %s", type(exc).__name__, redact(str(exc)))
        if isinstance(exc, _GatewayError):
            status = status or exc.status
        render = anthropic_error_body if protocol == ANTHROPIC else openai_error_body
        code, body, retry_after = render(exc, status)
        if isinstance(exc, _GatewayError):
            _set_message(body, exc.message)
        headers = [("Retry-After", str(max(1, round(retry_after))))] if retry_after else []
        return json_response(code, body, headers)

    def close(self) -> None:
        self.observer.close()
        self.backend.close()


class _GatewayError(Exception):
    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class _Unauthorized(_GatewayError):
    status = 401

    def __init__(self) -> None:
        super().__init__("invalid or missing gateway key (send Authorization: Bearer KEY or x-api-key: KEY)")


class _NotFound(_GatewayError):
    status = 404


def _set_message(body: dict[str, Any], message: str) -> None:
    body["error"]["message"] = message
