"""The retry policy, with an injected sleep and clock: no real waiting."""

from __future__ import annotations

import logging
import random
from datetime import datetime, timezone
from email.utils import format_datetime

import pytest
from llmrelay.core.errors import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    PaymentRequiredError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    error_for_status,
)
from llmrelay.core.http.retry import RetryPolicy, parse_retry_after
from llmrelay.core.http.transport import Headers
from llmrelay.core.settings import RetrySettings

from tests.support.threads import run_in_threads


class FakeTime:
    """A clock that only moves when the policy sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def policy(time: FakeTime, **settings: object) -> RetryPolicy:
    return RetryPolicy(RetrySettings(**settings), sleep=time.sleep, clock=time.clock, rng=random.Random(7))


class Script:
    """Raises the given errors in turn, then returns 'ok'."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def test_success_first_time_never_sleeps() -> None:
    t = FakeTime()
    fn = Script()
    assert policy(t).call(fn) == "ok"
    assert fn.calls == 1 and t.sleeps == []


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_retryable_statuses_are_retried(status: int) -> None:
    t = FakeTime()
    fn = Script(error_for_status(status, "busy"), error_for_status(status, "busy"))
    assert policy(t, max_attempts=3).call(fn) == "ok"
    assert fn.calls == 3 and len(t.sleeps) == 2


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
def test_client_errors_are_never_retried(error: Exception) -> None:
    t = FakeTime()
    fn = Script(error)
    with pytest.raises(type(error)):
        policy(t, max_attempts=5).call(fn)
    assert fn.calls == 1 and t.sleeps == []


def test_client_error_statuses_cannot_be_configured_retryable() -> None:
    with pytest.raises(ValueError, match="never retried"):
        RetrySettings(retry_statuses=frozenset({404, 503}))


def test_connection_errors_and_timeouts_retried_unless_disabled() -> None:
    t = FakeTime()
    fn = Script(APIConnectionError("reset"), APITimeoutError("slow"))
    assert policy(t).call(fn) == "ok" and fn.calls == 3
    fn = Script(APIConnectionError("reset"))
    with pytest.raises(APIConnectionError):
        policy(t, retry_connection_errors=False).call(fn)
    assert fn.calls == 1


def test_gives_up_after_max_attempts_with_last_error() -> None:
    t = FakeTime()
    fn = Script(*(ServerError(f"down {i}", status=503) for i in range(10)))
    with pytest.raises(ServerError, match="down 3"):
        policy(t, max_attempts=4).call(fn)
    assert fn.calls == 4 and len(t.sleeps) == 3


def test_full_jitter_backoff_is_bounded_by_the_capped_exponential() -> None:
    p = RetryPolicy(RetrySettings(initial_backoff=0.5, max_backoff=3.0), rng=random.Random(1))
    for attempt in range(1, 10):
        ceiling = min(3.0, 0.5 * 2 ** (attempt - 1))
        samples = [p.backoff(attempt) for _ in range(200)]
        assert all(0 <= s <= ceiling for s in samples)
        assert max(samples) > ceiling * 0.8  # spread over the whole range, not a fixed delay


def test_retry_after_is_honoured() -> None:
    t = FakeTime()
    fn = Script(RateLimitError("slow down", status=429, retry_after=7.0))
    assert policy(t, max_backoff=1.0).call(fn) == "ok"
    assert t.sleeps == [7.0]


def test_retry_after_ignored_when_disabled() -> None:
    t = FakeTime()
    fn = Script(RateLimitError("slow down", status=429, retry_after=7.0))
    policy(t, max_backoff=1.0, respect_retry_after=False).call(fn)
    assert t.sleeps[0] <= 1.0


def test_gives_up_at_once_when_asked_to_wait_past_the_budget() -> None:
    t = FakeTime()
    fn = Script(RateLimitError("slow down", status=429, retry_after=120.0))
    with pytest.raises(RateLimitError):
        policy(t, max_total_seconds=30).call(fn)
    assert fn.calls == 1 and t.sleeps == []  # no pointless two-minute sleep


def test_total_time_budget_stops_retrying() -> None:
    t = FakeTime()

    def slow_failure() -> str:
        t.now += 20  # each attempt takes 20 s (a read timeout, say)
        raise APITimeoutError("read timeout")

    with pytest.raises(APITimeoutError):
        policy(t, max_attempts=10, max_total_seconds=50, initial_backoff=0.1, max_backoff=0.1).call(slow_failure)
    assert t.now - 1000.0 < 50 + 20 + 1  # at most one attempt started near the end
    assert len(t.sleeps) == 2


def test_also_retry_predicate_allows_an_extra_status_for_one_call() -> None:
    t = FakeTime()
    fn = Script(NotFoundError("not yet", status=404), NotFoundError("not yet", status=404))
    result = policy(t).call(fn, also_retry=lambda e: getattr(e, "status", None) == 404)
    assert result == "ok" and fn.calls == 3


def test_non_llmrelay_errors_propagate_untouched() -> None:
    t = FakeTime()

    def bug() -> str:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        policy(t).call(bug)
    assert t.sleeps == []


