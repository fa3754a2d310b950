"""The metrics layer in the pipeline, outermost, with the fake provider."""

from __future__ import annotations

import logging
import threading
from decimal import Decimal
from typing import Any

import pytest
from llmrelay.core import ChatResponse, ChatStream, Message, ResponseMeta, StreamChunk, Usage, create_provider, hookimpl
from llmrelay.core.errors import APITimeoutError, BadRequestError, CircuitOpenError, ServerError, StreamInterruptedError
from llmrelay.core.pipeline import Call, Handler, Layer, LayerSpec, Position
from llmrelay.plugins.metrics import metrics_registry

from tests.support.clock import FakeClock
from tests.support.metrics_fixture import fresh_metrics
from tests.support.threads import run_in_threads

__all__ = ["fresh_metrics"]  # an autouse fixture, imported to be found by pytest

REQUEST = {"model": "fake/small", "messages": [{"role": "user", "content": "hi"}]}
SECRET = "sk-or-v1-0123456789abcdef0123456789abcdef"


class ScriptedCache(Layer):
    """A stand-in for the cache plugin: answers list_models from memory once filled."""

    name = "testcache"

    def __init__(self) -> None:
        self.stored: Any = None
        self.lock = threading.Lock()

    def handle(self, call: Call, proceed: Handler) -> Any:
        if call.operation != "list_models":
            call.cache = "bypass"
            return proceed(call)
        with self.lock:
            stored = self.stored
        if stored is not None:
            call.cache = "hit"
            return stored
        call.cache = "miss"
        result = proceed(call)
        with self.lock:
            self.stored = result
        return result


class ScriptedCachePlugin:
    @hookimpl
    def llmrelay_register_layers(self, register):
        register(LayerSpec("testcache", Position.CACHE, lambda context: ScriptedCache()))


class AttemptsNote(Layer):
    """Stands for a layer that reports the call's attempts in call.attempts."""

    name = "attempts"

    def handle(self, call: Call, proceed: Handler) -> Any:
        call.attempts = 2
        return proceed(call)


class AttemptsPlugin:
    @hookimpl
    def llmrelay_register_layers(self, register):
        register(LayerSpec("attempts", Position.INNERMOST, lambda context: AttemptsNote()))


def make(registry, plugins=("metrics", "breaker")):
    """The fake provider with only ``plugins`` (a dict also gives their config sections)."""
    sections = plugins if isinstance(plugins, dict) else {}
    provider = create_provider("fake", registry=registry, plugins=list(plugins), config={"plugins": sections})
    clock = FakeClock()
    provider.layer("metrics").collector.clock = clock
    breaker = provider.layer("breaker")
    if breaker is not None:
        breaker.board.set_clock(clock)
    return provider, clock


def series(provider, operation: str, model: str | None = "fake/small"):
    return provider.layer("metrics").collector.snapshot().get("fake", model, operation)


def test_on_by_default_outermost_and_switchable_off(registry) -> None:
    provider = create_provider("fake", registry=registry)
    assert provider.layers[0].name == "metrics"
    off = create_provider("fake", registry=registry, config={"plugins": {"metrics": {"enabled": False}}})
    assert off.layer("metrics") is None


def test_counts_results_errors_tokens_and_cost(registry) -> None:
    provider, _ = make(registry)
    provider.inner.errors = [BadRequestError("bad", status=400), APITimeoutError("slow")]
    for _ in range(2):
        with pytest.raises((BadRequestError, APITimeoutError)):
            provider.execute(REQUEST)
    provider.execute(REQUEST)
    provider.execute(REQUEST)
    item = series(provider, "execute")
    assert (item.requests, item.successes, item.errors) == (4, 2, 2)
    assert item.errors_by_type == {"BadRequestError": 1, "APITimeoutError": 1}
    assert (item.prompt_tokens, item.completion_tokens, item.cost) == (6, 4, Decimal("0.0002"))


def test_latency_uses_the_injected_clock(registry) -> None:
    provider, clock = make(registry)

    def slow(operation, request):
        clock.now += 2.5
        return None

    provider.inner.script = slow
    provider.execute(REQUEST)
    item = series(provider, "execute")
    assert item.latency.p50 == pytest.approx(2.5)
    assert item.latency_histogram.counts[item.latency_histogram.bounds.index(3.0)] == 1


