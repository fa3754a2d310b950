"""The circuit breaker on its own: state machine, classification, clock, listeners, threads."""

from __future__ import annotations

import contextlib
import threading

import pytest
from llmrelay.core.config import validate_settings
from llmrelay.core.errors import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    CircuitOpenError,
    ConfigurationError,
    NotFoundError,
    PaymentRequiredError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    StreamInterruptedError,
)
from llmrelay.plugins.breaker import BreakerSettings, CircuitBreaker, CircuitState, Outcome, classify

from tests.support.clock import FakeClock
from tests.support.threads import run_in_threads


def fail(breaker: CircuitBreaker, error: BaseException | None = None) -> None:
    breaker.acquire().record(error or ServerError("boom", status=503))


def succeed(breaker: CircuitBreaker) -> None:
    breaker.acquire().record(None)


def test_defaults_are_the_reports() -> None:
    settings = BreakerSettings()
    assert settings.failure_threshold == 5
    assert settings.reset_timeout == 60.0


def test_opens_after_five_consecutive_failures_and_fails_fast_with_retry_after() -> None:
    clock = FakeClock(1000.0)
    breaker = CircuitBreaker("up", BreakerSettings(failure_rate_threshold=None), clock=clock)
    for _ in range(4):
        fail(breaker)
    assert breaker.state is CircuitState.CLOSED
    fail(breaker)
    assert breaker.state is CircuitState.OPEN
    clock.advance(15)
    calls = []
    with pytest.raises(CircuitOpenError) as info:
        breaker.call(lambda: calls.append(1))
    assert calls == []  # the function never ran
    assert info.value.retry_after == pytest.approx(45.0)
    assert info.value.provider == "up"
    assert "up" in str(info.value)
    assert breaker.rejections == 1


def test_a_success_resets_the_consecutive_count() -> None:
    breaker = CircuitBreaker("up", BreakerSettings(failure_rate_threshold=None), clock=FakeClock(1000.0))
    for _ in range(4):
        fail(breaker)
    succeed(breaker)
    for _ in range(4):
        fail(breaker)
    assert breaker.state is CircuitState.CLOSED


def test_failure_rate_over_window_opens_once_minimum_calls_reached() -> None:
    settings = BreakerSettings(failure_threshold=100, failure_rate_threshold=0.5, window_size=10, minimum_calls=6)
    breaker = CircuitBreaker("up", settings, clock=FakeClock(1000.0))
    # alternate: never two failures in a row, 50% failure rate
    fail(breaker)
    succeed(breaker)
    fail(breaker)
    succeed(breaker)
    fail(breaker)
    assert breaker.state is CircuitState.CLOSED  # 5 calls < minimum 6
    succeed(breaker)
    assert breaker.state is CircuitState.CLOSED  # successes never open it
    fail(breaker)  # 4/7 >= 50%
    assert breaker.state is CircuitState.OPEN


def test_window_slides_old_failures_out() -> None:
    settings = BreakerSettings(failure_threshold=100, failure_rate_threshold=0.5, window_size=4, minimum_calls=4)
    breaker = CircuitBreaker("up", settings, clock=FakeClock(1000.0))
    fail(breaker)
    succeed(breaker)
    succeed(breaker)
    succeed(breaker)  # window F S S S: 25%
    succeed(breaker)  # F slides out: S S S S
    fail(breaker)  # S S S F: 25%
    assert breaker.state is CircuitState.CLOSED
    assert breaker.snapshot()["window_failure_rate"] == pytest.approx(0.25)


def test_half_open_admits_configured_probes_then_closes_on_success() -> None:
    clock = FakeClock(1000.0)
    breaker = CircuitBreaker("up", BreakerSettings(half_open_probes=2), clock=clock)
    for _ in range(5):
        fail(breaker)
    clock.advance(60)
    assert breaker.state is CircuitState.HALF_OPEN
    first = breaker.acquire()
    second = breaker.acquire()
    assert first.probe and second.probe
    with pytest.raises(CircuitOpenError) as info:
        breaker.acquire()  # a third caller while two probes are in flight
    assert info.value.retry_after is not None
    first.record(None)
    assert breaker.state is CircuitState.HALF_OPEN  # needs both probes
    second.record(None)
    assert breaker.state is CircuitState.CLOSED
    succeed(breaker)


def test_half_open_reopens_on_probe_failure_for_a_full_timeout() -> None:
    clock = FakeClock(1000.0)
    breaker = CircuitBreaker("up", clock=clock)
    for _ in range(5):
        fail(breaker)
    clock.advance(61)
    probe = breaker.acquire()
    probe.record(APITimeoutError("slow"))
    assert breaker.state is CircuitState.OPEN
    with pytest.raises(CircuitOpenError) as info:
        breaker.acquire()
    assert info.value.retry_after == pytest.approx(60.0)


def test_late_result_of_a_call_from_an_earlier_state_does_not_decide() -> None:
    clock = FakeClock(1000.0)
    breaker = CircuitBreaker("up", clock=clock)
    slow = breaker.acquire()  # admitted while closed
    for _ in range(5):
        fail(breaker)
    clock.advance(60)
    probe = breaker.acquire()
    slow.record(None)  # a success from before the outage must not close it
    assert breaker.state is CircuitState.HALF_OPEN
    probe.record(None)
    assert breaker.state is CircuitState.CLOSED


def test_recording_twice_counts_once() -> None:
    breaker = CircuitBreaker(
        "up", BreakerSettings(failure_threshold=2, failure_rate_threshold=None), clock=FakeClock(1000.0)
    )
    permit = breaker.acquire()
    permit.record(ServerError("x", status=500))
    permit.record(ServerError("x", status=500))
    assert breaker.state is CircuitState.CLOSED


