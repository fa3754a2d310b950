"""The SSE parser against the spec's corner cases and real OpenRouter streams."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from llmrelay.core.errors import InvalidResponseError
from llmrelay.core.http.sse import SSEDecoder, SSEEvent, event_object, iter_sse

SAMPLES = Path(__file__).parent / "data" / "openrouter_samples"


def events(*reads: bytes) -> list[SSEEvent]:
    return list(iter_sse(reads))


def datas(*reads: bytes) -> list[str]:
    return [e.data for e in events(*reads)]


def test_data_events_and_comments() -> None:
    body = b': OPENROUTER PROCESSING\n\ndata: {"a":1}\n\n: OPENROUTER PROCESSING\n\ndata: [DONE]\n\n'
    assert datas(body) == ['{"a":1}', "[DONE]"]


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"])
def test_every_line_ending(eol: bytes) -> None:
    body = eol.join([b": c", b"data: one", b"", b"data: two", b"data: three", b"", b""])
    assert datas(body) == ["one", "two\nthree"]


def test_cr_at_read_boundary_followed_by_lf_is_one_line_end() -> None:
    # "data: x\r" | "\n\r\n": the LF belongs to the CR; then a blank line.
    assert datas(b"data: x\r", b"\n\r\n", b"data: y\r\n\r\n") == ["x", "y"]


def test_cr_at_read_boundary_then_another_line() -> None:
    # A lone CR ends the line; the next read starts a new line, not a blank one.
    assert datas(b"data: x\r", b"data: y\r\r") == ["x\ny"]


def test_multiline_data_fields_and_spacing() -> None:
    got = events(b"event: update\nid: 7\nretry: 1500\ndata:no-space\ndata:  two spaces\n\n")
    assert got == [SSEEvent("no-space\n two spaces", "update", "7", 1500)]


def test_field_without_colon_and_empty_data() -> None:
    assert datas(b"data\n\n") == [""]
    assert datas(b"event: ping\n\n") == []  # no data: nothing dispatched


def test_unfinished_event_at_end_is_discarded() -> None:
    assert datas(b"data: complete\n\ndata: partial") == ["complete"]


def test_bom_and_id_with_nul_ignored() -> None:
    got = events(b"\xef\xbb\xbfdata: a\nid: x\x00y\n\n")
    assert got[0].data == "a" and got[0].id is None


def test_multibyte_character_split_across_reads() -> None:
    encoded = "data: héllo ✓\n\n".encode()
    cut = encoded.index("✓".encode()) + 1
    assert datas(encoded[:cut], encoded[cut:]) == ["héllo ✓"]


def test_last_event_id_persists() -> None:
    got = events(b"id: 1\ndata: a\n\ndata: b\n\n")
    assert [e.id for e in got] == ["1", "1"]


@pytest.mark.parametrize("name", ["stream_error_2025.sse", "stream_tool_calls_2025.sse", "stream_end_turn_2024.sse"])
def test_real_streams_split_at_every_position(name: str) -> None:
    body = (SAMPLES / name).read_bytes()
    whole = datas(body)
    assert whole[-1] == "[DONE]"
    for payload in whole[:-1]:
        json.loads(payload)
    step = max(1, len(body) // 300)
    for cut in range(0, len(body), step):
        assert datas(body[:cut], body[cut:]) == whole


@settings(max_examples=150, deadline=None)
@given(
    payloads=st.lists(
        st.text(alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), max_size=20),
        min_size=1,
        max_size=6,
    ),
    eol=st.sampled_from(["\n", "\r\n", "\r"]),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=8),
)
def test_any_split_gives_the_same_events(payloads: list[str], eol: str, cuts: list[int]) -> None:
    text = "".join(f": keep-alive{eol}data: {p}{eol}{eol}" for p in payloads)
    body = text.encode()
    points = sorted({min(c, len(body)) for c in cuts})
    reads, last = [], 0
    for point in points:
        reads.append(body[last:point])
        last = point
    reads.append(body[last:])
    assert datas(*reads) == payloads


def test_decoder_feed_returns_completed_events_only() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a") == []
    assert [e.data for e in decoder.feed(b"\n\n")] == ["a"]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ('{"a": 1}', {"a": 1}),
        ('  {"a": 1}', {"a": 1}),
        ('{"a": 1}\t\r\n ', {"a": 1}),
        ('{"a":[1,{"b":null}]}', {"a": [1, {"b": None}]}),
    ],
)
def test_event_object_accepts_json_objects_with_json_whitespace(data: str, expected: dict) -> None:
    assert event_object(data, provider="p") == expected


@pytest.mark.parametrize("data", ['{"a": 1} x', '{"a": 1}\u00a0', '{"a": 1}{"b": 2}', "{", "[1, 2]", '"text"', "null"])
def test_event_object_rejects_anything_else_with_a_typed_error(data: str) -> None:
    with pytest.raises(InvalidResponseError, match="stream: an event is"):
        event_object(data, provider="p")
