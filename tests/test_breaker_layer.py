"""The breaker inside the provider pipeline, driven through the fake provider."""

from __future__ import annotations

import threading

import pytest
from llmrelay.core import ChatStream, StreamChunk, create_provider
from llmrelay.core.errors import (
    AuthenticationError,
    CircuitOpenError,
    ConfigurationError,
    ServerError,
    StreamInterruptedError,
)
from llmrelay.plugins.breaker import CircuitState, listen, unlisten

from tests.support.clock import FakeClock
from tests.support.threads import run_in_threads

REQUEST = {"model": "fake/small", "messages": [{"role": "user", "content": "hi"}]}


def make(registry, **section):
    provider = create_provider("fake", registry=registry, plugins=["breaker"], config={"plugins": {"breaker": section}})
    clock = FakeClock()
    provider.layer("breaker").board.set_clock(clock)
    return provider, clock


def test_on_by_default_and_switchable_off(registry) -> None:
    provider = create_provider("fake", registry=registry)
    assert provider.layer("breaker") is not None
    off = create_provider("fake", registry=registry, config={"plugins": {"breaker": {"enabled": False}}})
    assert off.layer("breaker") is None


def test_settings_come_from_the_config_and_are_validated(registry) -> None:
    provider, _ = make(registry, failure_threshold=2, reset_timeout=10)
    assert provider.layer("breaker").board.settings.failure_threshold == 2
    with pytest.raises(ConfigurationError, match=r"plugins\.breaker\.failure_treshold"):
        create_provider("fake", registry=registry, config={"plugins": {"breaker": {"failure_treshold": 2}}})


def test_open_breaker_fails_fast_without_calling_the_provider(registry) -> None:
    provider, clock = make(registry)
    fake = provider.inner
    fake.errors = [ServerError("down", status=503) for _ in range(5)]
    for _ in range(5):
        with pytest.raises(ServerError):
            provider.execute(REQUEST)
    assert fake.count("execute") == 5
    clock.now = 10
    with pytest.raises(CircuitOpenError) as info:
        provider.execute(REQUEST)
    assert info.value.retry_after == pytest.approx(50)
    with pytest.raises(CircuitOpenError):
        provider.list_models()
    assert len(fake.calls) == 5  # nothing reached the provider
    # validate_config reports reachability itself and is never blocked
    assert provider.validate_config().ok
    clock.now = 60
    assert provider.execute(REQUEST).text == "hello: hi"  # the probe
    assert provider.layer("breaker").board.get("fake/small").state is CircuitState.CLOSED


def test_client_errors_pass_through_and_never_open_it(registry) -> None:
    provider, _ = make(registry)
    provider.inner.errors = [AuthenticationError("bad key", status=401) for _ in range(20)]
    for _ in range(20):
        with pytest.raises(AuthenticationError):
            provider.execute(REQUEST)
    assert provider.execute(REQUEST).text == "hello: hi"


def test_per_model_breakers_are_independent(registry) -> None:
    provider, _ = make(registry, per_model=True, failure_threshold=2)
    provider.inner.errors = [ServerError("down", status=500), ServerError("down", status=500)]
    for _ in range(2):
        with pytest.raises(ServerError):
            provider.execute(REQUEST)
    with pytest.raises(CircuitOpenError, match="fake/fake/small"):
        provider.execute(REQUEST)
    other = dict(REQUEST, model="fake/other")
    assert provider.execute(other).text == "hello: hi"


