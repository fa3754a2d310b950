"""rechunk_words / arechunk_words: a stream's text re-cut on word boundaries, nothing lost or reordered."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from llmrelay.core import ChatStream, StreamChunk, ToolCallDelta, Usage, arechunk_words, rechunk_words
from llmrelay.core.errors import StreamInterruptedError
from llmrelay.core.rechunk import WordRechunker

from tests.support.clock import FakeClock


def texts(chunks: Iterable[StreamChunk]) -> list[str]:
    return [chunk.text for chunk in chunks]


def text_chunks(*pieces: str) -> list[StreamChunk]:
    return [StreamChunk(text=piece, id="gen-1", model="m", raw={"text": piece}) for piece in pieces]


async def agen(chunks: Iterable[StreamChunk]) -> AsyncIterator[StreamChunk]:
    for chunk in chunks:
        yield chunk


async def acollect(stream: AsyncIterator[StreamChunk]) -> list[StreamChunk]:
    return [chunk async for chunk in stream]


def has_more_than_text(chunk: StreamChunk) -> bool:
    return bool(chunk.reasoning or chunk.tool_calls or chunk.finish_reason is not None or chunk.usage is not None)


# --------------------------------------------------------------------------- examples


def test_tokens_come_out_as_whole_words() -> None:
    pieces = text_chunks("Hel", "lo", " wor", "ld", "!", " How", " are", " you", "?")
    assert texts(rechunk_words(pieces)) == ["Hello ", "world! ", "How ", "are ", "you?"]


def test_whitespace_of_every_kind_is_a_boundary() -> None:
    pieces = text_chunks("one\ntw", "o\tthr", "ee\u3000four")
    assert texts(rechunk_words(pieces)) == ["one\n", "two\t", "three\u3000", "four"]


def test_a_chunk_ending_on_a_boundary_with_nothing_held_passes_as_it_came() -> None:
    pieces = text_chunks("Hello ", "world")
    out = list(rechunk_words(pieces))
    assert out[0] is pieces[0]
    assert texts(out) == ["Hello ", "world"]


def test_a_new_chunk_keeps_the_latest_chunks_fields_without_its_raw() -> None:
    first = StreamChunk(text="Hel", id="gen-1", model="a", raw={"n": 1})
    second = StreamChunk(text="lo there", id="gen-1", model="b", served_by="xAI", raw={"n": 2})
    out = list(rechunk_words([first, second]))
    assert texts(out) == ["Hello ", "there"]
    assert out[0].model == "b" and out[0].served_by == "xAI" and out[0].id == "gen-1" and out[0].raw is None
    assert second.text == "lo there" and second.raw == {"n": 2}  # the input chunks are not changed


def test_other_chunks_let_the_held_text_out_and_pass_unchanged() -> None:
    tool = StreamChunk(tool_calls=[ToolCallDelta(0, id="call_1", name="lookup", arguments="{}")])
    finish = StreamChunk(finish_reason="tool_calls", usage=Usage(prompt_tokens=3, completion_tokens=2))
    chunks = [*text_chunks("Let me ", "che", "ck"), tool, finish]
    out = list(rechunk_words(chunks))
    assert texts(out) == ["Let me ", "check", "", ""]
    assert out[2] is tool and out[3] is finish


def test_a_chunk_with_text_and_a_finish_reason_follows_the_held_text_unchanged() -> None:
    last = StreamChunk(text=" end.", finish_reason="stop")
    out = list(rechunk_words([*text_chunks("the"), last]))
    assert texts(out) == ["the", " end."] and out[1] is last


def test_a_chunk_carrying_nothing_passes_at_once_without_cutting_a_word() -> None:
    empty = StreamChunk(id="gen-1")
    out = list(rechunk_words([*text_chunks("hel"), empty, *text_chunks("lo world")]))
    assert out[0] is empty
    assert texts(out[1:]) == ["hello ", "world"]


def test_text_without_spaces_goes_out_every_max_chars_characters() -> None:
    pieces = text_chunks(*["你好"] * 20)
    out = texts(rechunk_words(pieces, max_chars=8))
    assert out == ["你好你好你好你好"] * 5
    assert texts(rechunk_words(pieces, max_chars=None)) == ["你好" * 20]


def test_held_text_goes_out_with_the_first_chunk_after_max_delay() -> None:
    clock = FakeClock()

    def arriving() -> Iterator[StreamChunk]:
        for piece, wait in (("super", 0.0), ("cali", 0.1), ("fragi", 0.3), ("listic", 0.0), (" yes", 0.0)):
            clock.advance(wait)
            yield StreamChunk(text=piece)

    out = texts(rechunk_words(arriving(), max_delay=0.25, clock=clock))
    # held since t=0; the chunk at t=0.4 is past the delay, so it goes out with what was held
    assert out == ["supercalifragi", "listic ", "yes"]


def test_the_stream_still_adds_everything_up_for_final_response() -> None:
    chunks = [*text_chunks("Hel", "lo wor", "ld"), StreamChunk(finish_reason="stop")]
    with ChatStream(iter(chunks), provider="p") as stream:
        shown = texts(rechunk_words(stream))
        reply = stream.final_response()
    assert shown == ["Hello ", "world", ""]
    assert reply.text == "Hello world" and reply.finish_reason == "stop"


def test_text_that_arrived_before_a_failure_is_shown_before_the_error() -> None:
    def failing() -> Iterator[StreamChunk]:
        yield from text_chunks("Hello wor")
        raise StreamInterruptedError("connection lost")

    out = rechunk_words(failing())
    assert next(out).text == "Hello "
    assert next(out).text == "wor"
    with pytest.raises(StreamInterruptedError, match="connection lost"):
        next(out)


def test_closing_early_stops_cleanly() -> None:
    out = rechunk_words(text_chunks("a b ", "c d"))
    assert next(out).text == "a b "
    out.close()  # a generator that yielded again here would raise RuntimeError
    with pytest.raises(StopIteration):
        next(out)


def test_bad_limits_are_refused_with_what_to_give() -> None:
    with pytest.raises(ValueError, match="max_chars must be at least 1"):
        WordRechunker(max_chars=0)
    with pytest.raises(ValueError, match="max_delay must be a number of seconds"):
        WordRechunker(max_delay=-1)


def test_the_async_variant_cuts_the_same_way_and_flushes_before_an_error() -> None:
    pieces = text_chunks("Hel", "lo", " wor", "ld")
    assert texts(asyncio.run(acollect(arechunk_words(agen(pieces))))) == ["Hello ", "world"]

    async def failing() -> AsyncIterator[StreamChunk]:
        yield StreamChunk(text="partial wo")
        raise StreamInterruptedError("gone")

    async def read() -> tuple[list[str], BaseException | None]:
        seen: list[str] = []
        try:
            async for chunk in arechunk_words(failing()):
                seen.append(chunk.text)
        except StreamInterruptedError as exc:
            return seen, exc
        return seen, None

    seen, error = asyncio.run(read())
    assert seen == ["partial ", "wo"] and error is not None


# --------------------------------------------------------------------------- properties

# Text with every kind of boundary: spaces, newlines, tabs, an ideographic space, and letters with none.
WORDS = st.text(alphabet=st.sampled_from(["a", "b", "é", "你", " ", "\n", "\t", "\u3000", "."]), max_size=12)
CHUNK = st.one_of(
    WORDS.map(lambda text: StreamChunk(text=text)),
    WORDS.map(lambda text: StreamChunk(text=text, finish_reason="stop")),
    st.builds(lambda: StreamChunk(tool_calls=[ToolCallDelta(0, arguments='{"a": 1}')])),
    st.builds(lambda: StreamChunk(reasoning="thinking")),
    st.builds(lambda: StreamChunk(usage=Usage(prompt_tokens=1))),
    st.builds(lambda: StreamChunk()),
)
STREAMS = st.lists(CHUNK, max_size=40)


def kept_as_they_came(chunks: list[StreamChunk]) -> list[StreamChunk]:
    """The input chunks that must come out unchanged: everything but plain text."""
    return [chunk for chunk in chunks if has_more_than_text(chunk) or not chunk.text]


def text_before(chunks: list[StreamChunk]) -> dict[int, str]:
    """Each chunk's id -> the text of the chunks before it."""
    seen: list[str] = []
    before = {}
    for chunk in chunks:
        before[id(chunk)] = "".join(seen)
        seen.append(chunk.text)
    return before


