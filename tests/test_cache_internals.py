"""The cache's building blocks on their own: L1, single-flight, headers and etags, lazy entries."""

from __future__ import annotations

import json
import math
import os
import threading
from typing import Any

import pytest
from llmrelay.plugins.cache.codec import Entry, Header, encode_entry, new_etag, new_header, split
from llmrelay.plugins.cache.keys import KeyBuilder
from llmrelay.plugins.cache.l1 import L1Cache, L1Item
from llmrelay.plugins.cache.singleflight import SingleFlight

from tests.support.clock import FakeClock
from tests.support.threads import run_in_threads

NOW = 1_700_000_000.0


def _item(clock: FakeClock, keep_for: float) -> L1Item:
    header = Header("Credits", clock(), clock() + keep_for, clock() + keep_for, clock() + keep_for, new_etag())
    return L1Item(Entry(object(), header), clock() + keep_for)


# --------------------------------------------------------------------------- L1


def test_l1_drops_an_item_when_its_last_window_ends() -> None:
    clock = FakeClock(NOW)
    l1 = L1Cache(10, clock=clock)
    item = _item(clock, 30)
    l1.put("a", item)
    clock.advance(29)
    assert l1.get("a") is item
    clock.advance(1)
    assert l1.get("a") is None and len(l1) == 0


def test_l1_evicts_expired_items_before_live_ones_then_the_least_recently_used() -> None:
    clock = FakeClock(NOW)
    l1 = L1Cache(3, clock=clock)
    l1.put("long", _item(clock, 1000))
    l1.put("short", _item(clock, 5))
    l1.put("other", _item(clock, 1000))
    l1.get("long")  # "short" is now the least recently used but one
    clock.advance(10)  # "short" expired
    l1.put("new", _item(clock, 1000))
    assert [key for key in ("long", "short", "other", "new") if l1.get(key) is not None] == ["long", "other", "new"]
    l1.put("newer", _item(clock, 1000))  # nothing expired: the least recently used goes
    assert l1.get("long") is None and l1.get("newer") is not None


def test_l1_replacing_with_an_expired_item_forgets_the_key() -> None:
    clock = FakeClock(NOW)
    l1 = L1Cache(3, clock=clock)
    l1.put("a", _item(clock, 100))
    l1.put("a", _item(clock, 0))
    assert l1.get("a") is None


def test_l1_stays_bounded_under_many_replacements_and_deletions() -> None:
    clock = FakeClock(NOW)
    l1 = L1Cache(8, clock=clock)
    for n in range(5000):
        l1.put(f"k{n % 20}", _item(clock, 1000))
        if n % 7 == 0:
            l1.delete(f"k{(n + 3) % 20}")
    assert len(l1) <= 8
    assert len(l1._expiry) <= 2 * 8 + 17  # superseded heap rows are dropped, not kept forever
    live = len(l1)
    assert l1.delete_prefix("k") == live and len(l1) == 0


def test_l1_is_safe_to_share_between_threads() -> None:
    clock = FakeClock(NOW)
    l1 = L1Cache(50, clock=clock)
    errors: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            for n in range(2000):
                key = f"k{(n + offset) % 80}"
                l1.put(key, _item(clock, 1000))
                l1.get(key)
                if n % 50 == 0:
                    l1.delete_prefix("k1")
        except BaseException as exc:  # reported below
            errors.append(exc)

    run_in_threads(work, args=[(n * 7,) for n in range(8)])
    assert not errors and len(l1) <= 50


# --------------------------------------------------------------------------- single-flight


def test_single_flight_runs_once_for_concurrent_callers_and_passes_arguments() -> None:
    flights: SingleFlight[int] = SingleFlight()
    arrived, release = threading.Barrier(6), threading.Event()
    calls: list[int] = []

    def load(value: int) -> int:
        calls.append(value)
        release.wait(5)
        return value * 2

    results: list[tuple[int, bool]] = []

    def caller() -> None:
        arrived.wait(5)
        results.append(flights.do("key", load, 21))

    threads = [threading.Thread(target=caller) for _ in range(5)]
    for thread in threads:
        thread.start()
    arrived.wait(5)
    while len(flights._flights) == 0:  # the leader registered its flight
        pass
    release.set()
    for thread in threads:
        thread.join()
    # A caller arriving after the first load ended leads a load of its own.
    assert calls and set(calls) == {21} and len(results) == 5
    assert all(result == 42 for result, _ in results)
    assert sum(1 for _, leader in results if leader) == len(calls)
    assert flights._flights == {}


def test_single_flight_gives_followers_a_copy_of_the_error_and_forgets_the_key() -> None:
    flights: SingleFlight[int] = SingleFlight()
    with pytest.raises(ValueError, match="boom"):
        flights.do("key", _raise, "boom")
    assert flights._flights == {}
    assert flights.do("key", int, "7") == (7, True)


def _raise(message: str) -> Any:
    raise ValueError(message)


# --------------------------------------------------------------------------- headers, etags, entries


