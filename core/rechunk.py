"""A stream's text re-cut on word boundaries, for display that does not show half words.

Services stream text in tokens (``"Hel"``, ``"lo"``, ``" wor"``, ``"ld"``);
a chat window that prints each one flickers through half words.
:func:`rechunk_words` holds text back until a word is complete::

    with provider.stream_execute(request) as stream:
        for chunk in rechunk_words(stream):
            print(chunk.text, end="", flush=True)     # "Hello ", "world"
        reply = stream.final_response()               # the stream still adds everything up

:func:`arechunk_words` does the same over an async iterator of chunks.

The rules, which keep the text exact (the output's text joined is the
input's, always) and every other chunk as it was:

* a chunk with text and nothing else is held back; whenever the held text
  holds whitespace, everything up to its last whitespace character goes
  out as one chunk (a copy of the latest chunk with that text, ``raw``
  left out since it described other text) and the partial word after it
  stays;
* a chunk that carries anything else (reasoning, tool-call deltas, a finish
  reason, usage) first lets out all held text, then goes out itself,
  unchanged (the same object); a chunk that carries nothing at all goes
  out at once and lets nothing out: there is nothing to order it against;
* held text also goes out, partial word and all, when it reaches
  ``max_chars`` characters (text with no spaces, such as Chinese or a long
  URL, is not held to the end), or, with ``max_delay``, when a chunk arrives
  that long after the text began to be held. There is no timer thread: the
  delay is checked as chunks arrive, so a stalled upstream holds a partial
  word until its next chunk or the end;
* at the end of the input the rest goes out; when the input fails, the text
  that arrived before the error goes out first, then the error is raised.

The input is not closed by these helpers: close the stream as usual
(``with``), so its connection goes back to the pool however the loop ends.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .stream import StreamChunk

__all__ = ["DEFAULT_MAX_CHARS", "WordRechunker", "arechunk_words", "rechunk_words"]

#: Held text longer than this goes out even without a word boundary.
DEFAULT_MAX_CHARS = 32

_NOTHING: tuple[StreamChunk, ...] = ()


def _is_plain_text(chunk: StreamChunk) -> bool:
    return not (chunk.reasoning or chunk.tool_calls or chunk.finish_reason is not None or chunk.usage is not None)


def _boundary(text: str) -> int:
    """The index just past the last whitespace character of ``text``; 0 when it has none."""
    # Scanned from the end: a token's whitespace is at its start, so the scan is a character or two.
    for index in range(len(text) - 1, -1, -1):
        if text[index].isspace():
            return index + 1
    return 0


def _with_text(chunk: StreamChunk, text: str) -> StreamChunk:
    out = chunk.without_raw()  # a fresh chunk: the cheap copy ChatStream's recording uses
    out.text = text
    return out


class WordRechunker:
    """The rules of :func:`rechunk_words` as a state machine: ``feed`` chunks in, ``flush`` at the end.

    For driving it from a loop of your own (an event loop callback, a
    queue consumer). Not thread-safe: one stream, one consumer.
    """

    def __init__(
        self,
        *,
        max_chars: int | None = DEFAULT_MAX_CHARS,
        max_delay: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_chars is not None and max_chars < 1:
            raise ValueError(f"max_chars must be at least 1 (or None for no limit), got {max_chars}")
        if max_delay is not None and max_delay < 0:
            raise ValueError(f"max_delay must be a number of seconds >= 0 (or None), got {max_delay}")
        self.max_chars = max_chars
        self.max_delay = max_delay
        self.clock = clock
        self._held: list[str] = []
        self._held_chars = 0
        self._held_since = 0.0
        self._template: StreamChunk | None = None  # the latest chunk whose text is held

    def feed(self, chunk: StreamChunk) -> tuple[StreamChunk, ...]:
        """The chunks to pass on now that ``chunk`` arrived (often none)."""
        if not chunk.text:
            if _is_plain_text(chunk):
                return (chunk,)  # carries nothing: nothing to order it against
            held = self.flush()
            return (chunk,) if held is None else (held, chunk)
        if not _is_plain_text(chunk):
            held = self.flush()
            return (chunk,) if held is None else (held, chunk)
        return self._add_text(chunk)

    def _add_text(self, chunk: StreamChunk) -> tuple[StreamChunk, ...]:
        text = chunk.text
        if self._held and self.max_delay is not None and self.clock() - self._held_since >= self.max_delay:
            return (self._take(chunk, text),)
        cut = _boundary(text)
        if cut == 0:
            self._hold(chunk, text)
            if self.max_chars is not None and self._held_chars >= self.max_chars:
                return (self._take(chunk, ""),)
            return _NOTHING
        if cut == len(text) and not self._held:
            return (chunk,)  # a whole word or more, ending on its boundary: passed on as it came
        out = self._take(chunk, text[:cut])
        if cut < len(text):
            self._hold(chunk, text[cut:])
        return (out,)

    def _hold(self, chunk: StreamChunk, text: str) -> None:
        if not self._held and self.max_delay is not None:
            self._held_since = self.clock()
        self._held.append(text)
        self._held_chars += len(text)
        self._template = chunk

    def _take(self, chunk: StreamChunk, more: str) -> StreamChunk:
        """A chunk of the held text and ``more``, on ``chunk``'s fields; nothing is held after it."""
        self._held.append(more)
        text = "".join(self._held)
        self._held.clear()
        self._held_chars = 0
        self._template = None
        return _with_text(chunk, text)

    def flush(self) -> StreamChunk | None:
        """A chunk of all the held text, or ``None`` when none is held."""
        template = self._template
        if template is None:
            return None
        return self._take(template, "")

    @property
    def held(self) -> str:
        """The text held back so far."""
        return "".join(self._held)


def rechunk_words(
    chunks: Iterable[StreamChunk],
    *,
    max_chars: int | None = DEFAULT_MAX_CHARS,
    max_delay: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[StreamChunk]:
    """``chunks`` with their text re-cut on word boundaries (the module's docstring has the rules).

    ``max_chars``: held text that long goes out without a boundary (``None``:
    no limit). ``max_delay``: seconds after which held text goes out with the
    next chunk (``None``: no limit); ``clock`` measures it.
    """
    buffer = WordRechunker(max_chars=max_chars, max_delay=max_delay, clock=clock)
    try:
        for chunk in chunks:
            yield from buffer.feed(chunk)
    except Exception:
        # What arrived before the failure is shown before it. (Exception, not
        # BaseException: a generator closed early must not yield again.)
        held = buffer.flush()
        if held is not None:
            yield held
        raise
    held = buffer.flush()
    if held is not None:
        yield held


async def arechunk_words(
    chunks: AsyncIterable[StreamChunk],
    *,
    max_chars: int | None = DEFAULT_MAX_CHARS,
    max_delay: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> AsyncIterator[StreamChunk]:
    """:func:`rechunk_words` over an async iterator of chunks (an async stream)."""
    buffer = WordRechunker(max_chars=max_chars, max_delay=max_delay, clock=clock)
    try:
        async for chunk in chunks:
            for out in buffer.feed(chunk):
                yield out
    except Exception:
        held = buffer.flush()
        if held is not None:
            yield held
        raise
    held = buffer.flush()
    if held is not None:
        yield held
