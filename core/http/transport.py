"""The HTTP transport seam: one small request/response shape, two transports.

Providers build an :class:`HTTPRequest`, hand it to a :class:`Transport`
and get an :class:`HTTPResponse` back; nothing above this module sees a
``requests``, ``urllib3`` or ``socket`` object or exception. Foreign
exceptions are mapped here to :mod:`llmrelay.core.errors`:

* connect timeout, read timeout (before the body is complete)  -> ``APITimeoutError``
* refused / reset / DNS / TLS / proxy failures                 -> ``APIConnectionError``
* a streamed body that breaks or stalls after the headers      -> ``StreamInterruptedError``

:class:`RequestsTransport` is the production transport. It owns one
``requests.Session`` with one ``HTTPAdapter`` (the connection pools, TLS and
proxy configuration). A request to an origin that is not proxied goes
straight to the adapter's urllib3 pool for that origin (looked up once), which
skips requests' per-call URL parsing, proxy selection and wrapping: about a
fifth of a call's client CPU time. A proxied request goes through the adapter.
The decisions this makes are deliberate and visible:

* **Proxies** come from ``settings.proxies``, or, only when
  ``settings.trust_env`` is on, from ``HTTPS_PROXY`` / ``HTTP_PROXY`` /
  ``ALL_PROXY`` / ``NO_PROXY`` read **once** when the transport is built.
  requests re-reads the whole environment on every call, which costs about a
  quarter of a loopback call.
* **Redirects are not followed**: an API that redirects is misconfigured
  (wrong ``base_url``), and following a redirect could send the key elsewhere.
* **No netrc, no cookies**: credentials come from settings only.
* Keep-alive and gzip are on; TLS certificates are verified (a CA bundle from
  ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` is honoured when ``trust_env``).
* Streamed bodies are read by :mod:`llmrelay.core.http.transport_body`: a chunked
  one (every SSE stream) is de-chunked in bulk, one socket read at a time,
  instead of one urllib3 call chain per HTTP chunk.
* :meth:`RequestsTransport.close` closes every pooled socket at once rather
  than leaving them to the garbage collector.

:class:`MockTransport` answers from a function, for tests.
"""

from __future__ import annotations

import os
import threading
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