def test_each_retry_is_logged_without_the_key(caplog: pytest.LogCaptureFixture) -> None:
    t = FakeTime()
    secret = "sk-or-v1-abcdefabcdefabcdefabcdef0123456789"
    fn = Script(RateLimitError(f"limit for key {secret}", status=429, retry_after=2.0))
    with caplog.at_level(logging.DEBUG, logger="llmrelay"):
        RetryPolicy(RetrySettings(), sleep=t.sleep, clock=t.clock, provider="openrouter").call(
            fn, what="chat completion"
        )
    text = caplog.text
    assert "attempt 1 of 3" in text and "HTTP 429" in text and "2.00s" in text and "chat completion" in text
    assert secret not in text


def test_policy_is_shared_safely_between_threads() -> None:
    import threading

    t = FakeTime()
    lock = threading.Lock()
    p = RetryPolicy(RetrySettings(max_attempts=3), sleep=lambda s: None, rng=random.Random(3))
    results: list[str] = []

    def worker() -> None:
        fn = Script(ServerError("x", status=503), ServerError("x", status=503))
        value = p.call(fn)
        with lock:
            results.append(f"{value}:{fn.calls}")

    run_in_threads(worker, 16)
    assert results == ["ok:3"] * 16
    del t


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "3"}, 3.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "250", "Retry-After": "9"}, 0.25),
        ({"Retry-After": "soon"}, None),
        ({}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(Headers(headers)) == expected


def test_parse_retry_after_http_date() -> None:
    now = datetime(2025, 5, 20, 12, 0, 0, tzinfo=timezone.utc).timestamp()
    later = format_datetime(datetime(2025, 5, 20, 12, 0, 30, tzinfo=timezone.utc), usegmt=True)
    assert parse_retry_after(Headers({"Retry-After": later}), now=lambda: now) == pytest.approx(30.0)
    past = format_datetime(datetime(2025, 5, 20, 11, 0, 0, tzinfo=timezone.utc), usegmt=True)
    assert parse_retry_after(Headers({"Retry-After": past}), now=lambda: now) == 0.0


def test_attempts_are_reported_with_the_result_and_on_the_final_error() -> None:
    from llmrelay.core.models import ChatResponse, Message

    policy = RetryPolicy(RetrySettings(max_attempts=3), sleep=lambda _s: None, rng=random.Random(1))
    outcomes: list[Exception | None] = [ServerError("boom", status=500), None]

    def flaky() -> ChatResponse:
        error = outcomes.pop(0)
        if error is not None:
            raise error
        return ChatResponse(message=Message(role="assistant", content="ok"), provider="p")

    retried = policy.run(flaky)
    assert retried.attempts == 2 and retried.value.text == "ok"
    assert policy.run(Script()).attempts == 1

    def failing() -> ChatResponse:
        raise ServerError("boom", status=503)

    with pytest.raises(ServerError) as caught:
        policy.call(failing)
    assert caught.value.attempts == 3
    with pytest.raises(BadRequestError) as refused:
        policy.call(Script(BadRequestError("bad", status=400)))
    assert refused.value.attempts == 1  # not retried


def test_giving_up_for_lack_of_time_is_logged_with_the_reason(caplog: pytest.LogCaptureFixture) -> None:
    t = FakeTime()
    fn = Script(RateLimitError("slow down", status=429, retry_after=120.0))
    p = RetryPolicy(
        RetrySettings(max_total_seconds=30), sleep=t.sleep, clock=t.clock, rng=random.Random(7), provider="openrouter"
    )
    with caplog.at_level(logging.WARNING, logger="llmrelay.retry"), pytest.raises(RateLimitError) as caught:
        p.call(fn, what="chat completion")
    assert caught.value.attempts == 1
    assert caplog.messages == [
        "[openrouter] chat completion: giving up after attempt 1: the next wait (120.00s) is longer than "
        "the time left (30.00s of max_total_seconds=30.0)"
    ]


def test_the_wait_strategies_are_tenacity_strategies() -> None:
    import tenacity
    from llmrelay.core.http.retry import stop_when_out_of_time, wait_full_jitter, wait_retry_after

    def state(attempt: int, error: BaseException) -> tenacity.RetryCallState:
        retry_state = tenacity.RetryCallState(tenacity.Retrying(), None, (), {})
        retry_state.attempt_number = attempt
        retry_state.set_exception((type(error), error, None))
        return retry_state

    jitter = wait_full_jitter(0.5, 3.0, random.Random(1))
    assert [jitter.ceiling(n) for n in (1, 2, 3, 4, 5, 2000)] == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]
    assert 0 <= jitter(state(3, ServerError("x", status=503))) <= 2.0
    assert wait_full_jitter(0.0, 3.0, random.Random(1)).sample(4) == 0.0

    wait = wait_retry_after(jitter)
    assert wait(state(1, RateLimitError("slow", status=429, retry_after=7.0))) == 7.0
    assert wait(state(1, ServerError("busy", status=503, retry_after=2.5))) == 2.5
    assert 0 <= wait(state(2, APITimeoutError("slow"))) <= 1.0  # nothing asked: the backoff
    # Composable like tenacity's own: a fixed floor added to the jitter.
    assert 1.0 <= (tenacity.wait_fixed(1.0) + jitter)(state(1, APITimeoutError("slow"))) <= 1.5

    now = [100.0]
    stop = stop_when_out_of_time(130.0, lambda: now[0], 30.0, "request")
    waiting = state(1, APITimeoutError("slow"))
    waiting.upcoming_sleep = 29.0
    assert not stop(waiting)
    now[0] = 110.0
    assert stop(waiting)
    assert (tenacity.stop_after_attempt(5) | stop)(waiting)
