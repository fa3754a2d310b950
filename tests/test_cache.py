"""The cache layer with L1 and the in-memory L2, driven by a fake clock (no sleeping)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
from decimal import Decimal
from typing import Any

import pytest
from llmrelay.core import (
    AuthenticationError,
    BadRequestError,
    CallOptions,
    ChatRequest,
    ChatStream,
    CircuitOpenError,
    ConfigurationError,
    LayeredProvider,
    ModelList,
    PaymentRequiredError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    StreamChunk,
    StreamInterruptedError,
    Usage,
    create_provider,
)
from llmrelay.core.errors import APIConnectionError, APITimeoutError, NotFoundError
from llmrelay.core.pipeline import Call, Handler, Layer, Operation
from llmrelay.core.stream import ToolCallDelta
from llmrelay.plugins.cache import CacheSettings
from llmrelay.plugins.cache.backends import BackendUnavailable, L2Backend, MemoryBackend
from llmrelay.plugins.cache.codec import FORMAT_VERSION
from llmrelay.plugins.cache.keys import KeyBuilder
from llmrelay.plugins.cache.layer import CacheLayer

from tests.support.clock import FakeClock
from tests.support.fake_provider import FakeProvider, FakeSettings
from tests.support.threads import run_in_threads

CHAT = {"model": "fake/small", "messages": [{"role": "user", "content": "hi"}]}


class NotesSpy(Layer):
    """Sits outside the cache like the metrics layer and records what the cache reported (``call.cache``)."""

    name = "spy"

    def __init__(self) -> None:
        self.notes: list[Any] = []

    def handle(self, call: Call, proceed: Handler) -> Any:
        result = proceed(call)
        self.notes.append(call.cache)
        return result


def build(
    settings: dict[str, Any] | None = None,
    *,
    clock: FakeClock | None = None,
    backend: L2Backend | str | None = "memory",
    api_key: str | None = "sk-test-key-0123456789abcdef",
    base_url: str = "http://fake.local/v1",
    upstream: FakeProvider | None = None,
) -> tuple[LayeredProvider, CacheLayer, FakeProvider, FakeClock, NotesSpy]:
    clock = clock or FakeClock(1_700_000_000.0)
    data = {"background": False, "warm_up": [], **(settings or {})}
    cache_settings = CacheSettings.model_validate(data)
    if backend == "memory":
        backend = MemoryBackend(clock=clock)
    fake = upstream or FakeProvider(FakeSettings(api_key=api_key, base_url=base_url))
    keys = KeyBuilder(namespace="t", provider="fake", base_url=base_url, api_key=api_key)
    layer = CacheLayer(cache_settings, keys=keys, provider_name="fake", backend=backend, clock=clock)  # type: ignore[arg-type]
    spy = NotesSpy()
    provider = LayeredProvider(fake, [spy, layer])
    return provider, layer, fake, clock, spy


# --------------------------------------------------------------------------- L1, defaults and control


def test_model_list_is_served_from_l1_within_its_ttl_then_asks_again() -> None:
    provider, layer, fake, clock, spy = build(backend=None)
    first = provider.list_models()
    second = provider.list_models()
    assert fake.count("list_models") == 1
    assert first.meta.cache == "miss" and second.meta.cache == "hit"
    assert second.ids == first.ids == ["fake/small", "fake/auto"]
    assert spy.notes == ["miss", "hit"]
    clock.advance(61)  # without L2 an entry is fresh for the L1 TTL (60 s), then revalidated for 600 s
    stale = provider.list_models()
    assert stale.meta.cache == "stale" and stale.meta.stale
    assert fake.count("list_models") == 1  # served at once, refresh queued
    assert layer.run_pending() == 1
    assert fake.count("list_models") == 2
    assert provider.list_models().meta.cache == "hit"


def test_ttls_are_configurable_per_operation() -> None:
    provider, _, fake, clock, _ = build(
        {"operations": {"get_credits": {"l1_ttl": 5, "l2_ttl": 5, "stale_while_revalidate": 0, "stale_if_error": 0}}}
    )
    provider.get_credits()
    clock.advance(4)
    provider.get_credits()
    assert fake.count("get_credits") == 1
    clock.advance(2)
    provider.get_credits()
    assert fake.count("get_credits") == 2


def test_l1_is_bounded_by_entry_count() -> None:
    provider, layer, fake, _, _ = build({"max_entries": 2}, backend=None)
    for generation in ("a", "b", "c"):
        provider.get_generation_stats(generation)
    assert layer.stats().l1_entries == 2
    provider.get_generation_stats("a")  # the least recently used went first
    assert fake.count("get_generation_stats") == 4
    provider.get_generation_stats("c")
    assert fake.count("get_generation_stats") == 4


def test_chat_is_cached_only_on_opt_in_per_call_or_per_config() -> None:
    provider, _, fake, _, spy = build()
    provider.execute(CHAT)
    provider.execute(CHAT)
    assert fake.count("execute") == 2
    assert spy.notes == ["bypass", "bypass"]
    provider.execute(CHAT, options=CallOptions(cache=True))
    again = provider.execute(CHAT, options=CallOptions(cache=True))
    assert fake.count("execute") == 3 and again.meta.cache == "hit"
    assert again.text == "hello: hi"

    configured, _, fake2, _, _ = build({"operations": {"execute": {"enabled": True}}})
    configured.execute(CHAT)
    configured.execute(CHAT)
    assert fake2.count("execute") == 1


def test_per_call_bypass_neither_reads_nor_writes() -> None:
    provider, _, fake, _, spy = build()
    bypassed = provider.list_models(options=CallOptions(cache=False))
    assert bypassed.meta.cache == "bypass"
    provider.list_models()  # nothing was written by the bypassed call
    assert fake.count("list_models") == 2
    provider.list_models(options=CallOptions(cache=False))  # and a cached entry is not read
    assert fake.count("list_models") == 3
    assert spy.notes == ["bypass", "miss", "bypass"]


def test_validate_config_is_never_cached() -> None:
    provider, _, fake, _, spy = build()
    provider.validate_config()
    provider.validate_config()
    assert fake.count("validate_config") == 2
    assert spy.notes == ["bypass", "bypass"]


def test_per_call_ttl_overrides_the_configured_one() -> None:
    provider, _, fake, clock, _ = build({"operations": {"execute": {"stale_if_error": 0}}})
    options = CallOptions(cache=True, cache_ttl=2)
    provider.execute(CHAT, options=options)
    clock.advance(1)
    assert provider.execute(CHAT, options=options).meta.cache == "hit"
    clock.advance(2)
    assert provider.execute(CHAT, options=options).meta.cache == "miss"
    assert fake.count("execute") == 2


def test_hits_are_copies_a_caller_can_change_without_changing_the_cache() -> None:
    provider, _, _, _, _ = build()
    first = provider.list_models()
    first.models.clear()
    first.meta.cache = "tampered"
    hit = provider.list_models()
    assert hit.ids == ["fake/small", "fake/auto"]
    assert hit.meta.cache == "hit"
    hit.meta.attempts = 99
    assert provider.list_models().meta.attempts == 1


def test_fallback_model_list_is_not_cached() -> None:
    provider, _, fake, _, _ = build()
    fake.script = lambda op, req: ModelList(provider="fake", fallback=True) if op == "list_models" else None
    provider.list_models()
    provider.list_models()
    assert fake.count("list_models") == 2


def test_invalidate_by_key_by_operation_and_all() -> None:
    provider, layer, fake, _, _ = build()
    provider.list_models()
    provider.get_credits()
    provider.get_generation_stats("g1")
    provider.get_generation_stats("g2")

    layer.invalidate(layer.cache_key("get_generation_stats", "g1"))
    provider.get_generation_stats("g1")
    provider.get_generation_stats("g2")
    assert fake.count("get_generation_stats") == 3

    assert layer.invalidate(operation="get_generation_stats") >= 2
    provider.get_generation_stats("g2")
    provider.list_models()
    assert fake.count("get_generation_stats") == 4 and fake.count("list_models") == 1

    layer.invalidate_all()
    provider.list_models()
    provider.get_credits()
    assert fake.count("list_models") == 2 and fake.count("get_credits") == 2


def test_invalidate_rejects_bad_input_with_a_clear_error() -> None:
    _, layer, _, _, _ = build()
    with pytest.raises(ConfigurationError, match=r"not a cached operation.*list_models"):
        layer.invalidate(operation="list_modles")
    with pytest.raises(ConfigurationError, match="exactly one"):
        layer.invalidate()
    with pytest.raises(ConfigurationError, match="does not belong"):
        layer.invalidate("other:scope:list_models:abc")


def test_stats_count_per_tier() -> None:
    provider, layer, _, clock, _ = build()
    provider.list_models()  # miss: upstream
    provider.list_models()  # L1 hit
    clock.advance(61)
    provider.list_models()  # L1 expired, L2 fresh: L2 hit, refills L1
    provider.list_models()  # L1 hit again
    stats = layer.stats()
    assert (stats.l1.hits, stats.l2.hits, stats.upstream_calls) == (2, 1, 1)
    assert stats.l1.misses == 1 and stats.l2.misses == 1
    assert stats.l2_available


# --------------------------------------------------------------------------- keys


def test_keys_are_short_stable_and_never_hold_the_api_key() -> None:
    import hashlib

    key = "sk-or-v1-" + "a1b2c3d4" * 8
    one = KeyBuilder(namespace="ns", provider="openrouter", base_url="https://openrouter.ai/api/v1", api_key=key)
    two = KeyBuilder(namespace="ns", provider="openrouter", base_url="https://openrouter.ai/api/v1/", api_key=key)
    request = ChatRequest.coerce(CHAT)
    assert one.key("execute", request) == two.key("execute", CHAT)  # same call, same key, however it was given
    built = one.key("execute", request)
    assert len(built) < 100
    for leaked in (
        key,
        key[-12:],
        hashlib.sha256(key.encode()).hexdigest()[:16],
        hashlib.md5(key.encode()).hexdigest()[:16],
    ):
        assert leaked not in built
    other_account = KeyBuilder(
        namespace="ns", provider="openrouter", base_url="https://openrouter.ai/api/v1", api_key=key + "x"
    )
    other_service = KeyBuilder(namespace="ns", provider="openrouter", base_url="https://example.test/v1", api_key=key)
    assert len({built, other_account.key("execute", request), other_service.key("execute", request)}) == 3
    assert one.key("execute", {**CHAT, "temperature": 0.5}) != built


def test_different_keys_never_share_cached_results() -> None:
    backend = MemoryBackend()
    clock = FakeClock(1_700_000_000.0)
    alice, _, alice_fake, _, _ = build(backend=backend, clock=clock, api_key="sk-alice-000000000000000000")
    bob, _, bob_fake, _, _ = build(backend=backend, clock=clock, api_key="sk-bob-00000000000000000000")
    alice.get_credits()
    bob.get_credits()
    assert alice_fake.count("get_credits") == 1 and bob_fake.count("get_credits") == 1


# --------------------------------------------------------------------------- L2


def test_l2_hit_fills_l1_and_is_shared_by_providers_of_one_process() -> None:
    backend = MemoryBackend()
    clock = FakeClock(1_700_000_000.0)
    first, _, _, _, _ = build(backend=backend, clock=clock)
    second, second_layer, second_fake, _, _ = build(backend=backend, clock=clock)
    first.list_models()
    got = second.list_models()
    assert got.meta.cache == "hit" and second_fake.count("list_models") == 0
    second.list_models()
    stats = second_layer.stats()
    assert stats.l2.hits == 1 and stats.l1.hits == 1  # the L2 hit filled L1


def test_l2_stores_versioned_json_with_a_ttl() -> None:
    clock = FakeClock(1_700_000_000.0)
    backend = MemoryBackend(clock=clock)
    provider, layer, _, _, _ = build(backend=backend, clock=clock)
    provider.list_models()
    data = backend.get(layer.cache_key("list_models"))
    assert data is not None
    head, body = data.split(b"\n", 1)
    header = json.loads(head)
    assert header["v"] == FORMAT_VERSION and header["type"] == "ModelList"
    payload = json.loads(body)
    assert payload["models"][0]["pricing"]["prompt"] == "0.000001"
    assert "meta" not in payload
    clock.advance(3600 + 86400 + 1)  # past freshness and every stale window: the backend dropped it
    assert backend.get(layer.cache_key("list_models")) is None


def test_an_entry_of_another_format_version_is_a_miss() -> None:
    clock = FakeClock(1_700_000_000.0)
    backend = MemoryBackend(clock=clock)
    provider, layer, fake, _, _ = build(backend=backend, clock=clock)
    key = layer.cache_key("get_credits")
    backend.set(key, b'{"v":999,"type":"Credits"}\n{"total_credits":"1","total_usage":"0"}', 60)
    credits = provider.get_credits()
    assert credits.total_credits == Decimal("10") and fake.count("get_credits") == 1
    assert layer.stats().l2.errors == 1


class FlakyBackend(MemoryBackend):
    """A memory backend that can be switched off, like a Redis that went away."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock=clock)
        self.down = False
        self.attempts = 0

    def get(self, key: str) -> bytes | None:
        self.attempts += 1
        if self.down:
            raise BackendUnavailable("connection refused")
        return super().get(key)

    def set(self, key: str, data: bytes, ttl: float) -> None:
        self.attempts += 1
        if self.down:
            raise BackendUnavailable("connection refused")
        super().set(key, data, ttl)


