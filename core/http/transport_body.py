"""Reading response bodies for :class:`~llmrelay.core.http.transport.RequestsTransport`.

Three readers, picked per response:

* :func:`read_chunked_bulk`: a chunked body from urllib3's connection, de-chunked
  here in bulk. Each socket read takes whatever has arrived (often dozens of
  HTTP chunks: a streaming service sends one small chunk per SSE event), and
  the chunk framing is cut out of that buffer with ``find`` and slicing. Going
  through urllib3 / http.client instead costs about ten Python calls per HTTP
  chunk, which was a third of a stream's client CPU time.
* :func:`read_plain`: any other urllib3 body, with ``read1`` (whatever has arrived).
* :func:`foreign_response`: a stand-in response object that is not urllib3's
  (vcrpy's replay stub), read plainly and decoded here.

Errors while reading are mapped by :func:`body_error` to llmrelay's errors.
"""

from __future__ import annotations

import socket
import zlib
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from ..errors import APIConnectionError, APITimeoutError, LLMRelayError, StreamInterruptedError

__all__ = [
    "DRAIN_GRACE_SECONDS",
    "DRAIN_LIMIT",
    "STREAM_READ_SIZE",
    "body_error",
    "can_read_in_bulk",
    "decompressor",
    "drain",
    "foreign_response",
    "host_of",
    "innermost_reason",
    "read_chunked_bulk",
    "read_plain",
    "set_socket_timeout",
]

# One socket read takes whatever has arrived, up to this many bytes.
STREAM_READ_SIZE = 65536
# After an end marker, wait at most this long for the rest of the body
# before giving the connection up rather than returning it to the pool.
DRAIN_GRACE_SECONDS = 0.5
DRAIN_LIMIT = 65536
# A chunk-size line longer than this is not HTTP (urllib3 uses the same bound).
_MAX_SIZE_LINE = 1024


def host_of(url: str) -> str:
    return urlsplit(url).netloc or url


def innermost_reason(error: BaseException) -> str:
    """The innermost cause's text: requests wraps urllib3's MaxRetryError which wraps the socket error."""
    seen = 0
    current: Any = error
    while seen < 5:
        seen += 1
        inner = getattr(current, "reason", None)
        if inner is None and current.args and isinstance(current.args[0], BaseException):
            inner = current.args[0]
        if inner is None or inner is current or not isinstance(inner, BaseException):
            break
        current = inner
    text = str(current) or type(current).__name__
    return text.split(": ", 1)[-1] if text.startswith("<") else text


def body_error(
    error: BaseException, url: str, *, streaming: bool, read_timeout: float, idle_timeout: float | None
) -> LLMRelayError:
    """Map an error raised while reading a body after the headers arrived."""
    if isinstance(error, LLMRelayError):
        return error
    timed_out = isinstance(error, (socket.timeout, TimeoutError)) or "timed out" in str(error).lower()
    host = host_of(url)
    if streaming:
        if timed_out:
            return StreamInterruptedError(
                f"the stream from {host} went silent for more than {idle_timeout}s (stream_idle timeout)"
            )
        return StreamInterruptedError(f"the stream from {host} broke off: {innermost_reason(error)}")
    if timed_out:
        return APITimeoutError(f"the response body from {host} stalled for more than {read_timeout}s (read timeout)")
    return APIConnectionError(f"the connection to {host} dropped while reading the response: {innermost_reason(error)}")


ErrorMapper = Callable[[BaseException], LLMRelayError]


def set_socket_timeout(raw: Any, seconds: float) -> None:
    """Bound every later read of this response's socket by ``seconds``.

    urllib3 resets the socket timeout when the connection is next taken from
    the pool, so this does not leak into other requests. Under vcrpy (no
    socket) there is nothing to set.
    """
    connection = getattr(raw, "_connection", None)
    sock = getattr(connection, "sock", None)
    if sock is None:
        fp = getattr(getattr(raw, "_fp", None), "fp", None)
        sock = getattr(getattr(fp, "raw", None), "_sock", None)
    if sock is not None:
        try:
            sock.settimeout(seconds)
        except OSError:
            pass


def decompressor(headers: Any) -> Any:
    """A zlib decoder for a gzip / deflate body, None for an identity one."""
    encoding = (headers.get("content-encoding") or "").strip().lower()
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompressobj()
    return None


def can_read_in_bulk(raw: Any) -> bool:
    """A chunked urllib3 body over http.client, in an encoding this module decodes."""
    if not getattr(raw, "chunked", False) or getattr(raw, "chunk_left", None) is not None:
        return False
    original = getattr(raw, "_original_response", None)
    if original is None or getattr(original, "fp", None) is None or not hasattr(original.fp, "read1"):
        return False
    encoding = (raw.headers.get("content-encoding") or "identity").strip().lower()
    return encoding in ("identity", "gzip", "x-gzip", "deflate")


