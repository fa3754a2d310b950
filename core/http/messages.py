"""The request and response a :class:`~llmrelay.core.http.transport.Transport` sends and returns.

:class:`HTTPRequest` is plain data; :class:`HTTPResponse` holds a body read
whole or an open stream, and closes it. :data:`Headers` is requests'
``CaseInsensitiveDict``: header names compare case-insensitively on every
operation. Nothing here does I/O.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import KW_ONLY, dataclass, field

from requests.structures import CaseInsensitiveDict

__all__ = ["HTTPRequest", "HTTPResponse", "Headers"]

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