def test_stream_ttft_and_tokens_per_second(registry) -> None:
    provider, clock = make(registry)

    def script(operation, request):
        clock.now += 0.3  # waiting for response headers

        def chunks():
            clock.now += 0.2  # first token
            yield StreamChunk(text="a")
            clock.now += 1.0
            yield StreamChunk(
                text="b", usage=Usage(prompt_tokens=4, completion_tokens=40, total_tokens=44, cost=Decimal("0.01"))
            )

        return ChatStream(chunks(), provider="fake", model="fake/small", clock=clock)

    provider.inner.script = script
    stream = provider.stream_execute(REQUEST)
    assert series(provider, "stream_execute") is None  # counted when it ends, not before
    assert stream.final_response().text == "ab"
    item = series(provider, "stream_execute")
    assert item.requests == 1 and item.successes == 1
    assert item.ttft.p50 == pytest.approx(0.5)
    assert item.latency.p50 == pytest.approx(1.5)
    assert item.tokens_per_second.p50 == pytest.approx(40.0)
    assert (item.completion_tokens, item.cost) == (40, Decimal("0.01"))


def test_stream_failure_and_early_close_counted_once(registry) -> None:
    provider, _ = make(registry)

    def broken(operation, request):
        def chunks():
            yield StreamChunk(text="a")
            raise StreamInterruptedError("dropped")

        return ChatStream(chunks(), provider="fake", model="fake/small")

    provider.inner.script = broken
    with pytest.raises(StreamInterruptedError):
        provider.stream_execute(REQUEST).final_response()
    provider.inner.script = None
    with provider.stream_execute(REQUEST) as stream:
        next(stream)
    stream.close()  # closing again must not count again
    item = series(provider, "stream_execute")
    assert (item.requests, item.errors, item.cancelled, item.successes) == (2, 1, 1, 0)
    assert item.errors_by_type == {"StreamInterruptedError": 1}


def test_retries_from_the_call_or_response_meta(registry) -> None:
    registry.register(AttemptsPlugin(), name="attempts")
    provider, _ = make(registry, plugins=("metrics", "attempts"))
    provider.execute(REQUEST)
    assert series(provider, "execute").retries == 1
    bare, _ = make(registry)
    bare.inner.script = lambda op, req: ChatResponse(message=Message.assistant("x"), meta=ResponseMeta(attempts=3))
    bare.execute(REQUEST)
    assert series(bare, "execute").retries == 1 + 2  # same process-wide series for "fake"


def test_cache_hits_are_counted_without_reaching_the_provider(registry) -> None:
    registry.register(ScriptedCachePlugin(), name="testcache")
    provider, _ = make(registry, plugins=("metrics", "testcache", "breaker"))
    for _ in range(4):
        provider.list_models()
    assert provider.inner.count("list_models") == 1
    item = series(provider, "list_models", None)
    assert (item.requests, item.cache_hits, item.cache_misses) == (4, 3, 1)
    provider.execute(REQUEST)
    assert series(provider, "execute").cache_bypass == 1


def test_breaker_rejections_and_state_appear_in_metrics(registry) -> None:
    provider, clock = make(registry, plugins={"metrics": {}, "breaker": {"failure_threshold": 2}})
    provider.inner.errors = [ServerError("down", status=503), ServerError("down", status=503)]
    for _ in range(2):
        with pytest.raises(ServerError):
            provider.execute(REQUEST)
    for _ in range(3):
        with pytest.raises(CircuitOpenError):
            provider.execute(REQUEST)
    snap = provider.layer("metrics").collector.snapshot()
    item = snap.get("fake", "fake/small", "execute")
    assert (item.requests, item.errors, item.breaker_rejections) == (5, 5, 3)
    assert item.errors_by_type == {"ServerError": 2, "CircuitOpenError": 3}
    assert [(b.breaker, b.state, b.opened) for b in snap.breakers] == [("fake", "open", 1)]
    assert snap.grade().grade == "F"
    clock.now = 60
    provider.execute(REQUEST)  # the probe closes it
    snap = provider.layer("metrics").collector.snapshot()
    assert [(b.state, b.transitions) for b in snap.breakers] == [("closed", 3)]
    assert 'llmrelay_breaker_state{provider="fake",breaker="fake",state="closed"} 1' in snap.prometheus()