@settings(max_examples=300, deadline=None)
@given(
    chunks=STREAMS,
    max_chars=st.one_of(st.none(), st.integers(1, 20)),
    max_delay=st.one_of(st.none(), st.floats(0, 1)),
    waits=st.lists(st.floats(0, 0.5), max_size=40),
)
def test_the_text_is_exact_and_every_other_chunk_comes_out_unchanged_in_order(
    chunks: list[StreamChunk], max_chars: int | None, max_delay: float | None, waits: list[float]
) -> None:
    clock = FakeClock()

    def arriving() -> Iterator[StreamChunk]:
        for index, chunk in enumerate(chunks):
            clock.advance(waits[index] if index < len(waits) else 0.0)
            yield chunk

    out = list(rechunk_words(arriving(), max_chars=max_chars, max_delay=max_delay, clock=clock))
    assert "".join(texts(out)) == "".join(texts(chunks))
    kept = kept_as_they_came(chunks)
    kept_ids = {id(chunk) for chunk in kept}
    assert [chunk for chunk in out if id(chunk) in kept_ids] == kept
    assert all(chunk.text for chunk in out if id(chunk) not in kept_ids)  # no empty chunk is made up
    # Order: all the text before a chunk of other content goes out before it; an
    # empty chunk may overtake held text (a prefix of what came before it).
    before_in = text_before(chunks)
    before_out = text_before(out)
    for chunk in kept:
        if has_more_than_text(chunk):
            assert before_out[id(chunk)] == before_in[id(chunk)]
        else:
            assert before_in[id(chunk)].startswith(before_out[id(chunk)])


@settings(max_examples=300, deadline=None)
@given(chunks=STREAMS)
def test_without_limits_text_is_cut_only_at_whitespace_or_where_another_chunk_came(chunks: list[StreamChunk]) -> None:
    full = "".join(texts(chunks))
    allowed = {0, len(full)}
    offset = 0
    for chunk in chunks:
        if has_more_than_text(chunk):
            allowed |= {offset, offset + len(chunk.text)}
        offset += len(chunk.text)
    cut = 0
    for chunk in rechunk_words(chunks, max_chars=None):
        cut += len(chunk.text)
        assert cut in allowed or full[cut - 1].isspace(), (full, cut)


@settings(max_examples=100, deadline=None)
@given(chunks=STREAMS, max_chars=st.one_of(st.none(), st.integers(1, 20)))
def test_the_async_variant_gives_what_the_sync_one_gives(chunks: list[StreamChunk], max_chars: int | None) -> None:
    sync = list(rechunk_words(chunks, max_chars=max_chars))
    sent = asyncio.run(acollect(arechunk_words(agen(chunks), max_chars=max_chars)))
    assert texts(sent) == texts(sync)
    given_ids = {id(chunk) for chunk in chunks}
    assert [id(c) for c in sent if id(c) in given_ids] == [id(c) for c in sync if id(c) in given_ids]
