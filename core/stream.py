"""Streamed chat: typed chunks and the stream object callers iterate.

A :class:`ChatStream` is an iterator of :class:`StreamChunk` and a context
manager. Leaving the ``with`` block, calling :meth:`ChatStream.close`, or
dropping the stream before it is exhausted closes the HTTP response so the
connection goes back to the pool (or is discarded if it is mid-body).

While it is iterated the stream assembles what the chunks add up to (text,
reasoning, tool calls by index, usage, finish reason), so
:meth:`ChatStream.final_response` gives the same :class:`ChatResponse` a
non-streamed call would have.

Layers observe a stream through :meth:`ChatStream.add_done_callback`
instead of wrapping its iterator: one callback when the stream ends, for
whatever reason, costs nothing per chunk.

:meth:`ChatStream.close` may be called from any thread, also while another
thread is blocked in ``next()`` (an async caller's worker, see
:mod:`llmrelay.core.async_stream`): the transport's close aborts the read
(an HTTP stream's socket is shut down), and that ``next()`` ends the
iteration instead of raising the abort's error.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from .errors import LLMRelayError, StreamInterruptedError
from .models import ChatResponse, FunctionCall, Message, ResponseMeta, ToolCall, Usage

__all__ = ["ChatStream", "StreamChunk", "StreamOutcome", "ToolCallDelta"]


@dataclass(slots=True)
class ToolCallDelta:
    """A fragment of a tool call; fragments with the same ``index`` add up."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(slots=True)
class StreamChunk:
    """One event of a stream: a text, reasoning or tool-call delta, and on the last one the finish reason and usage.

    ``raw`` is the event as the service sent it (left out of the repr).
    """

    text: str = ""
    reasoning: str = ""
    tool_calls: list[ToolCallDelta] | None = None
    finish_reason: str | None = None
    usage: Usage | None = None
    id: str | None = None
    model: str | None = None
    served_by: str | None = None
    native_finish_reason: str | None = None
    raw: dict[str, Any] | None = field(default=None, repr=False)

    def without_raw(self) -> StreamChunk:
        """This chunk without ``raw``: what a recorded stream keeps.

        Written out rather than ``replace(raw=None)``: it runs once per chunk
        of every recorded stream, and ``dataclasses.replace`` inspects the
        fields on each call (a fifth of a recorded stream's client time).
        """
        return StreamChunk(
            self.text,
            self.reasoning,
            self.tool_calls,
            self.finish_reason,
            self.usage,
            self.id,
            self.model,
            self.served_by,
            self.native_finish_reason,
        )

    def replace(self, **changes: Any) -> StreamChunk:
        """A copy with ``changes`` applied (``dataclasses.replace``)."""
        return replace(self, **changes)


class StreamOutcome:
    """How a stream ended, as passed to done-callbacks."""

    COMPLETED = "completed"  # the service ended it cleanly
    FAILED = "failed"  # an error ended it (see ChatStream.error)
    CANCELLED = "cancelled"  # the caller closed it before the end


@dataclass(slots=True)
class _ToolCallBuilder:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)

    def add(self, delta: ToolCallDelta) -> None:
        # The id and name come once (usually on the first fragment); the arguments arrive in pieces.
        if delta.id:
            self.id = delta.id
        if delta.name:
            self.name = delta.name
        if delta.arguments:
            self.arguments.append(delta.arguments)


DoneCallback = Callable[["ChatStream"], None]


