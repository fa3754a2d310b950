"""ChatStream assembles what the chunks add up to and always releases its connection."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from llmrelay.core import ChatStream, StreamChunk, ToolCallDelta, Usage
from llmrelay.core.errors import ServerError, StreamInterruptedError
from llmrelay.core.stream import StreamOutcome

from tests.support.clock import FakeClock


class Transport:
    """Stands in for the HTTP response: counts how often it is released."""

    def __init__(self) -> None:
        self.closed = 0

    def close(self) -> None:
        self.closed += 1


def tool_call_chunks() -> list[StreamChunk]:
    return [
        StreamChunk(reasoning="Need ", id="gen-1", model="m/1"),
        StreamChunk(reasoning="weather.", served_by="Groq"),
        StreamChunk(text="Checking"),
        StreamChunk(text=" both."),
        StreamChunk(tool_calls=[ToolCallDelta(index=0, id="call_a", name="get_weather", arguments='{"ci')]),
        StreamChunk(tool_calls=[ToolCallDelta(index=1, id="call_b", name="get_time", arguments="{}")]),
        StreamChunk(tool_calls=[ToolCallDelta(index=0, arguments='ty": "Paris"}')]),
        StreamChunk(finish_reason="tool_calls", native_finish_reason="tool_use"),
        # The usage chunk at the end repeats finish_reason as null.
        StreamChunk(finish_reason=None, usage=Usage(prompt_tokens=10, completion_tokens=5, total_tokens=15)),
    ]


def test_stream_assembles_text_reasoning_tool_calls_and_usage() -> None:
    transport = Transport()
    stream = ChatStream(iter(tool_call_chunks()), provider="p", model="m", close=transport.close)

    chunks = list(stream)

    assert len(chunks) == stream.chunk_count == 9
    assert stream.text == "Checking both."
    assert stream.reasoning == "Need weather."
    assert [(c.id, c.function.name, c.function.arguments) for c in stream.tool_calls] == [
        ("call_a", "get_weather", '{"city": "Paris"}'),
        ("call_b", "get_time", "{}"),
    ]
    assert stream.finish_reason == "tool_calls"
    assert stream.native_finish_reason == "tool_use"
    assert stream.usage == Usage(prompt_tokens=10, completion_tokens=5, total_tokens=15)
    assert stream.outcome == StreamOutcome.COMPLETED and stream.completed
    assert transport.closed == 1

    response = stream.final_response()
    assert response.id == "gen-1"
    assert response.model == "m/1"
    assert response.served_by == "Groq"
    assert response.provider == "p"
    assert response.text == "Checking both."
    assert response.message.reasoning == "Need weather."
    assert [c.id for c in response.tool_calls] == ["call_a", "call_b"]
    assert response.usage is not None and response.usage.total_tokens == 15


def test_a_tool_call_only_stream_has_no_content() -> None:
    chunks = [
        StreamChunk(tool_calls=[ToolCallDelta(index=0, id="c", name="f", arguments="{}")], finish_reason="tool_calls")
    ]
    response = ChatStream(iter(chunks)).final_response()
    assert response.message.content is None
    assert response.tool_calls[0].function.name == "f"
    assert ChatStream(iter([StreamChunk(finish_reason="stop")])).final_response().message.content == ""


def test_final_response_reads_the_rest_of_the_stream() -> None:
    stream = ChatStream(iter([StreamChunk(text="a"), StreamChunk(text="b"), StreamChunk(finish_reason="stop")]))
    assert next(stream).text == "a"
    response = stream.final_response()
    assert response.text == "ab"
    assert response.finish_reason == "stop"


def test_leaving_the_with_block_early_releases_the_connection_and_fires_callbacks_once() -> None:
    transport = Transport()
    ended: list[str | None] = []
    produced: list[int] = []

    def endless() -> Iterator[StreamChunk]:
        i = 0
        while True:
            produced.append(i)
            yield StreamChunk(text=str(i))
            i += 1

    with ChatStream(endless(), close=transport.close) as stream:
        stream.add_done_callback(lambda s: ended.append(s.outcome))
        for chunk in stream:
            if chunk.text == "2":
                break

    assert transport.closed == 1
    assert ended == [StreamOutcome.CANCELLED]
    assert stream.text == "012"
    # Closing again, or iterating after close, does nothing more.
    stream.close()
    assert list(stream) == []
    assert transport.closed == 1
    assert ended == [StreamOutcome.CANCELLED]
    assert len(produced) == 3


def test_the_generator_behind_a_closed_stream_is_closed_too() -> None:
    finalized: list[bool] = []

    def chunks() -> Iterator[StreamChunk]:
        try:
            yield StreamChunk(text="a")
            yield StreamChunk(text="b")
        finally:
            finalized.append(True)

    stream = ChatStream(chunks())
    next(stream)
    stream.close()
    assert finalized == [True]


def test_a_stream_dropped_half_read_releases_its_connection() -> None:
    transport = Transport()
    stream = ChatStream(iter([StreamChunk(text="a"), StreamChunk(text="b")]), close=transport.close)
    next(stream)
    del stream
    gc.collect()
    assert transport.closed == 1


def test_a_callback_added_after_the_end_runs_at_once() -> None:
    stream = ChatStream(iter([StreamChunk(text="x")]))
    list(stream)
    seen: list[str | None] = []
    stream.add_done_callback(lambda s: seen.append(s.outcome))
    assert seen == [StreamOutcome.COMPLETED]


def test_an_llmrelay_error_mid_stream_ends_it_as_failed() -> None:
    transport = Transport()
    error = StreamInterruptedError("upstream stopped", provider="p", upstream_code=502)

    def chunks() -> Iterator[StreamChunk]:
        yield StreamChunk(text="partial")
        raise error

    stream = ChatStream(chunks(), close=transport.close)
    outcomes: list[str | None] = []
    stream.add_done_callback(lambda s: outcomes.append(s.outcome))
    with pytest.raises(StreamInterruptedError) as info:
        list(stream)
    assert info.value is error
    assert stream.error is error
    assert outcomes == [StreamOutcome.FAILED]
    assert stream.text == "partial"
    assert transport.closed == 1
    with pytest.raises(StreamInterruptedError):
        stream.final_response()


def test_a_foreign_error_mid_stream_becomes_stream_interrupted() -> None:
    def chunks() -> Iterator[StreamChunk]:
        yield StreamChunk(text="x")
        raise ValueError("bad json")

    stream = ChatStream(chunks(), provider="p")
    with pytest.raises(StreamInterruptedError, match="stream failed: ValueError: bad json") as info:
        list(stream)
    assert info.value.provider == "p"
    assert info.value.availability
    assert isinstance(info.value.__cause__, ValueError)


def test_an_error_before_the_first_chunk_keeps_its_type() -> None:
    def chunks() -> Iterator[StreamChunk]:
        raise ServerError("overloaded", status=503)
        yield StreamChunk()  # pragma: no cover

    stream = ChatStream(chunks())
    with pytest.raises(ServerError):
        next(stream)
    assert stream.outcome == StreamOutcome.FAILED


def test_timing_uses_the_injected_clock() -> None:
    clock = FakeClock(100.0)

    def chunks() -> Iterator[StreamChunk]:
        clock.now += 0.25
        yield StreamChunk(text="a")
        clock.now += 1.0
        yield StreamChunk(text="b")

    stream = ChatStream(chunks(), clock=clock)
    list(stream)
    assert stream.time_to_first_chunk == pytest.approx(0.25)
    assert stream.ended_at == pytest.approx(101.25)


def test_recorded_chunks_only_from_when_asked() -> None:
    stream = ChatStream(iter([StreamChunk(text="a"), StreamChunk(text="b"), StreamChunk(text="c")]))
    next(stream)
    stream.record_chunks()
    list(stream)
    assert [c.text for c in stream.recorded_chunks] == ["b", "c"]


def test_recorded_chunks_keep_every_field_but_the_raw_event() -> None:
    usage = Usage(prompt_tokens=1, completion_tokens=2, total_tokens=3)
    sent = [
        StreamChunk(text="a", reasoning="r", id="g", model="m", served_by="s", raw={"event": 1}),
        StreamChunk(finish_reason="stop", native_finish_reason="end_turn", usage=usage, raw={"event": 2}),
    ]
    stream = ChatStream(iter(sent))
    stream.record_chunks()
    delivered = list(stream)
    assert [c.raw for c in delivered] == [{"event": 1}, {"event": 2}]  # the caller still gets the service's event
    assert stream.recorded_chunks == [c.replace(raw=None) for c in sent]


def test_repr_shows_state_not_content() -> None:
    stream = ChatStream(iter([StreamChunk(text="secret text")]), provider="p", model="m")
    assert repr(stream) == "<ChatStream provider='p' model='m' open chunks=0>"
    list(stream)
    assert "secret text" not in repr(stream)


def test_chunks_compare_by_value_and_keep_raw_out_of_their_repr() -> None:
    chunk = StreamChunk(text="hi", tool_calls=[ToolCallDelta(0, "c1", "f", "{}")], raw={"secret-ish": "payload"})
    assert chunk == StreamChunk(
        text="hi", tool_calls=[ToolCallDelta(0, "c1", "f", "{}")], raw={"secret-ish": "payload"}
    )
    assert chunk != chunk.replace(raw=None) and chunk.replace(raw=None).text == "hi"
    assert "payload" not in repr(chunk) and "text='hi'" in repr(chunk)
    assert repr(ToolCallDelta(1)) == "ToolCallDelta(index=1, id=None, name=None, arguments='')"
    with pytest.raises(AttributeError):
        chunk.extra = 1  # type: ignore[attr-defined]  # slotted: a typo is an error, not a new field


def test_a_recorded_chunk_keeps_every_field_but_raw() -> None:
    # without_raw() spells the fields out (it runs per recorded chunk): a field
    # added to StreamChunk later must be kept by it too.
    from dataclasses import fields, replace

    values: dict[str, object] = {
        "text": "t",
        "reasoning": "r",
        "tool_calls": [ToolCallDelta(0, "call-1", "f", "{}")],
        "finish_reason": "stop",
        "usage": Usage(prompt_tokens=1, completion_tokens=2, total_tokens=3),
        "raw": {"id": "gen-1"},
    }
    chunk = StreamChunk(**{f.name: values.get(f.name, f"{f.name}-value") for f in fields(StreamChunk)})
    assert chunk.without_raw() == replace(chunk, raw=None)
    assert chunk.without_raw().raw is None and chunk.raw == {"id": "gen-1"}
