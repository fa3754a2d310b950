"""The HTTP transport seam: one small request/response shape, two transports.

Providers build an :class:`HTTPRequest`, hand it to a :class:`Transport`
and get an :class:`HTTPResponse` back; nothing above this module sees a
``requests``, ``urllib3`` or ``socket`` object or exception.

:class:`RequestsTransport` is the production transport, built on ``requests``'
public API only: each request is a ``requests.PreparedRequest`` sent with
the transport's own ``HTTPAdapter`` (``HTTPAdapter.send(..., stream=True)``),
and each body is read from ``response.raw`` with urllib3's public reading
methods (``stream()`` for a chunked body, ``read1()`` for any other, ``read()``
for a whole one). The decisions it makes are deliberate and visible:

* **Proxies** come from ``settings.proxies``, or, only when
  ``settings.trust_env`` is on, from ``HTTPS_PROXY`` / ``HTTP_PROXY`` /
  ``ALL_PROXY`` / ``NO_PROXY`` read **once** when the transport is built.
  ``Session.request`` re-reads the whole environment (and ``~/.netrc``) on
  every call, which costs about a quarter of a loopback call.
* **Redirects are not followed**: an API that redirects is misconfigured
  (wrong ``base_url``), and following a redirect could send the key elsewhere.
* **No netrc, no cookies**: credentials come from settings only. Sending
  through the adapter, not ``Session.send``, keeps the session's cookie jar
  out of every call.
* Keep-alive is on; TLS certificates are verified (a CA bundle from
  ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` is honoured when ``trust_env``).
* **Bodies are decoded by llmrelay** (gzip / deflate, the encodings the
  client asks for), so a stand-in response that cannot decode (vcrpy's
  replay stub) is read exactly like a real one.
* **Timeouts**: ``timeout=(connect, read)`` bounds connecting and every socket
  read until the headers arrive (and the whole of a non-streamed body). Once a
  streamed response's headers are in, its socket's timeout becomes
  ``idle_timeout``, so a stalled stream fails after that much silence.
* A streamed body that is closed before its end discards its connection
  (requests' ``Response.close``); one read to the end goes back to the pool.
  Closing it works from any thread: a read blocked on another thread returns
  at once (the socket is shut down first, :func:`~.wire.close_stream`).
  :meth:`HTTPResponse.finish` reads what is left after an end marker, briefly,
  so the connection can be reused.
* :meth:`RequestsTransport.close` closes every pooled socket at once rather
  than leaving them to the garbage collector.
* The adapter is requests' own, with the per-call work this transport never
  needs (proxy lookups for an unproxied request, cookies) left out through
  the methods requests documents for subclasses (see ``_Adapter``).

Bodies are read, and foreign exceptions mapped to llmrelay's errors (in one
table), by :mod:`llmrelay.core.http.wire`.

:class:`MockTransport` answers from a function, for tests; pass it as
``create_provider(name, transport=MockTransport(handler))``.
"""

from __future__ import annotations

import os
import threading
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict

from ..errors import APIConnectionError
from ..settings import ProviderSettings
from .messages import Headers, HTTPRequest, HTTPResponse
from .wire import (
    SEND_CAUGHT,
    SEND_ERRORS,
    STREAM_READ_SIZE,
    close_stream,
    finish_stream,
    map_error,
    set_read_timeout,
    stream_body,
    whole_body,
)

__all__ = [
    "STREAM_READ_SIZE",
    "USER_AGENT",
    "HTTPRequest",
    "HTTPResponse",
    "Headers",
    "MockTransport",
    "RequestsTransport",
    "Transport",
]

USER_AGENT = "llmrelay/0.1"


class Transport(ABC):
    """Sends :class:`HTTPRequest` objects. Implementations must be thread-safe."""

    @abstractmethod
    def send(self, request: HTTPRequest) -> HTTPResponse:
        """Send and return the response; a streamed one is open until read or closed.

        Raises only :class:`~llmrelay.core.errors.LLMRelayError` subclasses.
        """

    def close(self) -> None:  # noqa: B027  (optional: a transport that pools nothing has nothing to do)
        """Release pooled connections."""

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# --------------------------------------------------------------------------- requests