class ChatStream:
    """Iterate for :class:`StreamChunk`; use as a context manager to release the connection."""

    def __init__(
        self,
        chunks: Iterator[StreamChunk],
        *,
        provider: str | None = None,
        model: str | None = None,
        close: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._chunks = chunks
        self._close_transport = close
        self._clock = clock
        self._callbacks: list[DoneCallback] = []
        self.provider = provider
        self.model = model
        self.meta = ResponseMeta()
        self.started_at = clock()
        self.first_chunk_at: float | None = None
        self.ended_at: float | None = None
        self.outcome: str | None = None
        self.error: BaseException | None = None
        self.chunk_count = 0
        self.id: str | None = None
        self.served_by: str | None = None
        self.finish_reason: str | None = None
        self.native_finish_reason: str | None = None
        self.usage: Usage | None = None
        self._text: list[str] = []
        self._reasoning: list[str] = []
        self._tools: dict[int, _ToolCallBuilder] = {}
        # Chunks kept only when a layer asks (the cache, to replay the stream).
        self._recorded: list[StreamChunk] | None = None
        # Settling the outcome and releasing happen once, whichever thread
        # gets there first: a close from another thread can race the end.
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ iteration

    def __iter__(self) -> ChatStream:
        return self

    def __next__(self) -> StreamChunk:
        if self.outcome is not None:
            raise StopIteration
        try:
            chunk = next(self._chunks)
        except StopIteration:
            self._finish(StreamOutcome.COMPLETED, None)
            raise
        except LLMRelayError as exc:
            if not self._finish(StreamOutcome.FAILED, exc):
                raise StopIteration from None  # closed by another thread meanwhile: the abort's error is no failure
            raise
        except Exception as exc:  # a bug or a foreign error inside the parser
            wrapped = StreamInterruptedError(f"stream failed: {type(exc).__name__}: {exc}", provider=self.provider)
            if not self._finish(StreamOutcome.FAILED, wrapped):
                raise StopIteration from None
            raise wrapped from exc
        if self.outcome is not None:
            # Closed by another thread while this read was under way: the
            # chunks could not be closed then (they were being read), so now.
            self._release()
            raise StopIteration
        if self.first_chunk_at is None:
            self.first_chunk_at = self._clock()
        self.chunk_count += 1
        self._absorb(chunk)
        if self._recorded is not None:
            # Kept without ``raw``: holding every event's parsed dict until the
            # stream ends made each later json.loads allocate fresh memory
            # instead of reusing the last event's (+1.1 ms per 1000 chunks).
            self._recorded.append(chunk.without_raw())
        return chunk

    def _absorb(self, chunk: StreamChunk) -> None:
        if chunk.text:
            self._text.append(chunk.text)
        if chunk.reasoning:
            self._reasoning.append(chunk.reasoning)
        if chunk.tool_calls:
            self._absorb_tool_calls(chunk.tool_calls)
        # The usage-only chunk at the end repeats (or nulls) finish_reason:
        # the first non-null one is the real one.
        if chunk.finish_reason and self.finish_reason is None:
            self.finish_reason = chunk.finish_reason
            self.native_finish_reason = chunk.native_finish_reason
        if chunk.usage is not None:
            self.usage = chunk.usage
        if chunk.id and self.id is None:
            self.id = chunk.id
        if chunk.model:
            self.model = chunk.model
        if chunk.served_by:
            self.served_by = chunk.served_by

    def _absorb_tool_calls(self, deltas: list[ToolCallDelta]) -> None:
        for delta in deltas:
            builder = self._tools.get(delta.index)
            if builder is None:
                builder = self._tools[delta.index] = _ToolCallBuilder()
            builder.add(delta)

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> ChatStream:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def close(self) -> None:
        """Stop reading and release the connection. Safe to call more than once, and from any thread.

        A ``next()`` blocked on another thread returns at once for an HTTP
        stream (its read is aborted) and ends the iteration.
        """
        if not self._finish(StreamOutcome.CANCELLED, None):
            self._release()

    def __del__(self) -> None:
        # A stream dropped half-read must not hold a pooled connection.
        if getattr(self, "outcome", "done") is None:
            with contextlib.suppress(Exception):
                self.close()

    def _release(self) -> None:
        chunks = self._chunks
        close_chunks = getattr(chunks, "close", None)
        if close_chunks is not None:
            try:
                close_chunks()
            except ValueError:
                # "generator already executing": another thread is inside
                # next() on it. The transport's close below aborts that read;
                # the generator then ends on that thread and cleans up there.
                if not getattr(chunks, "gi_running", False):
                    raise
        with self._lock:
            close, self._close_transport = self._close_transport, None
        if close is not None:
            close()

    def _finish(self, outcome: str, error: BaseException | None) -> bool:
        """Settle the outcome, release, run the callbacks; False (and nothing done) if it was settled already."""
        with self._lock:
            if self.outcome is not None:
                return False
            self.outcome = outcome
            self.error = error
            self.ended_at = self._clock()
        try:
            self._release()
        finally:
            callbacks, self._callbacks = self._callbacks, []
            for callback in callbacks:
                callback(self)
        return True

    def add_done_callback(self, callback: DoneCallback) -> None:
        """Call ``callback(stream)`` once when the stream ends, for any reason."""
        if self.outcome is not None:
            callback(self)
        else:
            self._callbacks.append(callback)

    def record_chunks(self) -> None:
        """Keep every chunk from now on (see :attr:`recorded_chunks`)."""
        if self._recorded is None:
            self._recorded = []

    @property
    def recorded_chunks(self) -> list[StreamChunk]:
        """The chunks seen since :meth:`record_chunks`, as delivered but without ``raw``."""
        return list(self._recorded or [])

    # ------------------------------------------------------------------ results

    @property
    def completed(self) -> bool:
        return self.outcome == StreamOutcome.COMPLETED

    @property
    def text(self) -> str:
        return "".join(self._text)

    @property
    def reasoning(self) -> str:
        return "".join(self._reasoning)

    @property
    def tool_calls(self) -> list[ToolCall]:
        return [
            ToolCall(id=b.id, function=FunctionCall(name=b.name, arguments="".join(b.arguments)))
            for _, b in sorted(self._tools.items())
        ]

    @property
    def time_to_first_chunk(self) -> float | None:
        if self.first_chunk_at is None:
            return None
        return self.first_chunk_at - self.started_at

    def final_response(self) -> ChatResponse:
        """Read the rest of the stream and return it as one :class:`ChatResponse`."""
        for _ in self:
            pass
        if self.error is not None:
            raise self.error
        tool_calls = self.tool_calls or None
        message = Message(
            role="assistant",
            content=self.text or (None if tool_calls else ""),
            tool_calls=tool_calls,
            reasoning=self.reasoning or None,
        )
        return ChatResponse(
            id=self.id,
            model=self.model,
            provider=self.provider,
            served_by=self.served_by,
            message=message,
            finish_reason=self.finish_reason,
            native_finish_reason=self.native_finish_reason,
            usage=self.usage,
            meta=self.meta,
        )

    def __repr__(self) -> str:
        state = self.outcome or "open"
        return f"<ChatStream provider={self.provider!r} model={self.model!r} {state} chunks={self.chunk_count}>"