@pytest.mark.parametrize(
    "error",
    [
        BadRequestError("bad", status=400),
        AuthenticationError("key", status=401),
        PaymentRequiredError("credits", status=402),
        PermissionDeniedError("no", status=403),
        NotFoundError("none", status=404),
    ],
)
def test_client_errors_never_open_it(error: BaseException) -> None:
    breaker = CircuitBreaker("up", clock=FakeClock(1000.0))
    for _ in range(50):
        with pytest.raises(type(error)):
            breaker.call(_raise, error)
    assert breaker.state is CircuitState.CLOSED


@pytest.mark.parametrize(
    "error",
    [
        APITimeoutError("t"),
        APIConnectionError("c"),
        ServerError("s", status=502),
        RateLimitError("r", status=429),
        StreamInterruptedError("i"),
    ],
)
def test_availability_errors_open_it(error: BaseException) -> None:
    breaker = CircuitBreaker("up", clock=FakeClock(1000.0))
    for _ in range(5):
        with pytest.raises(type(error)):
            breaker.call(_raise, error)
    assert breaker.state is CircuitState.OPEN


def test_rate_limits_can_be_excluded() -> None:
    breaker = CircuitBreaker("up", BreakerSettings(count_rate_limits=False), clock=FakeClock(1000.0))
    for _ in range(20):
        fail(breaker, RateLimitError("slow down", status=429))
    assert breaker.state is CircuitState.CLOSED
    assert classify(RateLimitError("r", status=429), count_rate_limits=False) == Outcome.SUCCESS


def test_foreign_exceptions_and_nested_rejections_are_ignored() -> None:
    assert classify(ValueError("bug")) == Outcome.IGNORED
    assert classify(CircuitOpenError("inner", retry_after=1)) == Outcome.IGNORED
    breaker = CircuitBreaker(
        "up", BreakerSettings(failure_threshold=2, failure_rate_threshold=None), clock=FakeClock(1000.0)
    )
    fail(breaker)
    fail(breaker, ValueError("bug"))  # neither success nor failure
    fail(breaker)
    assert breaker.state is CircuitState.OPEN


def test_listeners_get_plain_events_for_every_transition() -> None:
    clock = FakeClock(1000.0)
    events: list[dict] = []
    breaker = CircuitBreaker("up", clock=clock, listeners=[events.append])
    breaker.add_listener(lambda event: (_ for _ in ()).throw(RuntimeError("broken listener")))
    for _ in range(5):
        fail(breaker)
    clock.advance(60)
    breaker.acquire().record(None)
    assert [(e["from"], e["to"]) for e in events] == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]
    assert events[0]["reason"] == "5 consecutive failures"
    assert events[0]["retry_after"] == 60.0
    assert all(type(e) is dict for e in events)


def test_reset_and_trip_by_hand() -> None:
    clock = FakeClock(1000.0)
    breaker = CircuitBreaker("up", clock=clock)
    breaker.trip(5)
    with pytest.raises(CircuitOpenError) as info:
        breaker.acquire()
    assert info.value.retry_after == pytest.approx(5)
    breaker.reset()
    assert breaker.state is CircuitState.CLOSED
    succeed(breaker)


def test_bad_settings_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="minimum_calls"):
        validate_settings(
            BreakerSettings, {"minimum_calls": 50, "window_size": 10}, source="test", prefix="plugins.breaker"
        )
    with pytest.raises(ConfigurationError, match="failure_threshold"):
        validate_settings(BreakerSettings, {"failure_threshold": 0}, source="test", prefix="plugins.breaker")
    with pytest.raises(ConfigurationError, match="redis_url"):
        validate_settings(BreakerSettings, {"redis_url": "http://x"}, source="test", prefix="plugins.breaker")


def test_lock_is_not_held_during_the_call() -> None:
    """Two calls through one breaker run at the same time (pybreaker would serialise them)."""
    breaker = CircuitBreaker("up")
    inside = threading.Barrier(2, timeout=5)

    def work() -> None:
        inside.wait()  # both threads must be inside a call at once

    run_in_threads(breaker.call, args=[(work,) for _ in range(2)], timeout=5)
    assert not inside.broken


def test_concurrent_failures_open_exactly_once() -> None:
    events: list[dict] = []
    breaker = CircuitBreaker(
        "up", BreakerSettings(failure_threshold=50, failure_rate_threshold=None), listeners=[events.append]
    )
    start = threading.Barrier(16)

    def worker() -> None:
        start.wait()
        for _ in range(100):
            with contextlib.suppress(CircuitOpenError):
                breaker.acquire().record(ServerError("x", status=500))

    run_in_threads(worker, 16)
    assert breaker.state is CircuitState.OPEN
    assert [(e["from"], e["to"]) for e in events] == [("closed", "open")]


def _raise(error: BaseException) -> None:
    raise error


def test_abandoned_probe_does_not_wedge_the_breaker() -> None:
    clock = FakeClock(1000.0)
    breaker = CircuitBreaker("up", clock=clock)
    breaker.trip()
    clock.advance(60)
    lost = breaker.acquire()  # a probe whose caller never records it
    clock.advance(30)
    with pytest.raises(CircuitOpenError):
        breaker.acquire()  # still waiting for that probe
    clock.advance(30)
    probe = breaker.acquire()  # a full reset timeout later: a fresh probe
    probe.record(None)
    assert breaker.state is CircuitState.CLOSED
    lost.record(ServerError("late", status=500))  # its late result no longer decides
    assert breaker.state is CircuitState.CLOSED
