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

import dataclasses
import itertools
import json
import math
import operator
import os
import secrets
from dataclasses import dataclass
from typing import Any

from llmrelay.core.models import ChatResponse, Usage
from llmrelay.core.stream import StreamChunk, ToolCallDelta
from pydantic import BaseModel, ValidationError

__all__ = [
    "FORMAT_VERSION",
    "STREAM_TYPE",
    "DecodeError",
    "Entry",
    "Header",
    "decode_value",
    "encode",
    "encode_entry",
    "new_etag",
    "new_header",
    "split",
]  # fmt: skip

# 3: stream chunks stored as columns (2: a positional row per chunk; 1: an object per chunk).
FORMAT_VERSION = 3
STREAM_TYPE = "stream"

# The result types the cache stores, by class name.
_STORED_TYPES = frozenset({"ModelList", "Credits", "GenerationStats", "ChatResponse", "EmbeddingResponse"})
_EXCLUDE_META = {"meta"}
# json.dumps builds a new encoder per call whenever it is given options.
_COMPACT = json.JSONEncoder(separators=(",", ":"))
_quote = json.encoder.encode_basestring_ascii


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


class _Etags:
    # secrets.token_hex per store reads os.urandom, which releases the GIL: with
    # threads waiting for it, every cache miss paid for a hand-off. A random
    # prefix per process (drawn again in a forked child, which must not repeat
    # its parent's tags) and a counter are just as unique.
    def __init__(self) -> None:
        self.reseed()

    def reseed(self) -> None:
        self.prefix = secrets.token_hex(8)
        self.counter = itertools.count()

    def next(self) -> str:
        return f"{self.prefix}{next(self.counter):x}"


_etags = _Etags()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_etags.reseed)


def new_etag() -> str:
    """A tag no other stored version of any entry carries (in this process or another)."""
    return _etags.next()


def new_header(type_tag: str, now: float, fresh: float, swr: float, sie: float) -> Header:
    """The header of an entry stored at ``now``, fresh for ``fresh`` seconds, then stale for ``swr`` / ``sie``.

    ``now`` is taken down to the microsecond, so :func:`encode_entry` writes the
    times with integer formatting: the shortest ``repr`` of an arbitrary float
    (what ``json`` writes) was the costliest part of encoding a small entry.
    Down, never up: an entry is never stored as younger than it is, so a
    refresh due at ``stored_at + period`` is due at the clock's ``now + period``.
    """
    try:
        now_us = math.floor(now * 1e6)
        if now_us / 1e6 > now:  # the product rounded up to the next integer
            now_us -= 1
        fresh_us = now_us + round(fresh * 1e6)
        swr_us, sie_us = fresh_us + round(swr * 1e6), fresh_us + round(sie * 1e6)
    except (OverflowError, ValueError):  # an infinite (or NaN) time: keep the plain sums
        return Header(type_tag, now, now + fresh, now + fresh + swr, now + fresh + sie, new_etag())
    return Header(type_tag, now_us / 1e6, fresh_us / 1e6, swr_us / 1e6, sie_us / 1e6, new_etag())


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
            payload = self._payload
            if payload is None:  # another thread decoded it since (it sets _value first)
                return self._value
            value = self._value = decode_value(self.header, payload)
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
    if name not in _STORED_TYPES:
        raise TypeError(f"the cache cannot store a {name}")
    return name


def encode(value: Any, header: Header) -> bytes:
    return encode_entry(value, header)[0]


def encode_entry(value: Any, header: Header) -> tuple[bytes, memoryview]:
    """The stored bytes, and a view of their payload (what :func:`split` would return, without parsing)."""
    head = _encode_head(header)
    if header.type == STREAM_TYPE:
        body = _encode_stream(value)
    else:
        body = value.model_dump_json(exclude=_EXCLUDE_META).encode()
    data = b"\n".join((head, body))
    return data, memoryview(data)[len(head) + 1 :]