from ..errors import APIConnectionError, APITimeoutError, LLMRelayError
from ..settings import ProviderSettings
from .transport_body import (
    DRAIN_GRACE_SECONDS,
    DRAIN_LIMIT,
    STREAM_READ_SIZE,
    body_error,
    can_read_in_bulk,
    drain,
    foreign_response,
    host_of,
    innermost_reason,
    read_chunked_bulk,
    read_plain,
    set_socket_timeout,
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


class Headers(dict):  # type: ignore[type-arg]
    """A dict of header names lower-cased, so ``get`` is case-insensitive."""

    def __init__(self, items: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> None:
        pairs = items.items() if isinstance(items, Mapping) else items
        super().__init__((name.lower(), value) for name, value in pairs)

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(name.lower(), default)

    def __getitem__(self, name: str) -> str:
        return super().__getitem__(name.lower())  # type: ignore[no-any-return]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and super().__contains__(name.lower())


class HTTPRequest:
    """One HTTP request, as a transport sends it.

    ``timeout`` is ``(connect, read)`` in seconds; ``idle_timeout`` bounds the
    silence between two reads of a streamed body once the headers are in.
    """

    __slots__ = ("method", "url", "headers", "body", "stream", "timeout", "idle_timeout")

    def __init__(
        self,
        method: str,
        url: str,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
        *,
        stream: bool = False,
        timeout: tuple[float, float] = (10.0, 120.0),
        idle_timeout: float | None = None,
    ) -> None:
        self.method = method
        self.url = url
        self.headers = headers if headers is not None else {}
        self.body = body
        self.stream = stream
        self.timeout = timeout
        self.idle_timeout = idle_timeout

    def __repr__(self) -> str:
        # Never the headers: one of them is the key.
        return f"<HTTPRequest {self.method} {self.url} stream={self.stream}>"


class HTTPResponse:
    """Status, headers and a body that is either read whole or streamed.

    A non-streamed response has its body in :attr:`content` already. A
    streamed one is read with :meth:`iter_bytes` (or :meth:`read`) and must be
    closed, which :meth:`iter_bytes` does when it ends and ``close`` does
    when the caller stops early.
    """

    __slots__ = ("status", "headers", "_content", "_chunks", "_on_close", "_on_finish", "closed", "url", "attempts")

    def __init__(
        self,
        status: int,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        *,
        stream: Iterable[bytes] | None = None,
        on_close: Callable[[], None] | None = None,
        on_finish: Callable[[], None] | None = None,
        url: str = "",
    ) -> None:
        self.status = status
        self.headers: Mapping[str, str] = headers if headers is not None else Headers()
        self._content = content
        self._chunks = stream
        self._on_close = on_close
        self._on_finish = on_finish
        self.closed = stream is None
        self.url = url
        #: Attempts the retry policy made to get this response (set by it).
        self.attempts = 1

    @property
    def content(self) -> bytes:
        """The whole body (reads the rest of a stream first)."""
        if self._content is None:
            self._content = b"".join(self.iter_bytes())
        return self._content

    def read(self) -> bytes:
        return self.content

    def iter_bytes(self) -> Iterator[bytes]:
        """The body as it arrives. Closes the response at the end or on error."""
        if self._chunks is None:
            if self._content:
                yield self._content
            return
        chunks, self._chunks = self._chunks, None
        try:
            yield from chunks
        finally:
            self.close()

    def finish(self) -> None:
        """The caller has all it needs (an end marker such as ``[DONE]`` arrived).

        If the rest of the body follows at once (the end of a chunked body),
        it is read so the connection goes back to the pool; otherwise the
        connection is dropped. Then the response is closed.
        """
        finish, self._on_finish = self._on_finish, None
        if finish is not None and not self.closed:
            try:
                finish()
            except Exception:
                pass
        self.close()

    def close(self) -> None:
        """Release the connection (discarding it if the body was not read to the end)."""
        self.closed = True
        close, self._on_close = self._on_close, None
        if close is not None:
            close()

    def __repr__(self) -> str:
        return f"<HTTPResponse {self.status}>"


class Transport(ABC):
    """Sends :class:`HTTPRequest` objects. Implementations must be thread-safe."""

    @abstractmethod
    def send(self, request: HTTPRequest) -> HTTPResponse:
        """Send and return the response; a streamed one is open until read or closed.

        Raises only :class:`~llmrelay.core.errors.LLMRelayError` subclasses.
        """

    def close(self) -> None:
        """Release pooled connections."""

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc_info: Any) -> None:
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


class RequestsTransport(Transport):
    """A pooled ``requests`` transport: one session and adapter per provider.

    Thread-safe: the adapter's urllib3 pool manager hands each thread its own
    connection. Pool size comes from ``settings.pool`` (``maxsize`` per host,
    ``block`` to wait for a free connection rather than open a throwaway one).
    """

    def __init__(self, settings: ProviderSettings | None = None) -> None:
        import requests
        from requests.adapters import HTTPAdapter

        settings = settings or ProviderSettings()
        pool = settings.pool
        self._adapter = HTTPAdapter(
            pool_connections=pool.connections, pool_maxsize=pool.maxsize, pool_block=pool.block, max_retries=0
        )
        # The session exists to own the adapter (and for callers who want the
        # same pool); sends go through the adapter directly.
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.max_redirects = 0
        self.session.mount("https://", self._adapter)
        self.session.mount("http://", self._adapter)
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
        self._closed = False
        self._lock = threading.Lock()
        # Imported once; the hot path only references them.
        self._PreparedRequest = requests.PreparedRequest
        self._CaseInsensitiveDict = requests.structures.CaseInsensitiveDict
        self._exc = requests.exceptions
        import urllib3
        import urllib3.exceptions
        from urllib3.response import BaseHTTPResponse

        self._native_response = BaseHTTPResponse
        self._u3 = _Urllib3Names(urllib3)
        # retries=False: urllib3 raises the original error instead of wrapping it
        # (the retry policy lives above the transport); redirects are not followed.
        self._no_retries = urllib3.Retry(False, redirect=False)
        self._pools: dict[str, Any] = {}
        self._timeouts: dict[tuple[float, float], Any] = {}

    def _proxies_for(self, url: str) -> dict[str, str]:
        if not self.proxies:
            return self.proxies
        host = urlsplit(url).hostname or ""
        found = self._proxies_by_host.get(host)
        if found is None:
            found = {} if _bypassed(host, self._no_proxy) else self.proxies
            self._proxies_by_host[host] = found
        return found

    def send(self, request: HTTPRequest) -> HTTPResponse:
        if self._closed:
            raise APIConnectionError("the transport is closed; build a new provider")
        url = request.url
        # "scheme://host[:port]" and the path, cut without a URL parser.
        cut = url.find("/", url.find("//") + 2)
        pool = self._pools.get(url[:cut]) if cut > 0 else None
        if pool is None or pool.pool is None:  # first call, or urllib3 closed the pool
            pool = self._direct_pool(url, cut)
            if pool is None:
                return self._send_via_adapter(request)
        u3 = self._u3
        try:
            raw = pool.urlopen(
                request.method,
                url[cut:],
                body=request.body,
                headers=request.headers,
                retries=self._no_retries,
                redirect=False,
                assert_same_host=False,
                timeout=self._timeout_for(request.timeout),
                preload_content=False,
                decode_content=False,
            )
        except u3.NewConnectionError as error:
            raise APIConnectionError(f"connection to {host_of(url)} failed: {innermost_reason(error)}") from error
        except u3.ConnectTimeoutError as error:
            raise _connect_timeout(request) from error
        except u3.ReadTimeoutError as error:
            raise _read_timeout(request) from error
        except u3.SSLError as error:
            raise _tls_error(request, error) from error
        except (u3.HTTPError, OSError) as error:
            raise APIConnectionError(f"connection to {host_of(url)} failed: {innermost_reason(error)}") from error
        return self._response(raw.status, raw, request)

    def _direct_pool(self, url: str, cut: int) -> Any:
        """The adapter's own urllib3 pool for ``url``'s origin, or None: send through the adapter.

        The adapter's pool manager still owns the pool (its TLS settings and
        its ``close``); only requests' per-call work is skipped: URL parsing,
        proxy selection, header dicts and response wrapping. A proxied origin
        keeps the adapter's path.
        """
        if cut <= 0 or self._proxies_for(url):
            return None
        origin = url[:cut]
        probe = self._PreparedRequest()
        probe.url = origin + "/"
        try:
            pool = self._adapter.get_connection_with_tls_context(probe, self.verify, proxies={})
            self._adapter.cert_verify(pool, probe.url, self.verify, None)
        except (self._exc.RequestException, ValueError, OSError) as error:
            raise APIConnectionError(f"request to {host_of(url)} failed: {innermost_reason(error)}") from error
        if self._closed:  # closed meanwhile: do not keep a pool the close has missed
            pool.close()
            raise APIConnectionError("the transport is closed; build a new provider")
        self._pools[origin] = pool
        return pool

    def _timeout_for(self, timeout: tuple[float, float]) -> Any:
        found = self._timeouts.get(timeout)
        if found is None:
            found = self._timeouts[timeout] = self._u3.Timeout(connect=timeout[0], read=timeout[1])
        return found

    def _send_via_adapter(self, request: HTTPRequest) -> HTTPResponse:
        """Through requests' adapter: proxies (and URLs the direct path does not cut)."""
        prepared = self._PreparedRequest()
        prepared.method = request.method
        prepared.url = request.url
        headers = self._CaseInsensitiveDict(request.headers)
        if request.body is not None:
            headers["Content-Length"] = str(len(request.body))
        prepared.headers = headers
        prepared.body = request.body
        prepared.hooks = {"response": []}
        exc = self._exc
        try:
            response = self._adapter.send(
                prepared,
                stream=True,
                timeout=request.timeout,
                verify=self.verify,
                proxies=self._proxies_for(request.url),
            )
        except exc.ConnectTimeout as error:
            raise _connect_timeout(request) from error
        except exc.ReadTimeout as error:
            raise _read_timeout(request) from error
        except exc.SSLError as error:
            raise _tls_error(request, error) from error
        except exc.ProxyError as error:
            raise APIConnectionError(
                f"proxy refused the connection to {host_of(request.url)}: {innermost_reason(error)}"
            ) from error
        except (exc.ConnectionError, OSError) as error:
            raise APIConnectionError(
                f"connection to {host_of(request.url)} failed: {innermost_reason(error)}"
            ) from error
        except exc.RequestException as error:
            raise APIConnectionError(f"request to {host_of(request.url)} failed: {innermost_reason(error)}") from error
        return self._response(response.status_code, response.raw, request)

    def _response(self, status: int, raw: Any, request: HTTPRequest) -> HTTPResponse:
        if not isinstance(raw, self._native_response):  # vcrpy's replay stub
            return foreign_response(
                status, raw, request.url, stream=request.stream, errors=_error_mapper(request, True)
            )
        if request.stream:
            return _streamed(status, raw, request)
        try:
            body = raw.read(decode_content=True)
        except Exception as error:
            raw.close()
            raise _error_mapper(request, False)(error) from error
        return HTTPResponse(status, raw.headers, body, url=request.url)

    def close(self) -> None:
        """Close every pooled connection now; one still in use is closed when its response is done.

        urllib3 2's ``PoolManager.clear`` (what ``Session.close`` calls) only
        forgets its pools, leaving their sockets to the garbage collector,
        which is late whenever a pool is reachable from a reference cycle
        (an exception's traceback). So each pool is closed here first.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
        managers = [self._adapter.poolmanager, *self._adapter.proxy_manager.values()]
        for manager in managers:
            for key in list(manager.pools.keys()):
                pool = manager.pools.get(key)
                if pool is not None:
                    pool.close()
        self.session.close()

    def __repr__(self) -> str:
        return f"<RequestsTransport proxies={sorted(self.proxies)} closed={self._closed}>"


class _Urllib3Names:
    """The urllib3 names the hot path uses, looked up once."""

    def __init__(self, urllib3: Any) -> None:
        errors = urllib3.exceptions
        self.Timeout = urllib3.Timeout
        self.NewConnectionError = errors.NewConnectionError
        self.ConnectTimeoutError = errors.ConnectTimeoutError
        self.ReadTimeoutError = errors.ReadTimeoutError
        self.SSLError = errors.SSLError
        self.HTTPError = errors.HTTPError


def _error_mapper(request: HTTPRequest, streaming: bool) -> Callable[[BaseException], LLMRelayError]:
    def errors(error: BaseException) -> LLMRelayError:
        return body_error(
            error, request.url, streaming=streaming, read_timeout=request.timeout[1], idle_timeout=request.idle_timeout
        )

    return errors


def _streamed(status: int, raw: Any, request: HTTPRequest) -> HTTPResponse:
    """A streamed urllib3 response: chunked bodies de-chunked in bulk, others read as they arrive."""
    if request.idle_timeout is not None:
        set_socket_timeout(raw, request.idle_timeout)
    errors = _error_mapper(request, True)
    if can_read_in_bulk(raw):
        body = read_chunked_bulk(raw, errors)
        return HTTPResponse(
            status,
            raw.headers,
            stream=body,
            on_close=raw.close,
            on_finish=lambda: _finish_bulk(raw, body),
            url=request.url,
        )
    return HTTPResponse(
        status,
        raw.headers,
        stream=read_plain(raw, errors),
        on_close=raw.close,
        on_finish=lambda: drain(raw),
        url=request.url,
    )


def _finish_bulk(raw: Any, body: Iterator[bytes]) -> None:
    """Read the rest of a bulk-read chunked body (usually already buffered) so its connection is pooled."""
    set_socket_timeout(raw, DRAIN_GRACE_SECONDS)
    left = DRAIN_LIMIT
    try:
        for piece in body:
            left -= len(piece)
            if left < 0:
                break
        else:
            return  # the reader released the connection at the last chunk
    except LLMRelayError:
        pass
    raw.close()


# The same failure reads the same whichever path (direct pool or adapter) sent the request.
def _connect_timeout(request: HTTPRequest) -> APITimeoutError:
    return APITimeoutError(
        f"could not connect to {host_of(request.url)} within {request.timeout[0]}s (connect timeout)"
    )


def _read_timeout(request: HTTPRequest) -> APITimeoutError:
    return APITimeoutError(f"no response from {host_of(request.url)} within {request.timeout[1]}s (read timeout)")


def _tls_error(request: HTTPRequest, error: BaseException) -> APIConnectionError:
    return APIConnectionError(f"TLS error talking to {host_of(request.url)}: {innermost_reason(error)}")


# --------------------------------------------------------------------------- mock


Handler = Callable[[HTTPRequest], HTTPResponse]


class MockTransport(Transport):
    """A transport that answers from ``handler(request) -> HTTPResponse``.

    The handler may raise an llmrelay error to simulate a network failure.
    Every request is kept in :attr:`requests` (thread-safe).
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
        if not isinstance(response.headers, Headers):
            response.headers = Headers(response.headers)
        if not request.stream and response._chunks is not None:
            response._content = b"".join(response.iter_bytes())
        return response

    def close(self) -> None:
        self.closed = True
