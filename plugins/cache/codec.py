"""Cache entries and their stored form: versioned JSON, never pickle.

A stored entry is two lines of JSON::

    {"v":1,"type":"ModelList","stored_at":...,"fresh_until":...,"swr_until":...,"sie_until":...,"etag":"..."}
    {...the result, as the model's own JSON...}

The small header line is read on its own, so a process whose L1 copy has
the same ``etag`` as the L2 entry extends its copy without parsing (and
validating) the payload again; that is what keeps an L2 hit on a large
model list close to the cost of the Redis GET itself. An entry with another
version or an unknown type decodes as a miss, so a deploy that changes the
format never serves garbage.

Results are stored without their ``meta`` (how one call was answered is not
part of the data). Stream results are stored as their chunks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from llmrelay.core.models import ChatResponse, Credits, EmbeddingResponse, GenerationStats, ModelList, Usage
from llmrelay.core.stream import StreamChunk, ToolCallDelta

__all__ = ["FORMAT_VERSION", "STREAM_TYPE", "Entry", "Header", "DecodeError", "encode", "split", "decode_value"]

# 2: stream chunks stored as positional rows (version 1 used one object per chunk).
FORMAT_VERSION = 2
STREAM_TYPE = "stream"

_MODELS: dict[str, type[BaseModel]] = {
    cls.__name__: cls for cls in (ModelList, Credits, GenerationStats, ChatResponse, EmbeddingResponse)
}
_EXCLUDE_META = {"meta"}


class DecodeError(ValueError):
    """Stored bytes are not an entry this version understands (treated as a miss)."""


@dataclass(frozen=True, slots=True)
class Header:
    type: str
    stored_at: float
    fresh_until: float
    swr_until: float  # serve stale while revalidating until then
    sie_until: float  # serve stale when the upstream is unavailable until then
    etag: str

    @property
    def keep_until(self) -> float:
        return max(self.fresh_until, self.swr_until, self.sie_until)


_UNDECODED: Any = object()


class Entry:
    """A cached result with its freshness; ``value`` is shared, so never mutated.

    An entry built from what was just stored keeps the encoded payload and
    decodes it on first use: a miss then pays for one encode (needed for L2
    anyway), not an encode and a decode, and an entry never read costs no
    decode at all. A concurrent first use may decode twice; both results are
    equal and either may win.
    """

    __slots__ = ("header", "_value", "_payload")

    def __init__(self, value: Any, header: Header, *, payload: bytes | memoryview | None = None) -> None:
        self.header = header
        self._value = value
        self._payload = payload

    @classmethod
    def lazy(cls, header: Header, payload: bytes | memoryview) -> Entry:
        return cls(_UNDECODED, header, payload=payload)

    @property
    def value(self) -> Any:
        value = self._value
        if value is _UNDECODED:
            value = self._value = decode_value(self.header, self._payload)  # type: ignore[arg-type]
            self._payload = None
        return value

    @property
    def stored_at(self) -> float:
        return self.header.stored_at

    @property
    def fresh_until(self) -> float:
        return self.header.fresh_until

    @property
    def etag(self) -> str:
        return self.header.etag


def type_tag(value: Any) -> str:
    if isinstance(value, tuple):
        return STREAM_TYPE
    name = type(value).__name__
    if name not in _MODELS:
        raise TypeError(f"the cache cannot store a {name}")
    return name


def encode(value: Any, header: Header) -> bytes:
    head = json.dumps(
        {
            "v": FORMAT_VERSION,
            "type": header.type,
            "stored_at": header.stored_at,
            "fresh_until": header.fresh_until,
            "swr_until": header.swr_until,
            "sie_until": header.sie_until,
            "etag": header.etag,
        },
        separators=(",", ":"),
    ).encode()
    if header.type == STREAM_TYPE:
        body = json.dumps([_chunk_to_json(chunk) for chunk in value], separators=(",", ":")).encode()
    else:
        body = value.model_dump_json(exclude=_EXCLUDE_META).encode()
    return head + b"\n" + body


def split(data: bytes) -> tuple[Header, memoryview]:
    """The header of stored bytes, and the payload still to decode.

    The payload is a view, not a copy: an L2 read whose ``etag`` L1 already
    holds never copies (nor parses) the body.
    """
    end = data.find(b"\n")
    if end < 0:
        raise DecodeError("no header line")
    head = data[:end]
    body = memoryview(data)[end + 1 :]
    try:
        raw = json.loads(head)
        if raw.get("v") != FORMAT_VERSION:
            raise DecodeError(f"format version {raw.get('v')!r}, expected {FORMAT_VERSION}")
        header = Header(
            type=str(raw["type"]),
            stored_at=float(raw["stored_at"]),
            fresh_until=float(raw["fresh_until"]),
            swr_until=float(raw["swr_until"]),
            sie_until=float(raw["sie_until"]),
            etag=str(raw["etag"]),
        )
    except DecodeError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DecodeError(f"bad header: {type(exc).__name__}") from None
    if header.type != STREAM_TYPE and header.type not in _MODELS:
        raise DecodeError(f"unknown type {header.type!r}")
    return header, body


def decode_value(header: Header, body: bytes | memoryview) -> Any:
    raw = bytes(body)
    try:
        if header.type == STREAM_TYPE:
            return tuple(_chunk_from_json(item) for item in json.loads(raw))
        return _MODELS[header.type].model_validate_json(raw)
    except (ValidationError, ValueError, KeyError, TypeError) as exc:
        raise DecodeError(f"bad {header.type} payload: {type(exc).__name__}") from None


def decode(data: bytes) -> Entry:
    header, body = split(data)
    return Entry(decode_value(header, body), header)


# --------------------------------------------------------------------------- stream chunks


def _chunk_to_json(chunk: StreamChunk) -> list[Any]:
    # One positional row per chunk: a stored stream holds thousands of them and
    # is encoded on the caller's thread when the stream ends, so the row is
    # built with one tuple read, not a dict and a getattr per field. ``raw``
    # (the service's own event) is not kept: replay does not need it.
    tool_calls = chunk.tool_calls
    usage = chunk.usage
    return [
        chunk.text,
        chunk.reasoning,
        chunk.finish_reason,
        chunk.native_finish_reason,
        chunk.id,
        chunk.model,
        chunk.served_by,
        [[d.index, d.id, d.name, d.arguments] for d in tool_calls] if tool_calls else None,
        usage.model_dump(mode="json", exclude_none=True) if usage is not None else None,
    ]


def _chunk_from_json(row: list[Any]) -> StreamChunk:
    text, reasoning, finish, native, chunk_id, model, served_by, tool_calls, usage = row
    return StreamChunk(
        text=text,
        reasoning=reasoning,
        tool_calls=[ToolCallDelta(*delta) for delta in tool_calls] if tool_calls else None,
        finish_reason=finish,
        usage=Usage.model_validate(usage) if usage is not None else None,
        id=chunk_id,
        model=model,
        served_by=served_by,
        native_finish_reason=native,
    )


def copy_chunk(chunk: StreamChunk) -> StreamChunk:
    """A chunk a caller may change without changing the cached one."""
    return StreamChunk(
        text=chunk.text,
        reasoning=chunk.reasoning,
        tool_calls=[ToolCallDelta(d.index, d.id, d.name, d.arguments) for d in chunk.tool_calls]
        if chunk.tool_calls
        else None,
        finish_reason=chunk.finish_reason,
        usage=chunk.usage.model_copy() if chunk.usage is not None else None,
        id=chunk.id,
        model=chunk.model,
        served_by=chunk.served_by,
        native_finish_reason=chunk.native_finish_reason,
    )