def _proxies_from_environment() -> tuple[dict[str, str], list[str]]:
    """``{scheme: proxy}`` and the NO_PROXY entries, read once."""
    found = urllib.request.getproxies_environment()
    no_proxy = found.pop("no", "") or ""
    proxies = {k: v for k, v in found.items() if k in ("http", "https", "all")}
    return proxies, [entry.strip().lower() for entry in no_proxy.split(",") if entry.strip()]


def _bypassed(host: str, no_proxy: list[str]) -> bool:
    host = host.lower()
    for entry in no_proxy:
        if entry == "*":
            return True
        entry = entry.lstrip(".")
        if host == entry or host.endswith("." + entry):
            return True
    return False


class _Adapter(HTTPAdapter):
    """requests' adapter without the per-call work this transport has no use for.

    Each method is an override point requests documents for subclasses:

    * :meth:`get_connection_with_tls_context` looks the pool of a request
      sent with no proxy up once per origin (requests would select a proxy,
      parse the URL and build the pool key on every call); the pool is still
      the pool manager's own, with its TLS settings;
    * :meth:`request_url` skips the proxy lookup for such a request, whose
      target is always its path;
    * :meth:`build_response` keeps no cookies (the transport never sends
      any) and does not guess a text encoding (bodies are bytes here);
    * :meth:`close` closes every pool's sockets now. ``PoolManager.clear``
      (what ``HTTPAdapter.close`` calls) only forgets its pools, leaving their
      sockets to the garbage collector, which is late whenever a pool is
      reachable from a reference cycle (an exception's traceback).
    """

    def __init__(self, **kwargs: Any) -> None:
        self._pools: dict[tuple[str, str, Any, Any], Any] = {}
        super().__init__(**kwargs)

    def get_connection_with_tls_context(
        self,
        request: requests.PreparedRequest,
        verify: bool | str,
        proxies: Mapping[str, str] | None = None,
        cert: Any = None,
    ) -> Any:
        if proxies:
            return super().get_connection_with_tls_context(request, verify, proxies, cert)  # type: ignore[arg-type]  # a Mapping is all it reads
        parts = urlsplit(request.url or "")
        key = (parts.scheme, parts.netloc, verify, cert)
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = super().get_connection_with_tls_context(request, verify, None, cert)
        return pool

    def request_url(self, request: requests.PreparedRequest, proxies: Mapping[str, str] | None) -> str:
        if proxies:
            return super().request_url(request, proxies)  # type: ignore[arg-type]  # a Mapping is all it reads
        return request.path_url

    def build_response(self, req: requests.PreparedRequest, resp: Any) -> requests.Response:
        response = requests.Response()
        response.status_code = resp.status
        response.headers = CaseInsensitiveDict(resp.headers)
        response.raw = resp
        response.reason = resp.reason
        response.url = req.url or ""
        response.request = req
        response.connection = self
        return response

    def close(self) -> None:
        pools = list(self._pools.values())
        self._pools.clear()
        for manager in (self.poolmanager, *self.proxy_manager.values()):
            # keys(): a snapshot; the pools container refuses iteration.
            pools += [manager.pools.get(key) for key in manager.pools.keys()]  # noqa: SIM118
        for pool in pools:
            if pool is not None:
                pool.close()
        super().close()