def read_chunked_bulk(raw: Any, errors: ErrorMapper) -> Iterator[bytes]:
    """The de-chunked (and decoded) body of a chunked urllib3 response, one piece per socket read.

    At the last chunk the http.client response is closed, as http.client does
    itself, and the connection goes back to urllib3's pool.
    """
    original = raw._original_response
    read1 = original.fp.read1
    decoder = decompressor(raw.headers)
    buffer = b""
    pos = 0
    remaining = 0  # bytes of the current chunk's data not read yet
    skip = 0  # bytes of the CRLF after a chunk's data not read yet
    for data in _reads(read1, errors):
        buffer = buffer[pos:] + data if pos < len(buffer) else data
        pos = 0
        end = len(buffer)
        parts = []
        finished = False
        while pos < end:
            if remaining:
                stop = pos + remaining
                if stop > end:
                    parts.append(buffer[pos:])
                    remaining = stop - end
                    pos = end
                    break
                parts.append(buffer[pos:stop])
                pos = stop
                remaining = 0
                skip = 2
                continue
            if skip:
                taken = min(skip, end - pos)
                pos += taken
                skip -= taken
                continue
            line_end = buffer.find(b"\r\n", pos)
            if line_end < 0:
                if end - pos > _MAX_SIZE_LINE:
                    raise errors(ValueError("a chunk-size line is too long: not a chunked HTTP body"))
                break  # the size line is not complete yet
            try:
                size = int(buffer[pos:line_end].split(b";", 1)[0], 16)
            except ValueError:
                raise errors(ValueError(f"invalid chunk size {buffer[pos:line_end][:40]!r}")) from None
            pos = line_end + 2
            if size == 0:
                finished = True
                break
            # The common case: the whole chunk and its CRLF are here.
            stop = pos + size
            if stop + 2 <= end:
                parts.append(buffer[pos:stop])
                pos = stop + 2
            else:
                remaining = size
        if parts:
            piece = parts[0] if len(parts) == 1 else b"".join(parts)
            if decoder is not None:
                try:
                    piece = decoder.decompress(piece)
                except zlib.error as error:
                    raise errors(error) from error
            if piece:
                yield piece
        if finished:
            if decoder is not None:
                tail = decoder.flush()
                if tail:
                    yield tail
            _finish_chunked(raw, original, buffer[pos:], read1)
            return
    raise errors(ConnectionError("the connection closed before the last chunk"))


def _finish_chunked(raw: Any, original: Any, rest: bytes, read1: Callable[[int], bytes]) -> None:
    """After the last chunk: skip the trailer section, then give the connection back to the pool."""
    while rest[:2] != b"\r\n" and b"\r\n\r\n" not in rest:
        if len(rest) > DRAIN_LIMIT:
            raw.close()
            return
        try:
            more = read1(STREAM_READ_SIZE)
        except Exception:
            raw.close()
            return
        if not more:
            raw.close()
            return
        rest += more
    trailer_end = 2 if rest[:2] == b"\r\n" else rest.index(b"\r\n\r\n") + 4
    original._close_conn()  # what http.client does at the end of a chunked body
    if rest[trailer_end:]:
        raw.close()  # bytes after the response: the connection is not reusable
    else:
        raw.release_conn()


def _reads(read: Callable[[int], bytes], errors: ErrorMapper) -> Iterator[bytes]:
    """Reads of whatever has arrived until the body ends (an empty read), errors mapped."""
    while True:
        try:
            data = read(STREAM_READ_SIZE)
        except Exception as error:
            raise errors(error) from error
        if not data:
            return
        yield data


def read_plain(raw: Any, errors: ErrorMapper) -> Iterator[bytes]:
    """Any other urllib3 body, decoded by urllib3, as it arrives."""
    return _reads(partial(raw.read1, decode_content=True), errors)


def drain(raw: Any) -> None:
    """Read what is left of a finished stream so urllib3 returns the connection to the pool."""
    set_socket_timeout(raw, DRAIN_GRACE_SECONDS)
    left = DRAIN_LIMIT
    while left > 0:
        data = raw.read1(left, decode_content=True)
        if not data:
            return  # complete: urllib3 has released the connection
        left -= len(data)
    raw.close()


def foreign_chunks(raw: Any, errors: ErrorMapper) -> Iterator[bytes]:
    """The body of a response object that is not urllib3's (vcrpy's replay stub), decoded.

    Such stand-ins ignore ``decode_content``, so a gzip / deflate body (the
    recorded ``/models`` lists are gzipped) is decoded here; vcrpy also records
    bodies already decoded under a ``Content-Encoding: gzip`` header, so a body
    that is not compressed after all is passed through as it is.
    """
    read1 = getattr(raw, "read1", None) or raw.read
    decoder = decompressor(raw.headers)
    first = True
    for data in _reads(read1, errors):
        if decoder is not None:
            try:
                data = decoder.decompress(data)
            except zlib.error:
                if not first:
                    raise errors(ValueError("corrupt compressed body")) from None
                decoder = None  # not compressed after all
        first = False
        yield data
    if decoder is not None:
        tail = decoder.flush()
        if tail:
            yield tail


def foreign_response(status: int, raw: Any, url: str, *, stream: bool, errors: ErrorMapper) -> Any:
    """An :class:`~llmrelay.core.http.transport.HTTPResponse` over a foreign ``raw`` response."""
    from .transport import HTTPResponse

    chunks = foreign_chunks(raw, errors)
    if stream:
        return HTTPResponse(status, raw.headers, stream=chunks, on_close=raw.close, url=url)
    try:
        body = b"".join(chunks)
    finally:
        raw.close()
    return HTTPResponse(status, raw.headers, body, url=url)