def test_totals_reconcile_exactly_under_16_threads(registry) -> None:
    registry.register(ScriptedCachePlugin(), name="testcache")
    provider, _ = make(registry, plugins=("metrics", "testcache", "breaker"))
    provider.list_models()  # fills the stand-in cache
    fake = provider.inner
    lock = threading.Lock()
    turn = {"n": 0}

    def script(operation, request):
        with lock:
            turn["n"] += 1
            n = turn["n"]
        if n % 7 == 0:
            raise BadRequestError("bad", status=400)  # an error that never opens the breaker
        return None

    fake.script = script
    per_thread = 300
    start = threading.Barrier(16)
    outcomes = {"ok": 0, "error": 0, "rejected": 0}

    def worker(index: int) -> None:
        local = {"ok": 0, "error": 0, "rejected": 0}
        start.wait()
        for i in range(per_thread):
            try:
                if i % 3 == 0:
                    provider.list_models()  # a cache hit
                elif index == 0 and i == 151:
                    provider.layer("breaker").board.get("fake/small").trip(3600)
                    provider.execute(REQUEST)
                else:
                    provider.execute(REQUEST)
                local["ok"] += 1
            except CircuitOpenError:
                local["rejected"] += 1
            except BadRequestError:
                local["error"] += 1
        with lock:
            for key, value in local.items():
                outcomes[key] += value

    run_in_threads(worker, args=[(i,) for i in range(16)])
    snap = provider.layer("metrics").collector.snapshot()
    calls = 16 * per_thread + 1
    assert snap.totals.requests == calls
    assert snap.totals.requests_per_minute == calls  # the fake clock never left its first second
    assert snap.totals.successes == outcomes["ok"] + 1
    assert snap.totals.breaker_rejections == outcomes["rejected"] > 0
    assert snap.totals.errors == outcomes["error"] + outcomes["rejected"]
    models = snap.get("fake", None, "list_models")
    assert models.cache_hits == 16 * 100 and models.cache_misses == 1
    execute = snap.get("fake", "fake/small", "execute")
    assert execute.errors_by_type.get("BadRequestError", 0) == outcomes["error"]
    assert execute.requests == fake.count("execute") + outcomes["rejected"]
    assert execute.latency_histogram.count == execute.requests


def test_one_structured_log_event_per_call_without_secrets(registry, caplog) -> None:
    provider = create_provider(
        "fake",
        registry=registry,
        plugins=["metrics", "breaker"],
        config={"providers": {"fake": {"api_key": SECRET}}},
    )
    provider.inner.errors = [ServerError("upstream said no", status=502)]
    with caplog.at_level(logging.DEBUG, logger="llmrelay.metrics"):
        with pytest.raises(ServerError):
            provider.execute(REQUEST)
        provider.execute(REQUEST)
    records = [r for r in caplog.records if r.name == "llmrelay.metrics"]
    assert len(records) == 2
    events = [r.llmrelay_event for r in records]
    assert [e["outcome"] for e in events] == ["error", "ok"]
    assert events[0]["error_type"] == "ServerError" and events[1]["cost"] == "0.0001"
    assert {"provider", "model", "operation", "latency_ms", "cache", "breaker", "attempts"} <= set(events[1])
    for record in records:
        assert SECRET not in record.getMessage() and SECRET not in repr(record.__dict__)


def test_log_level_off_silences_events(registry, caplog) -> None:
    provider, _ = make(registry, plugins={"metrics": {"log_level": "OFF"}})
    with caplog.at_level(logging.DEBUG, logger="llmrelay.metrics"):
        provider.execute(REQUEST)
    assert not [r for r in caplog.records if r.name == "llmrelay.metrics"]


def test_process_registry_exports_every_provider(registry) -> None:
    first = create_provider("fake", registry=registry, plugins=["metrics"])
    second = create_provider(
        "other", registry=registry, plugins=["metrics"], config={"providers": {"other": {"type": "fake"}}}
    )
    again = create_provider("fake", registry=registry, plugins=["metrics"])
    first.execute(REQUEST)
    second.execute(REQUEST)
    again.execute(REQUEST)  # re-created providers keep counting in the same series
    snap = metrics_registry().snapshot()
    assert [(s.provider, s.requests) for s in snap.series] == [("fake", 2), ("other", 1)]
    text = metrics_registry().prometheus()
    assert 'llmrelay_requests_total{provider="other",model="fake/small",operation="execute"} 1' in text
    metrics_registry().reset()
    assert metrics_registry().snapshot().totals.requests == 0


def test_every_operation_is_counted_whatever_its_result(registry) -> None:
    """validate_config's report has a `usage` in USD, credits have none: neither is token usage."""
    from llmrelay.core import ValidationReport

    provider, _ = make(registry)
    provider.inner.validate_config = lambda: ValidationReport(
        provider="fake", outcome="valid", message="ok", usage=Decimal("1.25"), limit=Decimal("10")
    )
    assert provider.validate_config().usage == Decimal("1.25")
    provider.get_credits()
    provider.get_generation_stats("gen-1")
    provider.list_models()
    snap = provider.layer("metrics").collector.snapshot()
    assert sorted((s.operation, s.requests, s.prompt_tokens) for s in snap.series) == [
        ("get_credits", 1, 0),
        ("get_generation_stats", 1, 0),
        ("list_models", 1, 0),
        ("validate_config", 1, 0),
    ]
