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
* **Bodies are decoded here** (gzip / deflate, the encodings the client asks
  for): the raw response is read undecoded, as requests opens it, and passed
  through :mod:`zlib`. A stand-in response that cannot decode (vcrpy's replay
  stub) is therefore read exactly like a real one; a body labelled compressed
  that is not (vcrpy records some that way) is passed through as it is.
* **Timeouts**: ``timeout=(connect, read)`` bounds connecting and every socket
  read until the headers arrive (and the whole of a non-streamed body). Once a
  streamed response's headers are in, its socket's timeout becomes
  ``idle_timeout``, so a stalled stream fails after that much silence.
* A streamed body that is closed before its end discards its connection
  (requests' ``Response.close``); one read to the end goes back to the pool.
  :meth:`HTTPResponse.finish` reads what is left after an end marker, briefly,
  so the connection can be reused.
* :meth:`RequestsTransport.close` closes every pooled socket at once rather
  than leaving them to the garbage collector.
* The adapter is requests' own, with the per-call work this transport never
  needs (proxy lookups for an unproxied request, cookies) left out through
  the methods requests documents for subclasses (see ``_Adapter``).

Foreign exceptions are mapped to :mod:`llmrelay.core.errors` in one place,
the tables below (:data:`SEND_ERRORS`, :data:`STREAM_BODY_ERRORS`,
:data:`WHOLE_BODY_ERRORS`; the first row that matches wins)::

    while sending, before the headers arrive:
      requests ConnectTimeout      -> APITimeoutError    "could not connect to H within Cs (connect timeout)"
      requests ReadTimeout         -> APITimeoutError    "no response from H within Rs (read timeout)"
      requests SSLError            -> APIConnectionError "TLS error talking to H: ..."
      requests ProxyError          -> APIConnectionError "proxy refused the connection to H: ..."
      OSError (requests' errors,
        socket errors), urllib3
        HTTPError                  -> APIConnectionError "connection to H failed: ..."
      ValueError (a header or URL
        HTTP cannot carry)         -> APIConnectionError "request to H could not be sent: ..."
    while reading a streamed body:
      a read timeout               -> StreamInterruptedError "the stream from H went silent for more than Is ..."
      a broken connection or body  -> StreamInterruptedError "the stream from H broke off: ..."
    while reading a whole body:
      a read timeout               -> APITimeoutError    "the response body from H stalled for more than Rs ..."
      a broken connection or body  -> APIConnectionError "the connection to H dropped while reading the response: ..."

:class:`MockTransport` answers from a function, for tests; pass it as
``create_provider(name, transport=MockTransport(handler))``.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import threading
import urllib.request
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import KW_ONLY, dataclass, field
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict

from ..errors import APIConnectionError, APITimeoutError, LLMRelayError, StreamInterruptedError
from ..settings import ProviderSettings

__all__ = [
    "SEND_ERRORS",
    "STREAM_BODY_ERRORS",
    "STREAM_READ_SIZE",
    "USER_AGENT",
    "WHOLE_BODY_ERRORS",
    "HTTPRequest",
    "HTTPResponse",
    "Headers",
    "MockTransport",
    "RequestsTransport",
    "Transport",
    "host_of",
    "innermost_reason",
    "map_error",
]

USER_AGENT = "llmrelay/0.1"
# One read takes whatever has arrived, up to this many bytes.
STREAM_READ_SIZE = 65536
# After an end marker, wait at most this long (and read at most this much) for
# the rest of the body before giving the connection up instead of pooling it.
DRAIN_GRACE_SECONDS = 0.5
DRAIN_LIMIT = 65536

#: Header names compare case-insensitively on every operation (get, set, update, pop, ``in``).
Headers = CaseInsensitiveDict


@dataclass(slots=True)
class HTTPRequest:
    """One HTTP request, as a transport sends it.

    ``timeout`` is ``(connect, read)`` in seconds; ``idle_timeout`` bounds the
    silence between two reads of a streamed body once the headers are in.
    The headers and body stay out of the repr: a header holds the key.
    """

    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    body: bytes | None = field(default=None, repr=False)
    _: KW_ONLY
    stream: bool = False
    timeout: tuple[float, float] = (10.0, 120.0)
    idle_timeout: float | None = None


class HTTPResponse:
    """Status, headers and a body that is either read whole or streamed.

    A non-streamed response has its body in :attr:`content` already. A
    streamed one is read with :meth:`iter_bytes` (or :meth:`read`) and must be
    closed, which :meth:`iter_bytes` does when it ends and ``close`` does
    when the caller stops early. ``headers`` is a :data:`Headers` mapping
    whatever mapping is passed in.
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
        self.headers: Mapping[str, str] = headers if isinstance(headers, CaseInsensitiveDict) else Headers(headers)
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
        """The whole body: a streamed one is read to its end (and closed) now."""
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
            with contextlib.suppress(Exception):  # the connection is dropped below all the same
                finish()
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

    def close(self) -> None:  # noqa: B027  (optional: a transport that pools nothing has nothing to do)
        """Release pooled connections."""

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# --------------------------------------------------------------------------- errors


def host_of(url: str) -> str:
    return urlsplit(url).netloc or url


def innermost_reason(error: BaseException) -> str:
    """The innermost cause's text: requests wraps urllib3's MaxRetryError which wraps the socket error."""
    current: BaseException = error
    for _ in range(5):
        inner = getattr(current, "reason", None)
        if inner is None and current.args and isinstance(current.args[0], BaseException):
            inner = current.args[0]
        if inner is None or inner is current or not isinstance(inner, BaseException):
            break
        current = inner
    text = str(current) or type(current).__name__
    return text.split(": ", 1)[-1] if text.startswith("<") else text


ErrorMapper = Callable[[HTTPRequest, BaseException], LLMRelayError]
ErrorTable = tuple[tuple[tuple[type[BaseException], ...], ErrorMapper], ...]


def _connect_timeout(request: HTTPRequest, error: BaseException) -> LLMRelayError:
    return APITimeoutError(
        f"could not connect to {host_of(request.url)} within {request.timeout[0]}s (connect timeout)"
    )


def _read_timeout(request: HTTPRequest, error: BaseException) -> LLMRelayError:
    return APITimeoutError(f"no response from {host_of(request.url)} within {request.timeout[1]}s (read timeout)")


def _tls_error(request: HTTPRequest, error: BaseException) -> LLMRelayError:
    return APIConnectionError(f"TLS error talking to {host_of(request.url)}: {innermost_reason(error)}")


def _proxy_error(request: HTTPRequest, error: BaseException) -> LLMRelayError:
    return APIConnectionError(f"proxy refused the connection to {host_of(request.url)}: {innermost_reason(error)}")


def _connection_failed(request: HTTPRequest, error: BaseException) -> LLMRelayError:
    return APIConnectionError(f"connection to {host_of(request.url)} failed: {innermost_reason(error)}")


def _not_sendable(request: HTTPRequest, error: BaseException) -> LLMRelayError:
    # Not the reason's text: http.client quotes the offending header value, which may be the key.
    return APIConnectionError(
        f"request to {host_of(request.url)} could not be sent: a header or the URL holds "
        f"something HTTP cannot carry ({type(error).__name__})"
    )


def _stream_silent(request: HTTPRequest, error: BaseException) -> LLMRelayError:
    return StreamInterruptedError(
        f"the stream from {host_of(request.url)} went silent for more than {request.idle_timeout}s "
        "(stream_idle timeout)"
    )


def _stream_broken(request: HTTPRequest, error: BaseException) -> LLMRelayError:
    return StreamInterruptedError(f"the stream from {host_of(request.url)} broke off: {innermost_reason(error)}")


def _body_stalled(request: HTTPRequest, error: BaseException) -> LLMRelayError:
    return APITimeoutError(
        f"the response body from {host_of(request.url)} stalled for more than {request.timeout[1]}s (read timeout)"
    )


def _body_dropped(request: HTTPRequest, error: BaseException) -> LLMRelayError:
    return APIConnectionError(
        f"the connection to {host_of(request.url)} dropped while reading the response: {innermost_reason(error)}"
    )


_exc = requests.exceptions
# urllib3 turns a socket (or TLS) read timeout into ReadTimeoutError while reading a body.
_READ_TIMEOUTS = (urllib3.exceptions.ReadTimeoutError, TimeoutError)
_BROKEN_BODY = (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError, zlib.error, ValueError)

#: Errors of ``HTTPAdapter.send`` (before the headers arrive). requests' errors are OSErrors.
SEND_ERRORS: ErrorTable = (
    ((_exc.ConnectTimeout,), _connect_timeout),
    ((_exc.ReadTimeout,), _read_timeout),
    ((_exc.SSLError,), _tls_error),
    ((_exc.ProxyError,), _proxy_error),
    ((OSError, urllib3.exceptions.HTTPError), _connection_failed),
    ((ValueError,), _not_sendable),
)
#: Errors while a streamed body is read, after the headers (the call is committed).
STREAM_BODY_ERRORS: ErrorTable = ((_READ_TIMEOUTS, _stream_silent), (_BROKEN_BODY, _stream_broken))
#: Errors while a non-streamed body is read.
WHOLE_BODY_ERRORS: ErrorTable = ((_READ_TIMEOUTS, _body_stalled), (_BROKEN_BODY, _body_dropped))


def _caught(table: ErrorTable) -> tuple[type[BaseException], ...]:
    return tuple(kind for kinds, _ in table for kind in kinds)


_SEND_CAUGHT = _caught(SEND_ERRORS)
_BODY_CAUGHT = _caught(STREAM_BODY_ERRORS)


def map_error(table: ErrorTable, request: HTTPRequest, error: BaseException) -> LLMRelayError:
    """The llmrelay error the first matching row of ``table`` makes of ``error`` (llmrelay errors pass as they are)."""
    if isinstance(error, LLMRelayError):
        return error
    for kinds, mapper in table:
        if isinstance(error, kinds):
            return mapper(request, error)
    return _connection_failed(request, error)


# --------------------------------------------------------------------------- reading bodies


class _Decoder:
    """Decodes a gzip or deflate body, piece by piece.

    A body labelled compressed whose first bytes are not (vcrpy records the
    body urllib3 already decoded under its original ``Content-Encoding``
    header) is passed through as it is; corrupt data later in a body that
    did start compressed is an error.
    """

    __slots__ = ("_zlib", "_started")

    def __init__(self) -> None:
        self._zlib: Any = zlib.decompressobj(32 + zlib.MAX_WBITS)  # 32: a gzip or a zlib header, told apart by zlib
        self._started = False

    @classmethod
    def for_headers(cls, headers: Mapping[str, str]) -> _Decoder | None:
        """A decoder for a gzip / deflate body; None for any other encoding (read as it is)."""
        encoding = (headers.get("content-encoding") or "").strip().lower()
        return cls() if encoding in ("gzip", "x-gzip", "deflate") else None

    def decode(self, data: bytes) -> bytes:
        if self._zlib is None:
            return data
        try:
            decoded: bytes = self._zlib.decompress(data)
        except zlib.error:
            if self._started:
                raise
            self._zlib = None  # not compressed after all
            return data
        self._started = self._started or bool(data)
        return decoded

    def flush(self) -> bytes:
        return self._zlib.flush() if self._zlib is not None else b""


def _set_read_timeout(raw: Any, seconds: float) -> None:
    """Bound every later read of this response's socket by ``seconds``.

    ``raw.connection`` is urllib3's public handle on the connection the body
    arrives on; urllib3 sets the socket's timeout again for the connection's
    next request, so this does not leak into it. A stand-in response without
    a connection (vcrpy's) has no socket to bound.
    """
    sock = getattr(getattr(raw, "connection", None), "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):  # the socket is closing: the next read says so
            sock.settimeout(seconds)


def _reads(raw: Any) -> Iterator[bytes]:
    """``read1`` until the body ends (an empty read; urllib3 may say None)."""
    read1 = raw.read1
    while data := read1(STREAM_READ_SIZE):
        yield data


def _stream_body(raw: Any, headers: Mapping[str, str], request: HTTPRequest) -> Iterator[bytes]:
    """A streamed body, decoded, one piece per read of whatever has arrived; errors mapped.

    A chunked body is read with ``stream()``, one HTTP chunk at a time (a
    streaming API sends one chunk per event); any other with ``read1()``, which
    returns what has arrived instead of waiting for a full buffer. Both read
    undecoded: requests opens the response with ``decode_content=False``.
    """
    decoder = _Decoder.for_headers(headers)
    try:
        pieces = raw.stream(STREAM_READ_SIZE, decode_content=False) if getattr(raw, "chunked", False) else _reads(raw)
        if decoder is None:
            yield from pieces  # the common case (an event stream is not compressed), without a loop here
        else:
            for data in pieces:
                if data := decoder.decode(data):
                    yield data
            if tail := decoder.flush():
                yield tail
    except _BODY_CAUGHT as error:
        raise map_error(STREAM_BODY_ERRORS, request, error) from error
    # urllib3 has released a connection read to its end already; a stand-in may not have.
    raw.release_conn()


def _whole_body(response: requests.Response, request: HTTPRequest) -> bytes:
    raw = response.raw
    try:
        body: bytes = raw.read(decode_content=False)
        decoder = _Decoder.for_headers(response.headers)
        if decoder is not None:
            body = decoder.decode(body) + decoder.flush()
    except _BODY_CAUGHT as error:
        response.close()
        raise map_error(WHOLE_BODY_ERRORS, request, error) from error
    raw.release_conn()
    return body


def _finish(response: requests.Response, pieces: Iterator[bytes]) -> None:
    """Read the rest of a finished stream (usually just the last chunk's marker) so its connection is pooled."""
    _set_read_timeout(response.raw, DRAIN_GRACE_SECONDS)
    left = DRAIN_LIMIT
    try:
        for piece in pieces:
            left -= len(piece)
            if left < 0:
                break
        else:
            return  # read to the end: the connection is back in the pool
    except LLMRelayError:
        pass
    response.close()  # not at the end: the connection is discarded, not reused half-read


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
        except _SEND_CAUGHT as error:
            raise map_error(SEND_ERRORS, request, error) from error
        raw = response.raw
        if request.stream:
            if request.idle_timeout is not None:
                _set_read_timeout(raw, request.idle_timeout)
            pieces = _stream_body(raw, response.headers, request)
            return HTTPResponse(
                response.status_code,
                response.headers,
                stream=pieces,
                on_close=response.close,
                on_finish=partial(_finish, response, pieces),
                url=request.url,
            )
        return HTTPResponse(response.status_code, response.headers, _whole_body(response, request), url=request.url)

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
