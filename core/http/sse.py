"""A Server-Sent Events parser that follows the WHATWG spec and is fast on the common case.

Spec points it handles (https://html.spec.whatwg.org/multipage/server-sent-events.html):

* lines end with CRLF, LF or a lone CR, including a CR that is the last byte
  of one network read with its LF at the start of the next;
* lines starting with ``:`` are comments (OpenRouter's ``: OPENROUTER
  PROCESSING`` keep-alives) and are skipped;
* ``field: value`` drops one space after the colon; a line without a colon
  is a field with an empty value; unknown fields are ignored;
* several ``data:`` lines in one event are joined with ``\\n``;
* an event is dispatched at a blank line, only if it has data; an event not
  finished by a blank line when the stream ends is discarded;
* a leading UTF-8 BOM is ignored; ``id`` containing NUL is ignored.

``[DONE]`` is not part of SSE: it is an ordinary data payload that the
caller (the OpenAI-format stream driver) recognises.

The parser works on bytes and decodes each event's data once, so a
multi-byte character split across two reads is never torn.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidResponseError
from ..secrets import redact

__all__ = ["SSEDecoder", "SSEEvent", "event_object", "iter_sse"]

# Runs once per streamed chunk: raw_decode skips json.loads' argument checks
# and its two whitespace regex matches; decode (what json.loads calls) is the
# fallback that handles padding and words the error.
_decoder = json.JSONDecoder()
_raw_decode = _decoder.raw_decode
_decode = _decoder.decode
_JSON_WHITESPACE = " \t\n\r"


@dataclass(slots=True)
class SSEEvent:
    """One dispatched event. ``event`` defaults to ``"message"``."""

    data: str
    event: str = "message"
    id: str | None = None
    retry: int | None = None


class SSEDecoder:
    """Incremental decoder: ``feed(bytes)`` returns the events completed so far."""

    __slots__ = ("_pending", "_skip_lf", "_data", "_event", "_last_id", "_retry", "_started")

    def __init__(self) -> None:
        self._pending = b""  # an unfinished line, with no CR or LF in it
        self._skip_lf = False  # the last read ended with a CR: drop an LF that starts the next
        self._data: list[bytes] = []
        self._event: bytes | None = None
        self._last_id: str | None = None  # persists across events, per spec
        self._retry: int | None = None
        self._started = False

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        events: list[SSEEvent] = []
        data = self._data
        for line in self._complete_lines(chunk):
            if not line:
                if not data:
                    self._event = None
                elif len(data) == 1 and self._event is None:
                    # The common event, one data line and no name, dispatched inline (hot path).
                    events.append(SSEEvent(data[0].decode("utf-8", "replace"), "message", self._last_id, self._retry))
                    data.clear()
                else:
                    events.append(self._dispatch())
                    data = self._data
                continue
            if line.startswith(b"data:"):
                data.append(line[6:] if line[5:6] == b" " else line[5:])
                continue
            if line[0] == 0x3A:  # ":" starts a comment
                continue
            self._field(line)
        return events

    def _complete_lines(self, chunk: bytes) -> list[bytes]:
        """The lines ``chunk`` completes, with CRLF and lone CR read as LF; the unfinished rest is kept."""
        if self._skip_lf:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        if not chunk:
            return []
        buffer = self._pending + chunk if self._pending else chunk
        if not self._started:
            self._started = True
            if buffer.startswith(b"\xef\xbb\xbf"):
                buffer = buffer[3:]
        if b"\r" in buffer:
            if buffer[-1:] == b"\r":
                # The CR ends a line now; whether an LF follows is for the next read.
                self._skip_lf = True
                buffer = buffer[:-1].replace(b"\r\n", b"\n").replace(b"\r", b"\n") + b"\n"
            else:
                buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = buffer.split(b"\n")
        self._pending = lines.pop()
        return lines

    def _field(self, line: bytes) -> None:
        name, colon, value = line.partition(b":")
        if colon and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._data.append(value)
        elif name == b"event":
            self._event = value
        elif name == b"id" and b"\x00" not in value:
            self._last_id = value.decode("utf-8", "replace")
        elif name == b"retry" and value.isdigit():
            self._retry = int(value)

    def _dispatch(self) -> SSEEvent:
        data = self._data
        text = (data[0] if len(data) == 1 else b"\n".join(data)).decode("utf-8", "replace")
        event = self._event.decode("utf-8", "replace") if self._event else "message"
        self._data = []
        self._event = None
        return SSEEvent(text, event, self._last_id, self._retry)

    def close(self) -> list[SSEEvent]:
        """End of stream: an unfinished event is discarded, per spec."""
        self._pending = b""
        self._skip_lf = False
        self._data = []
        self._event = None
        return []


def iter_sse(chunks: Iterable[bytes]) -> Iterator[SSEEvent]:
    """Events from an iterable of raw byte reads."""
    decoder = SSEDecoder()
    feed = decoder.feed
    for chunk in chunks:
        if chunk:
            yield from feed(chunk)
    decoder.close()


def event_object(data: str, *, provider: str | None) -> dict[str, Any]:
    """An event's data as the JSON object streaming APIs send; anything else is :class:`InvalidResponseError`."""
    try:
        obj, end = _raw_decode(data)
        if end != len(data) and data[end:].strip(_JSON_WHITESPACE):
            raise ValueError("extra data")
    except ValueError:
        try:
            obj = _decode(data)  # leading whitespace is fine; anything else raises
        except ValueError:
            raise InvalidResponseError(
                f"stream: an event is not JSON: {redact(data[:200])!r}", provider=provider
            ) from None
    if type(obj) is not dict:
        raise InvalidResponseError(f"stream: an event is a JSON {type(obj).__name__}, not an object", provider=provider)
    return obj