def test_the_report_tells_outer_layers_about_rejections_and_state_changes(registry) -> None:
    provider, _ = make(registry, failure_threshold=1)
    layer = provider.layer("breaker")
    from llmrelay.core.pipeline import Call, Operation

    def failing(call: Call):
        raise ServerError("down", status=500)

    first = Call(Operation.EXECUTE, "fake", None, "m")
    with pytest.raises(ServerError):
        layer.handle(first, failing)
    assert first.breaker is not None
    assert first.breaker.decision == "admitted"
    assert first.breaker.state == "open"
    assert first.breaker.name == "fake"
    assert [(e["from"], e["to"]) for e in first.breaker.events] == [("closed", "open")]
    second = Call(Operation.EXECUTE, "fake", None, "m")
    with pytest.raises(CircuitOpenError):
        layer.handle(second, failing)
    assert second.breaker is not None and second.breaker.decision == "rejected"
    assert second.breaker.events == ()  # each change is carried once
    assert first.notes == {} and second.notes == {}  # the notes are left to third-party layers


def _stream(chunks, fail_after: int | None = None) -> ChatStream:
    def gen():
        for i, chunk in enumerate(chunks):
            if fail_after is not None and i == fail_after:
                raise StreamInterruptedError("connection dropped mid-stream")
            yield chunk

    return ChatStream(gen(), provider="fake", model="fake/small")


def test_stream_failure_after_first_chunk_counts(registry) -> None:
    provider, _ = make(registry, failure_threshold=2)
    provider.inner.script = lambda op, req: _stream([StreamChunk(text="a"), StreamChunk(text="b")], fail_after=1)
    for _ in range(2):
        stream = provider.stream_execute(REQUEST)
        with pytest.raises(StreamInterruptedError):
            for _chunk in stream:
                pass
    with pytest.raises(CircuitOpenError):
        provider.stream_execute(REQUEST)


def test_stream_permit_released_when_caller_stops_early(registry) -> None:
    provider, clock = make(registry, failure_threshold=1)
    breaker = provider.layer("breaker").board.get("fake/small")
    breaker.trip(1)
    clock.now = 1  # half-open: exactly one probe admitted
    provider.inner.script = lambda op, req: _stream([StreamChunk(text=t) for t in "abcdef"])
    with provider.stream_execute(REQUEST) as stream:
        next(stream)  # the caller reads one chunk and leaves
    assert breaker.state is CircuitState.CLOSED  # the probe's permit was settled
    # a stream closed before any chunk releases its permit without deciding
    breaker.trip(1)
    clock.now = 2
    provider.stream_execute(REQUEST).close()
    assert breaker.state is CircuitState.HALF_OPEN
    stream = provider.stream_execute(REQUEST)  # the probe slot is free again
    assert "".join(chunk.text for chunk in stream) == "abcdef"
    assert breaker.state is CircuitState.CLOSED


def test_global_listeners_hear_every_board(registry) -> None:
    seen: list[dict] = []
    listen(seen.append)
    try:
        provider, _ = make(registry, failure_threshold=1)
        provider.inner.errors = [ServerError("down", status=500)]
        with pytest.raises(ServerError):
            provider.execute(REQUEST)
    finally:
        unlisten(seen.append)
    assert [(e["provider"], e["to"]) for e in seen] == [("fake", "open")]


def test_concurrent_calls_are_not_serialised(registry) -> None:
    provider, _ = make(registry)
    meet = threading.Barrier(8, timeout=5)

    def script(op, req):
        meet.wait()  # all eight calls are inside the provider at once
        return None

    provider.inner.script = script
    results: list[str] = []
    run_in_threads(lambda: results.append(provider.execute(REQUEST).text), 8, timeout=5)
    assert len(results) == 8 and not meet.broken


def test_a_fallback_model_list_is_no_evidence_of_health(registry) -> None:
    from llmrelay.core import ModelList

    provider, clock = make(registry)
    breaker = provider.layer("breaker").board.get(None)
    breaker.trip(1)
    clock.now = 1  # half-open: one probe
    provider.inner.script = lambda op, req: ModelList(models=[], fallback=True)
    assert provider.list_models().fallback
    assert breaker.state is CircuitState.HALF_OPEN  # the probe decided nothing
    provider.inner.script = None
    provider.list_models()
    assert breaker.state is CircuitState.CLOSED