def _encode_head(header: Header) -> bytes:
    stored_at, fresh_until, swr_until, sie_until = (
        header.stored_at,
        header.fresh_until,
        header.swr_until,
        header.sie_until,
    )
    try:
        micros = round(stored_at * 1e6), round(fresh_until * 1e6), round(swr_until * 1e6), round(sie_until * 1e6)
    except (OverflowError, ValueError):  # not finite
        micros = None
    # Each decimal written here reads back as exactly its float: both are the
    # float nearest to micros / 10**6 (the times of new_header qualify).
    if (
        micros is not None
        and min(micros) >= 0
        and (micros[0] / 1e6, micros[1] / 1e6, micros[2] / 1e6, micros[3] / 1e6)
        == (stored_at, fresh_until, swr_until, sie_until)
    ):
        seconds = [part for value in micros for part in divmod(value, 1_000_000)]
        return _HEAD % (_quote(header.type).encode(), *seconds, _quote(header.etag).encode())
    return _COMPACT.encode({"v": FORMAT_VERSION, **dataclasses.asdict(header)}).encode()


_HEAD = (
    b'{"v":%d,"type":%%b,"stored_at":%%d.%%06d,"fresh_until":%%d.%%06d,'
    b'"swr_until":%%d.%%06d,"sie_until":%%d.%%06d,"etag":%%b}' % FORMAT_VERSION
)


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
    if header.type != STREAM_TYPE and header.type not in _STORED_TYPES:
        raise DecodeError(f"unknown type {header.type!r}")
    return header, body


def decode_value(header: Header, body: bytes | memoryview) -> Any:
    raw = bytes(body)
    try:
        if header.type == STREAM_TYPE:
            return _decode_stream(json.loads(raw))
        return _result_model(header.type).model_validate_json(raw)
    except (ValidationError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise DecodeError(f"bad {header.type} payload: {type(exc).__name__}") from None


def _result_model(type_name: str) -> type[BaseModel]:
    # The results of the catalog, account and embedding operations are
    # imported with the first entry of theirs, as the operations import them.
    if type_name == "ChatResponse":
        return ChatResponse
    if type_name == "ModelList":
        from llmrelay.core.catalog import ModelList

        return ModelList
    if type_name == "EmbeddingResponse":
        from llmrelay.core.embeddings import EmbeddingResponse

        return EmbeddingResponse
    from llmrelay.core.account import Credits, GenerationStats

    return Credits if type_name == "Credits" else GenerationStats


def decode(data: bytes) -> Entry:
    header, body = split(data)
    return Entry(decode_value(header, body), header)


# --------------------------------------------------------------------------- stream chunks


# A stored stream holds thousands of chunks and is encoded on the caller's
# thread when the stream ends. Nearly all of them are text deltas that differ
# only in their text: they are stored as columns (the texts, the reasoning
# deltas if any) plus the id, model and served_by they share, written once.
# Any other chunk (the last, with its finish reason and usage; tool-call
# deltas; one whose id or model differs) is stored whole, as a positional row
# with its index. Reading the columns takes C-level getters, not a Python
# row per chunk. ``raw`` (the service's own event) is not kept: replay does
# not need it.
_TEXT = operator.attrgetter("text")
_REASONING = operator.attrgetter("reasoning")
_SHAPE = operator.attrgetter("tool_calls", "finish_reason", "usage", "native_finish_reason", "id", "model", "served_by")


def _encode_stream(chunks: Any) -> bytes:
    chunks = tuple(chunks)
    if not chunks:
        return b'{"common":[null,null,null],"text":[],"whole":[]}'
    first = chunks[0]
    common = (first.id, first.model, first.served_by)
    plain = (None, None, None, None, *common)
    payload: dict[str, Any] = {
        "common": common,
        "text": list(map(_TEXT, chunks)),
        "whole": [
            (index, _chunk_to_json(chunks[index])) for index, shape in enumerate(map(_SHAPE, chunks)) if shape != plain
        ],
    }
    reasoning = list(map(_REASONING, chunks))
    if any(reasoning):
        payload["reasoning"] = reasoning
    return _COMPACT.encode(payload).encode()


def _decode_stream(payload: dict[str, Any]) -> tuple[StreamChunk, ...]:
    chunk_id, model, served_by = payload["common"]
    texts = payload["text"]
    reasoning = payload.get("reasoning")
    if reasoning is None:
        reasoning = itertools.repeat("", len(texts))
    chunks = [
        StreamChunk(text=text, reasoning=thought, id=chunk_id, model=model, served_by=served_by)
        for text, thought in zip(texts, reasoning, strict=True)
    ]
    for index, row in payload["whole"]:
        chunks[index] = _chunk_from_json(row)
    return tuple(chunks)


def _chunk_to_json(chunk: StreamChunk) -> list[Any]:
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
