"""Streamed chat for asyncio: :class:`AsyncChatStream`, what ``provider.astream_execute(request)`` returns.

It is used in any of the shapes of the OpenAI SDK's ``AsyncStream`` and
httpx's async streams::

    async with provider.astream_execute(request) as stream:   # closed when the block ends
        async for chunk in stream:
            print(chunk.text, end="")
    print(stream.usage)

    async for chunk in provider.astream_execute(request):      # closed when read to the end
        ...

    stream = await provider.astream_execute(request)           # opened now: HTTP errors raise here
    async for chunk in stream: ...
    await stream.aclose()

Nothing is sent until the stream is awaited, entered or first iterated; then
the provider's sync ``stream_execute`` runs on llmrelay's thread pool
(:mod:`llmrelay.core.aio`), through every layer, and each ``__anext__`` reads
the next chunk of that :class:`~llmrelay.core.stream.ChatStream` on the pool.

**Cancelling closes the upstream connection at once.** When the task reading
a chunk is cancelled (``task.cancel()``, a timeout), or the stream is closed
(``aclose``, leaving ``async with``, from any task), the sync stream is
closed: its socket is shut down, so the worker blocked in the read returns
and the server sees the connection end, without waiting for the idle
timeout. While the request is still waiting for its response headers there
is no connection to abort yet: the worker finishes opening the stream,
which is then closed at once.

An ``async for`` that breaks out early leaves the stream open until it is
closed or garbage-collected: use ``async with`` to close it at the break.
Only one task reads a stream at a time (as with an async generator).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Generator
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from .aio import run_sync
from .stream import ChatStream, StreamChunk

if TYPE_CHECKING:
    from .models import ChatResponse, ResponseMeta, ToolCall, Usage

__all__ = ["AsyncChatStream"]

T = TypeVar("T")


def _next_chunk(stream: ChatStream) -> StreamChunk | None:
    return next(stream, None)


class AsyncChatStream:
    """Iterate with ``async for`` for :class:`~llmrelay.core.stream.StreamChunk`; ``async with`` closes it.

    Once open it gives what :class:`~llmrelay.core.stream.ChatStream` gives
    (``text``, ``usage``, ``finish_reason``, ``tool_calls``, ``meta``, ...;
    :attr:`sync_stream` is that stream itself), and :meth:`final_response`
    reads the rest into one :class:`~llmrelay.core.models.ChatResponse`.
    """

    def __init__(self, open_stream: Callable[[], ChatStream]) -> None:
        self._open_stream: Callable[[], ChatStream] | None = open_stream
        #: The sync stream on the pool's side; ``None`` until the stream is open.
        self.sync_stream: ChatStream | None = None
        self._closed = False
        self._busy = False

    # ------------------------------------------------------------------ opening

    def __await__(self) -> Generator[Any, None, AsyncChatStream]:
        return self._opened().__await__()

    async def _opened(self) -> AsyncChatStream:
        await self._open()
        return self

    async def _open(self) -> ChatStream | None:
        """The sync stream, opened on the pool on first use; ``None`` if closed before it opened."""
        if self.sync_stream is not None:
            return self.sync_stream
        self._claim()  # another task opening it is reading it
        if self._open_stream is None:
            return None
        open_stream, self._open_stream = self._open_stream, None
        # A stream that opens after its caller was cancelled is closed on arrival.
        stream = await self._in_pool(open_stream, on_abandon=ChatStream.close)
        if self._closed:  # closed by another task while it opened
            stream.close()
            return None
        self.sync_stream = stream
        return stream

    def _claim(self) -> None:
        if self._busy:
            raise RuntimeError("another task is reading this stream; a stream is read by one task at a time")

    async def _in_pool(self, call: Callable[[], T], *, on_abandon: Callable[[T], object] | None = None) -> T:
        self._claim()
        self._busy = True
        try:
            return await run_sync(call, on_abandon=on_abandon)
        finally:
            self._busy = False

    # ------------------------------------------------------------------ iteration

    def __aiter__(self) -> AsyncChatStream:
        return self

    async def __anext__(self) -> StreamChunk:
        stream = self.sync_stream or await self._open()
        if stream is None or stream.outcome is not None:
            raise StopAsyncIteration
        try:
            chunk = await self._in_pool(partial(_next_chunk, stream))
        except asyncio.CancelledError:
            stream.close()  # aborts the read the worker is blocked in: the upstream connection closes now
            raise
        if chunk is None:
            raise StopAsyncIteration
        return chunk

    async def final_response(self) -> ChatResponse:
        """Read the rest of the stream (on the pool, in one job) and return it as one ChatResponse."""
        stream = self.sync_stream or await self._open()
        if stream is None:
            raise RuntimeError("the stream was closed before it opened: there is no response to read")
        try:
            return await self._in_pool(stream.final_response)
        except asyncio.CancelledError:
            stream.close()
            raise

    # ------------------------------------------------------------------ closing

    async def __aenter__(self) -> AsyncChatStream:
        await self._open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the stream and its upstream connection; safe more than once, and from any task.

        A read another task is blocked in is aborted at once: that task's
        ``async for`` ends. Closing runs on the event loop's thread (it only
        shuts a socket down and runs the layers' done-callbacks).
        """
        self._closed = True
        self._open_stream = None
        if self.sync_stream is not None:
            self.sync_stream.close()

    # ------------------------------------------------------------------ what the chunks added up to

    def _stream(self) -> ChatStream:
        if self.sync_stream is None:
            raise RuntimeError("the stream is not open yet: await it, enter it with `async with`, or iterate it first")
        return self.sync_stream

    @property
    def provider(self) -> str | None:
        return self._stream().provider

    @property
    def model(self) -> str | None:
        return self._stream().model

    @property
    def id(self) -> str | None:
        return self._stream().id

    @property
    def served_by(self) -> str | None:
        return self._stream().served_by

    @property
    def meta(self) -> ResponseMeta:
        return self._stream().meta

    @property
    def text(self) -> str:
        return self._stream().text

    @property
    def reasoning(self) -> str:
        return self._stream().reasoning

    @property
    def tool_calls(self) -> list[ToolCall]:
        return self._stream().tool_calls

    @property
    def usage(self) -> Usage | None:
        return self._stream().usage

    @property
    def finish_reason(self) -> str | None:
        return self._stream().finish_reason

    @property
    def native_finish_reason(self) -> str | None:
        return self._stream().native_finish_reason

    @property
    def outcome(self) -> str | None:
        """``"completed"``, ``"failed"``, ``"cancelled"`` (see StreamOutcome), or ``None`` while open."""
        return self._stream().outcome

    @property
    def error(self) -> BaseException | None:
        return self._stream().error

    @property
    def completed(self) -> bool:
        return self._stream().completed

    @property
    def chunk_count(self) -> int:
        return self._stream().chunk_count

    @property
    def time_to_first_chunk(self) -> float | None:
        return self._stream().time_to_first_chunk

    def __repr__(self) -> str:
        if self.sync_stream is None:
            return f"<AsyncChatStream {'closed' if self._closed else 'not opened'}>"
        return f"<AsyncChatStream of {self.sync_stream!r}>"