@pytest.mark.parametrize("now", [NOW, NOW + 0.25, 1_795_789_388.039161234, 0.0, 12.3456789])
def test_header_times_read_back_exactly_and_never_after_the_clock(now: float) -> None:
    header = new_header("ChatResponse", now, 3600, 600, 86400)
    assert header.stored_at <= now < header.stored_at + 1e-6 + 1e-15 * now
    assert header.fresh_until == header.stored_at + 3600 or math.isclose(header.fresh_until, header.stored_at + 3600)
    data, payload = encode_entry(_credits(), header)
    parsed, body = split(data)
    assert parsed == header and bytes(body) == bytes(payload)
    assert json.loads(data.split(b"\n", 1)[0])["stored_at"] == header.stored_at


def test_header_with_an_infinite_ttl_still_encodes() -> None:
    header = new_header("Credits", NOW, math.inf, 0, 0)
    assert header.fresh_until == math.inf
    assert split(encode_entry(_credits(), header)[0])[0] == header


def test_etags_are_unique_and_differ_in_a_forked_child() -> None:
    tags = {new_etag() for _ in range(10_000)}
    assert len(tags) == 10_000
    if not hasattr(os, "fork"):
        return
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next tag, then leave without running pytest's teardown
        os.write(write, new_etag().encode())
        os._exit(0)
    os.close(write)
    child_tag = os.read(read, 100).decode()
    os.waitpid(pid, 0)
    os.close(read)
    assert child_tag and child_tag not in tags and child_tag[:16] != new_etag()[:16]


def _read_at_once(entry: Entry, threads: int) -> tuple[list[Any], list[BaseException]]:
    """``entry.value`` read by ``threads`` threads released together: the values and the errors."""
    barrier = threading.Barrier(threads)
    values: list[Any] = []
    errors: list[BaseException] = []

    def read() -> None:
        barrier.wait(5)
        try:
            values.append(entry.value)
        except BaseException as exc:  # reported by the caller
            errors.append(exc)

    run_in_threads(read, threads)
    return values, errors


def test_a_lazy_entry_decodes_once_even_when_threads_race_for_it() -> None:
    credits = _credits()
    header = new_header("Credits", NOW, 60, 0, 0)
    for _ in range(50):
        values, errors = _read_at_once(Entry.lazy(header, encode_entry(credits, header)[1]), 4)
        assert not errors and all(value == values[0] for value in values)


def test_keys_do_not_depend_on_how_the_request_was_given() -> None:
    keys = KeyBuilder(namespace="t", provider="fake", base_url="http://x", api_key="sk-1")
    request = {"model": "m", "messages": [{"role": "user", "content": "héllo"}], "temperature": 0.5}
    from llmrelay.core.models import ChatRequest

    assert keys.key("execute", request) == keys.key("execute", ChatRequest.model_validate(request))
    assert keys.key("execute", request) != keys.key("execute", {**request, "temperature": 0.6})


def _credits() -> Any:
    from llmrelay.core.account import Credits

    return Credits.model_validate({"total_credits": 10, "total_usage": 1})


# --------------------------------------------------------------------------- stored streams


def _stream() -> list[Any]:
    from decimal import Decimal

    from llmrelay.core.models import Usage
    from llmrelay.core.stream import StreamChunk, ToolCallDelta

    common = {"id": "gen-1", "model": "openai/gpt-4o-mini", "served_by": "OpenAI"}
    return [
        StreamChunk(text="", reasoning="thinking", raw={"x": 1}, **common),
        *(StreamChunk(text=f"word{i} ", **common) for i in range(5)),
        StreamChunk(tool_calls=[ToolCallDelta(0, "call_1", "lookup", '{"q":')], **common),
        StreamChunk(tool_calls=[ToolCallDelta(0, None, None, '"x"}')], **common),
        StreamChunk(text="other", id="gen-2", model="openai/gpt-4o-mini", served_by="Azure"),
        StreamChunk(
            finish_reason="stop",
            native_finish_reason="end_turn",
            usage=Usage(prompt_tokens=3, completion_tokens=7, total_tokens=10, cost=Decimal("0.0001")),
            **common,
        ),
    ]


@pytest.mark.parametrize("chunks", [[], "plain", "mixed"])
def test_a_stored_stream_reads_back_chunk_for_chunk(chunks: Any) -> None:

    from llmrelay.core.stream import StreamChunk
    from llmrelay.plugins.cache.codec import decode_value

    if chunks == "plain":
        chunks = [StreamChunk(text=f"t{i}", id="g", model="m") for i in range(50)]
    elif chunks == "mixed":
        chunks = _stream()
    header = new_header("stream", NOW, 60, 0, 0)
    data, payload = encode_entry(chunks, header)
    read_header, body = split(data)
    assert read_header == header and bytes(body) == bytes(payload)
    decoded = decode_value(read_header, body)
    assert list(decoded) == [c.replace(raw=None) for c in chunks]


@pytest.mark.parametrize(
    "body",
    [
        b'{"common":[null,null,null],"text":["a"],"whole":[[5,[]]]}',
        b'{"common":[1],"text":[],"whole":[]}',
        b'{"common":[null,null,null],"text":["a"],"reasoning":[],"whole":[]}',
        b"[]",
    ],
)
def test_a_damaged_stored_stream_is_a_decode_error(body: bytes) -> None:
    from llmrelay.plugins.cache.codec import DecodeError, decode_value

    with pytest.raises(DecodeError):
        decode_value(new_header("stream", NOW, 60, 0, 0), body)