def test_l2_down_calls_still_succeed_with_one_warning_then_l2_recovers(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock(1_700_000_000.0)
    backend = FlakyBackend(clock)
    provider, layer, fake, _, _ = build({"l2_retry_interval": 10}, backend=backend, clock=clock)
    backend.down = True
    caplog.set_level(logging.WARNING, logger="llmrelay.plugins.cache")
    for _ in range(20):
        assert len(provider.get_generation_stats("g-1").id) > 0
        provider.execute(CHAT)
    assert fake.count("get_generation_stats") == 1  # L1 still serves
    warnings = [r for r in caplog.records if "unavailable" in r.getMessage()]
    assert len(warnings) == 1
    stats = layer.stats()
    assert not stats.l2_available and stats.l2.errors >= 1
    attempts_while_down = backend.attempts
    provider.get_generation_stats("g-2")
    assert backend.attempts == attempts_while_down  # skipped for the retry interval, not retried per call

    backend.down = False
    clock.advance(11)
    provider.get_generation_stats("g-3")
    assert layer.stats().l2_available
    assert any("available again" in r.getMessage() for r in caplog.records)
    assert backend.get(layer.cache_key("get_generation_stats", "g-3")) is not None


# --------------------------------------------------------------------------- streams


def tool_stream(_op: str, _request: Any) -> ChatStream:
    chunks = [
        StreamChunk(reasoning="thinking ", id="gen-1", model="fake/small"),
        StreamChunk(text="Hel"),
        StreamChunk(text="lo"),
        StreamChunk(tool_calls=[ToolCallDelta(index=0, id="call_1", name="lookup", arguments='{"q":')]),
        StreamChunk(tool_calls=[ToolCallDelta(index=0, arguments='"x"}')]),
        StreamChunk(finish_reason="tool_calls"),
        StreamChunk(usage=Usage(prompt_tokens=7, completion_tokens=5, total_tokens=12, cost=Decimal("0.00042"))),
    ]
    return ChatStream(iter(chunks), provider="fake", model="fake/small")


def test_a_completed_stream_is_replayed_with_text_reasoning_tool_calls_and_usage() -> None:
    provider, _, fake, _, spy = build()
    fake.script = lambda op, req: tool_stream(op, req) if op == "stream_execute" else None
    options = CallOptions(cache=True)
    with provider.stream_execute(CHAT, options=options) as live:
        original = live.final_response()
    assert live.meta.cache == "miss"
    replay = provider.stream_execute(CHAT, options=options)
    chunks = list(replay)
    assert fake.count("stream_execute") == 1
    assert replay.meta.cache == "hit" and spy.notes == ["miss", "hit"]
    assert len(chunks) == 7
    assert replay.completed
    assert replay.text == original.text == "Hello"
    assert replay.reasoning == "thinking "
    assert [(t.id, t.function.name, t.function.arguments) for t in replay.tool_calls] == [
        ("call_1", "lookup", '{"q":"x"}')
    ]
    assert replay.usage == original.usage and replay.usage.cost == Decimal("0.00042")
    assert replay.finish_reason == "tool_calls"
    chunks[1].text = "changed"  # a caller's change to a replayed chunk stays its own
    assert provider.stream_execute(CHAT, options=options).final_response().text == "Hello"


def test_an_interrupted_or_cancelled_stream_is_not_stored() -> None:
    provider, _, fake, _, _ = build()

    def broken(op: str, _req: Any) -> Any:
        def chunks():
            yield StreamChunk(text="par")
            raise StreamInterruptedError("connection dropped")

        return ChatStream(chunks(), provider="fake") if op == "stream_execute" else None

    fake.script = broken
    options = CallOptions(cache=True)
    stream = provider.stream_execute(CHAT, options=options)
    with pytest.raises(StreamInterruptedError):
        list(stream)
    fake.script = None
    cancelled = provider.stream_execute(CHAT, options=options)
    next(cancelled)
    cancelled.close()
    complete = provider.stream_execute(CHAT, options=options)
    assert complete.meta.cache == "miss"
    list(complete)
    assert provider.stream_execute(CHAT, options=options).meta.cache == "hit"
    assert fake.count("stream_execute") == 3


# --------------------------------------------------------------------------- stale-while-revalidate, stale-if-error


def test_stale_while_revalidate_serves_at_once_and_refreshes_once_per_key() -> None:
    provider, layer, fake, clock, spy = build()
    provider.list_models()
    clock.advance(3600 + 1)  # past L2 freshness, inside the 600 s revalidation window
    served = [provider.list_models() for _ in range(5)]
    assert all(r.meta.cache == "stale" and r.meta.stale for r in served)
    assert fake.count("list_models") == 1
    assert layer.run_pending() == 1  # one refresh for five stale answers
    assert fake.count("list_models") == 2
    assert provider.list_models().meta.cache == "hit"
    assert spy.notes == ["miss"] + ["stale"] * 5 + ["hit"]
    stats = layer.stats()
    assert stats.stale_served == 5 and stats.refreshes == 1


@pytest.mark.parametrize(
    "error",
    [
        ServerError("bad gateway", status=502),
        RateLimitError("slow down", status=429),
        APITimeoutError("read timeout"),
        APIConnectionError("refused"),
        CircuitOpenError("breaker open"),
    ],
    ids=["502", "429", "timeout", "connection", "breaker-open"],
)
def test_stale_if_error_answers_availability_errors_with_a_marked_stale_entry(error: Exception) -> None:
    provider, _, fake, clock, spy = build({"operations": {"list_models": {"stale_while_revalidate": 0}}})
    provider.list_models()
    clock.advance(3600 + 5)
    fake.errors.append(error)
    stale = provider.list_models()
    assert stale.meta.cache == "stale" and stale.meta.stale
    assert stale.ids == ["fake/small", "fake/auto"]
    assert spy.notes[-1] == "stale"


@pytest.mark.parametrize(
    "error",
    [
        BadRequestError("bad", status=400),
        AuthenticationError("bad key", status=401),
        PaymentRequiredError("no credits", status=402),
        PermissionDeniedError("denied", status=403),
        NotFoundError("gone", status=404),
    ],
    ids=["400", "401", "402", "403", "404"],
)
def test_client_errors_are_never_masked_by_stale_data(error: Exception) -> None:
    provider, _, fake, clock, _ = build({"operations": {"list_models": {"stale_while_revalidate": 0}}})
    provider.list_models()
    clock.advance(3600 + 5)
    fake.errors.append(error)
    with pytest.raises(type(error)):
        provider.list_models()


def test_stale_if_error_ends_with_its_window() -> None:
    provider, _, fake, clock, _ = build(
        {"operations": {"get_credits": {"stale_while_revalidate": 0, "stale_if_error": 100}}}
    )
    provider.get_credits()
    clock.advance(30 + 50)
    fake.errors.append(ServerError("down", status=503))
    assert provider.get_credits().meta.stale
    clock.advance(60)  # 30 s fresh + 110 s: past the 100 s window
    fake.errors.append(ServerError("down", status=503))
    with pytest.raises(ServerError):
        provider.get_credits()


def test_a_stream_falls_back_to_its_stale_replay_when_the_upstream_is_unavailable() -> None:
    provider, _, fake, clock, _ = build()
    options = CallOptions(cache=True)
    list(provider.stream_execute(CHAT, options=options))
    clock.advance(3600 + 1)
    fake.errors.append(ServerError("overloaded", status=503))
    stale = provider.stream_execute(CHAT, options=options)
    assert stale.meta.stale and stale.final_response().text == "hello hi"


# --------------------------------------------------------------------------- refresh-ahead and warm-up


def test_warm_up_loads_at_start_and_refresh_ahead_runs_before_expiry() -> None:
    provider, layer, fake, clock, _ = build({"warm_up": ["list_models"]})
    assert list(layer.scheduled_refreshes().values()) == [clock.now]
    layer.run_pending()
    assert fake.count("list_models") == 1
    assert provider.list_models().meta.cache == "hit"
    due = layer.scheduled_refreshes()[layer.cache_key("list_models")]
    assert due == pytest.approx(clock.now + 3300)  # 55 minutes, before the 1 h TTL ends
    for _ in range(3):
        clock.advance(3300)
        layer.run_pending()
        assert provider.list_models().meta.cache == "hit"  # never stale, never waiting
    assert fake.count("list_models") == 4
    assert layer.stats().refreshes == 4


def test_a_failed_refresh_keeps_serving_and_is_retried() -> None:
    provider, layer, fake, clock, _ = build({"warm_up": ["list_models"]})
    layer.run_pending()
    clock.advance(3300)
    fake.errors.append(ServerError("down", status=500))
    layer.run_pending()
    assert layer.stats().refresh_errors == 1
    assert provider.list_models().meta.cache == "hit"
    clock.advance(60)
    layer.run_pending()
    assert fake.count("list_models") == 3 and layer.stats().refreshes == 2


def test_the_refresh_thread_warms_up_and_stops_on_close() -> None:
    fake = FakeProvider(FakeSettings())
    loaded = threading.Event()

    def script(op: str, _req: Any) -> None:
        if op == "list_models":
            loaded.set()

    fake.script = script
    settings = CacheSettings.model_validate({"background": True})
    keys = KeyBuilder(namespace="thread", provider="fake", base_url="", api_key=None)
    layer = CacheLayer(settings, keys=keys, provider_name="fake", backend=None)
    provider = LayeredProvider(fake, [layer])
    assert loaded.wait(5), "warm-up did not run on the refresh thread"
    thread = layer._refresher._thread
    assert thread is not None and thread.daemon and thread.is_alive()
    provider.close()
    assert not thread.is_alive()


# --------------------------------------------------------------------------- single-flight


def _concurrently(count: int, fn: Any) -> list[Any]:
    results: list[Any] = [None] * count
    start = threading.Barrier(count)

    def run(index: int) -> None:
        start.wait()
        try:
            results[index] = fn()
        except Exception as exc:
            results[index] = exc

    run_in_threads(run, args=[(i,) for i in range(count)], timeout=10)
    return results


def test_a_miss_keeps_the_attempt_count_of_the_upstream_result() -> None:
    """Metrics count retries from meta.attempts: the cache must not reset it on the way out."""
    provider, _, fake, _, _ = build()
    upstream = FakeProvider.list_models(fake)  # the unscripted answer

    def retried(op: str, _req: Any) -> ModelList:
        upstream.meta.attempts = 3
        return upstream

    fake.script = retried
    first = provider.list_models()
    assert first.meta.cache == "miss" and first.meta.attempts == 3
    second = provider.list_models()
    assert second.meta.cache == "hit" and second.meta.attempts == 1


def test_concurrent_identical_misses_make_one_upstream_call() -> None:
    provider, layer, fake, _, _ = build()
    release = threading.Event()

    def slow(op: str, _req: Any) -> None:
        release.wait(5)  # hold the leader until every caller has arrived

    fake.script = slow
    threading.Timer(0.2, release.set).start()
    results = _concurrently(20, provider.list_models)
    assert fake.count("list_models") == 1
    assert all(isinstance(r, ModelList) and r.ids == ["fake/small", "fake/auto"] for r in results)
    assert sorted(r.meta.cache for r in results).count("miss") == 1
    assert layer.stats().coalesced == 19


def test_concurrent_identical_misses_all_get_the_error() -> None:
    provider, _, fake, _, _ = build()
    release = threading.Event()

    def failing(op: str, _req: Any) -> None:
        release.wait(5)
        raise ServerError("upstream down", status=503)

    fake.script = failing
    threading.Timer(0.2, release.set).start()
    results = _concurrently(10, provider.get_credits)
    assert fake.count("get_credits") == 1
    assert all(isinstance(r, ServerError) and r.status == 503 for r in results)


def test_callers_sharing_a_failed_load_are_marked_coalesced_with_no_attempts_of_their_own() -> None:
    """What the metrics layer reads (call.cache, call.attempts): one upstream request, no retries counted ten times."""
    _, layer, fake, _, _ = build()
    release = threading.Event()

    def failing(op: str, _req: Any) -> None:
        release.wait(5)
        error = ServerError("upstream down", status=503)
        error.attempts = 3
        raise error

    fake.script = failing
    calls = [Call(Operation.CREDITS, "fake") for _ in range(10)]
    terminal = lambda call: fake.get_credits()  # noqa: E731
    threading.Timer(0.2, release.set).start()
    handed_out = iter(calls)
    lock = threading.Lock()

    def one() -> Any:
        with lock:
            call = next(handed_out)
        return layer.handle(call, terminal)

    results = _concurrently(10, one)
    assert fake.count("get_credits") == 1
    assert all(isinstance(r, ServerError) for r in results)
    states = sorted(call.cache for call in calls)
    assert states == ["coalesced"] * 9 + ["miss"]
    assert [call.attempts for call in calls if call.cache == "coalesced"] == [0] * 9


# --------------------------------------------------------------------------- plugin wiring and settings


def test_the_plugin_builds_the_layer_from_config(registry: Any) -> None:
    provider = create_provider(
        "fake",
        registry=registry,
        plugins=["cache"],
        config={
            "plugins": {
                "cache": {"background": False, "namespace": "wiring", "operations": {"list_models": {"l1_ttl": 5}}}
            }
        },
    )
    try:
        layer = provider.layer("cache")
        assert isinstance(layer, CacheLayer)
        assert layer.settings.operations["list_models"].l1_ttl == 5
        assert layer.settings.operations["list_models"].l2_ttl == 3600  # unchanged fields keep defaults
        layer.run_pending()  # warm-up of the model list, on by default
        assert provider.inner.count("list_models") == 1
        assert provider.list_models().meta.cache == "hit"
    finally:
        provider.close()


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"operations": {"list_modles": {"l1_ttl": 5}}}, "unknown operation"),
        ({"warm_up": ["execute"]}, "cannot warm up"),
        ({"operations": {"list_models": {"refresh_every": 999999}}}, "refresh_every"),
        ({"operations": {"list_models": {"l1_ttl": -1}}}, "l1_ttl"),
        ({"backend": "memcached"}, "backend"),
        ({"namespace": "a b"}, "namespace"),
        ({"ttl": 5}, "unknown setting"),
    ],
)
def test_bad_settings_are_reported_by_name(registry: Any, section: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as info:
        create_provider("fake", registry=registry, plugins=["cache"], config={"plugins": {"cache": section}})
    assert "plugins.cache" in str(info.value)


def test_redis_url_password_stays_out_of_reprs() -> None:
    settings = CacheSettings.model_validate(
        {"backend": "redis", "redis_url": "redis://:hunter2secret@127.0.0.1:6379/0"}
    )
    assert "hunter2secret" not in repr(settings)
    from llmrelay.plugins.cache.redis_backend import RedisBackend

    backend = RedisBackend(settings.redis_url.get_secret_value())
    assert "hunter2secret" not in repr(backend) and "hunter2secret" not in backend.describe()
    backend.close()


def test_importing_the_plugin_does_not_import_redis() -> None:
    code = "import sys, llmrelay.plugins.cache as c; c.make_backend(c.CacheSettings()); print('redis' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
