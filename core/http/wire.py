"""What comes off the wire: reading response bodies and mapping foreign errors, with public APIs only.

Bodies are read from a requests response's ``raw`` (urllib3's, or a
stand-in such as vcrpy's replay stub) with urllib3's public reading methods:
``stream()`` for a chunked body (one HTTP chunk at a time), ``read1()`` for
any other (whatever has arrived), ``read()`` for a whole one. They are read
undecoded, as requests opens them, and gzip / deflate is decoded here with
:mod:`zlib`, so a stand-in that cannot decode reads exactly like a real
response; a body labelled compressed that is not (vcrpy records some that
way) is passed through as it is.

Foreign exceptions (requests, urllib3, http.client, socket, zlib) are mapped
to :mod:`llmrelay.core.errors` in one place, the tables below
(:data:`SEND_ERRORS`, :data:`STREAM_BODY_ERRORS`, :data:`WHOLE_BODY_ERRORS`;
the first row that matches wins), by :func:`map_error`::

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
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import zlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3

from ..errors import APIConnectionError, APITimeoutError, LLMRelayError, StreamInterruptedError
from .messages import HTTPRequest

__all__ = [
    "DRAIN_GRACE_SECONDS",
    "DRAIN_LIMIT",
    "SEND_CAUGHT",
    "SEND_ERRORS",
    "STREAM_BODY_ERRORS",
    "STREAM_READ_SIZE",
    "WHOLE_BODY_ERRORS",
    "close_stream",
    "finish_stream",
    "host_of",
    "innermost_reason",
    "map_error",
    "set_read_timeout",
    "stream_body",
    "whole_body",
]

# One read takes whatever has arrived, up to this many bytes.
STREAM_READ_SIZE = 65536
# After an end marker, wait at most this long (and read at most this much) for
# the rest of the body before giving the connection up instead of pooling it.
DRAIN_GRACE_SECONDS = 0.5
DRAIN_LIMIT = 65536


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


#: Every exception type :data:`SEND_ERRORS` maps, for an ``except`` clause.
SEND_CAUGHT = _caught(SEND_ERRORS)
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


def set_read_timeout(raw: Any, seconds: float) -> None:
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


def stream_body(raw: Any, headers: Mapping[str, str], request: HTTPRequest) -> Iterator[bytes]:
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


def whole_body(response: requests.Response, request: HTTPRequest) -> bytes:
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


def finish_stream(response: requests.Response, pieces: Iterator[bytes]) -> None:
    """Read the rest of a finished stream (usually just the last chunk's marker) so its connection is pooled."""
    set_read_timeout(response.raw, DRAIN_GRACE_SECONDS)
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


def close_stream(response: requests.Response) -> None:
    """Close a streamed response now, from any thread, also while another thread is blocked reading it.

    The socket is shut down first (``raw.connection.sock``, the handle
    :func:`set_read_timeout` uses): a read blocked on another thread (an
    async caller's worker) returns at once, and the server sees the
    connection end. Closing alone would not do it: the body's buffered reader
    holds its lock for the whole of a blocked read, so ``close`` would wait
    for that read to end, up to the idle timeout. A response read to its end
    has given its connection back to the pool already (``raw.connection`` is
    None) and nothing is shut down; should the reader give it back in the
    instant between the two, the pool finds the socket shut when it next
    hands it out, and opens a fresh one.
    """
    sock = getattr(getattr(response.raw, "connection", None), "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):  # already shut or closed: nothing left to unblock
            sock.shutdown(socket.SHUT_RDWR)
    response.close()