class RequestsTransport(Transport):
    """A pooled ``requests`` transport: one session and adapter per provider.

    Thread-safe: the adapter's urllib3 pool manager hands each thread its own
    connection. Pool size comes from ``settings.pool`` (``maxsize`` per host,
    ``block`` to wait for a free connection rather than open a throwaway one).
    ``adapter`` and ``session`` are the requests objects it sends with.
    """

    def __init__(self, settings: ProviderSettings | None = None) -> None:
        settings = settings or ProviderSettings()
        pool = settings.pool
        # max_retries=0: the retry policy lives above the transport.
        self.adapter = _Adapter(
            pool_connections=pool.connections, pool_maxsize=pool.maxsize, pool_block=pool.block, max_retries=0
        )
        # The session owns the adapter (Session.close closes it) and serves
        # callers who want the same pool; sends go through the adapter.
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.max_redirects = 0
        self.session.mount("https://", self.adapter)
        self.session.mount("http://", self.adapter)
        self.verify: bool | str = True
        no_proxy: list[str] = []
        if settings.proxies:
            self.proxies = dict(settings.proxies)
        elif settings.trust_env:
            self.proxies, no_proxy = _proxies_from_environment()
            bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
            if bundle:
                self.verify = bundle
        else:
            self.proxies = {}
        self._no_proxy = no_proxy
        self._proxies_by_host: dict[str, dict[str, str]] = {}
        self.session.proxies = dict(self.proxies)
        self._timeouts: dict[tuple[float, float], urllib3.Timeout] = {}
        self._closed = False
        self._lock = threading.Lock()

    def _proxies_for(self, url: str) -> dict[str, str]:
        if not self.proxies:
            return self.proxies
        host = urlsplit(url).hostname or ""
        found = self._proxies_by_host.get(host)
        if found is None:
            found = {} if _bypassed(host, self._no_proxy) else self.proxies
            self._proxies_by_host[host] = found
        return found

    def _prepare(self, request: HTTPRequest) -> requests.PreparedRequest:
        """The request as requests sends it.

        Its public fields are set directly rather than through ``prepare()``,
        whose cookie jar, auth and hook handling this transport does not use,
        and whose URL and header checks urllib3 and http.client repeat.
        """
        prepared = requests.PreparedRequest()
        prepared.method = request.method
        prepared.url = request.url
        headers: CaseInsensitiveDict[str] = CaseInsensitiveDict(request.headers)
        if request.body is not None:
            headers["Content-Length"] = str(len(request.body))  # without it the adapter sends the body chunked
        prepared.headers = headers  # type: ignore[assignment]  # types-requests wants str | bytes values; str is one
        prepared.body = request.body
        return prepared

    def _timeout(self, timeout: tuple[float, float]) -> urllib3.Timeout:
        """urllib3's Timeout for ``(connect, read)``, built once (urllib3 copies it per request)."""
        found = self._timeouts.get(timeout)
        if found is None:
            found = self._timeouts[timeout] = urllib3.Timeout(connect=timeout[0], read=timeout[1])
        return found

    def send(self, request: HTTPRequest) -> HTTPResponse:
        if self._closed:
            raise APIConnectionError("the transport is closed; build a new provider")
        try:
            response = self.adapter.send(
                self._prepare(request),
                stream=True,
                timeout=self._timeout(request.timeout),  # type: ignore[arg-type]  # send takes a urllib3 Timeout too
                verify=self.verify,
                proxies=self._proxies_for(request.url),
            )
        except SEND_CAUGHT as error:
            raise map_error(SEND_ERRORS, request, error) from error
        raw = response.raw
        if request.stream:
            if request.idle_timeout is not None:
                set_read_timeout(raw, request.idle_timeout)
            pieces = stream_body(raw, response.headers, request)
            return HTTPResponse(
                response.status_code,
                response.headers,
                stream=pieces,
                on_close=partial(close_stream, response),
                on_finish=partial(finish_stream, response, pieces),
                url=request.url,
            )
        return HTTPResponse(response.status_code, response.headers, whole_body(response, request), url=request.url)

    def close(self) -> None:
        """Close every pooled connection now; one still in use is closed when its response is done."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self.session.close()  # closes the adapter, which closes its pools' sockets

    def __repr__(self) -> str:
        return f"<RequestsTransport proxies={sorted(self.proxies)} closed={self._closed}>"


# --------------------------------------------------------------------------- mock


Handler = Callable[[HTTPRequest], HTTPResponse]


class MockTransport(Transport):
    """A transport that answers from ``handler(request) -> HTTPResponse``.

    The handler may raise an llmrelay error to simulate a network failure.
    Every request is kept in :attr:`requests` (thread-safe). A streamed
    response answering a request that is not streamed is read whole first,
    as a real transport would. Give it to a provider with
    ``create_provider(name, transport=MockTransport(handler))``.
    """

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[HTTPRequest] = []
        self._lock = threading.Lock()
        self.closed = False

    def send(self, request: HTTPRequest) -> HTTPResponse:
        if self.closed:
            raise APIConnectionError("the transport is closed; build a new provider")
        with self._lock:
            self.requests.append(request)
        response = self.handler(request)
        if not isinstance(response, HTTPResponse):
            raise TypeError(f"MockTransport handler must return an HTTPResponse, not {type(response).__name__}")
        if not request.stream:
            response.read()
        return response

    def close(self) -> None:
        self.closed = True
