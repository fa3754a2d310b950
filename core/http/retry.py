"""The retry policy: which failures are retried, how long to wait, when to give up.

Built from tenacity's own parts, with ``stop`` and ``retry`` always set
(tenacity's defaults retry every exception forever):

* ``retry``: :func:`tenacity.retry_if_exception` with :func:`is_retryable`:
  connection errors and timeouts (``retry_connection_errors``) and the HTTP
  statuses in ``retry_statuses`` (408, 429, 500, 502, 503, 504 by default).
  Never 400, 401, 402, 403 or 404; a caller can allow more with
  ``also_retry`` (the provider uses it for OpenRouter's brief
  ``/generation`` 404 window).
* ``wait``: :class:`wait_retry_after`, the wait the service asked for
  (``Retry-After`` in seconds or as an HTTP date, or ``retry-after-ms``),
  else :class:`wait_full_jitter`, full-jitter exponential backoff: a wait
  drawn uniformly from ``[0, min(max_backoff, initial_backoff * 2**(attempt-1))]``.
* ``stop``: :func:`tenacity.stop_after_attempt` (``max_attempts`` in all)
  or :class:`stop_when_out_of_time`: when the next wait would end past
  ``max_total_seconds`` from the start of the first attempt, the policy
  gives up at once instead of sleeping and then failing.

One :class:`RetryPolicy` per provider owns all retrying for it; nothing
below it (urllib3, requests) retries, so attempts never multiply. Streams
are retried only until the response headers arrive: the policy wraps the
opening of a stream, never its iteration.

Attempts are reported explicitly: :meth:`RetryPolicy.run` returns the value
with the number of attempts that produced it (:class:`Retried`), and the
error the policy gives up with carries it as ``error.attempts``.

The first attempt runs without tenacity at all (a plain call in a ``try``),
so a call that succeeds first time pays nothing for retrying. Sleep, clock
and random source are injectable for tests; the time budget is measured
with the policy's clock, not tenacity's.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

import tenacity
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from ..errors import APIConnectionError, APIStatusError, APITimeoutError, LLMRelayError, RateLimitError, ServerError
from ..settings import RetrySettings

__all__ = [
    "Retried",
    "RetryPolicy",
    "is_retryable",
    "parse_retry_after",
    "stop_when_out_of_time",
    "wait_full_jitter",
    "wait_retry_after",
]

log = logging.getLogger("llmrelay.retry")

T = TypeVar("T")
Predicate = Callable[[BaseException], bool]

NEVER_RETRIED = frozenset({400, 401, 402, 403, 404})


def parse_retry_after(headers: Mapping[str, str], *, now: Callable[[], float] = time.time) -> float | None:
    """Seconds to wait, from ``retry-after-ms`` or ``Retry-After`` (seconds or HTTP date)."""
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(0.0, float(value) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - now())


def is_retryable(error: BaseException, settings: RetrySettings) -> bool:
    """Whether ``settings`` allow retrying ``error`` (without any extra predicate)."""
    if isinstance(error, APIStatusError):
        status = error.status or 0
        return status not in NEVER_RETRIED and status in settings.retry_statuses
    if isinstance(error, (APIConnectionError, APITimeoutError)):
        return settings.retry_connection_errors
    return False


@dataclass(frozen=True, slots=True)
class Retried(Generic[T]):
    """A call's result and how many attempts produced it (1 when the first one succeeded)."""

    value: T
    attempts: int


# --------------------------------------------------------------------------- tenacity strategies


class wait_full_jitter(wait_base):  # lower case, like tenacity's own strategies
    """Full-jitter exponential backoff: uniform in ``[0, min(maximum, initial * 2**(attempt-1))]``.

    tenacity's ``wait_random_exponential``, with the random source passed in
    (tests pass a seeded one).
    """

    def __init__(self, initial: float, maximum: float, rng: random.Random) -> None:
        self.initial = initial
        self.maximum = maximum
        self._uniform = rng.uniform

    def ceiling(self, attempt: int) -> float:
        """The largest wait after failed attempt number ``attempt`` (1-based)."""
        if self.initial <= 0 or self.maximum <= 0:
            return 0.0
        # Past 2**64 the product only overflows; the cap has long been reached.
        return min(self.maximum, self.initial * 2.0 ** min(attempt - 1, 64))

    def sample(self, attempt: int) -> float:
        ceiling = self.ceiling(attempt)
        return self._uniform(0.0, ceiling) if ceiling > 0 else 0.0

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        return self.sample(retry_state.attempt_number)


class wait_retry_after(wait_base):  # lower case, like tenacity's own strategies
    """The wait the service asked for (the error's ``retry_after``, from ``Retry-After``), else ``fallback``'s."""

    def __init__(self, fallback: wait_base) -> None:
        self.fallback = fallback

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        asked = error.retry_after if isinstance(error, (RateLimitError, ServerError)) else None
        return float(asked) if asked is not None else self.fallback(retry_state)


class stop_when_out_of_time(stop_base):  # lower case, like tenacity's own strategies
    """Stop when the next wait would end past ``deadline`` on ``clock``, saying so in the log.

    tenacity's ``stop_before_delay``, on the policy's clock: tenacity (8.3
    and later) works out the wait (``retry_state.upcoming_sleep``) before it
    asks ``stop``.
    """

    def __init__(self, deadline: float, clock: Callable[[], float], budget: float, label: str) -> None:
        self.deadline = deadline
        self.clock = clock
        self.budget = budget
        self.label = label

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        delay = retry_state.upcoming_sleep
        remaining = self.deadline - self.clock()
        if delay <= remaining:
            return False
        log.warning(
            "%s: giving up after attempt %d: the next wait (%.2fs) is longer than the time left "
            "(%.2fs of max_total_seconds=%s)",
            self.label,
            retry_state.attempt_number,
            delay,
            max(remaining, 0.0),
            self.budget,
        )
        return True


# --------------------------------------------------------------------------- the policy


class RetryPolicy:
    """Runs a function with retries as ``settings`` say. Thread-safe; build once per provider."""

    def __init__(
        self,
        settings: RetrySettings | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        provider: str | None = None,
    ) -> None:
        self.settings = settings or RetrySettings()
        self.sleep = sleep
        self.clock = clock
        self.provider = provider
        s = self.settings
        self._backoff = wait_full_jitter(s.initial_backoff, s.max_backoff, rng or random.Random())
        self._wait: wait_base = wait_retry_after(self._backoff) if s.respect_retry_after else self._backoff

    # ------------------------------------------------------------------ public

    def run(self, fn: Callable[[], T], *, also_retry: Predicate | None = None, what: str = "request") -> Retried[T]:
        """``fn()``, retried on retryable errors, with the number of attempts it took.

        Re-raises the last error when giving up, with ``error.attempts`` set.
        ``also_retry(error)`` makes more errors retryable for this call only.
        """
        started = self.clock()
        try:
            return Retried(fn(), 1)
        except LLMRelayError as error:
            error.attempts = 1
            if self.settings.max_attempts <= 1 or not self._retryable(error, also_retry):
                raise
            replay: LLMRelayError | None = error
        made = 1

        def attempt() -> T:
            # Attempt 1 already ran, outside tenacity: raising its error again
            # makes tenacity's attempt numbers the real ones.
            nonlocal replay, made
            if replay is not None:
                first, replay = replay, None
                raise first
            made += 1
            return fn()

        try:
            value = self._retrying(started, also_retry, what)(attempt)
        except LLMRelayError as error:
            error.attempts = made
            raise
        return Retried(value, made)

    def call(self, fn: Callable[[], T], *, also_retry: Predicate | None = None, what: str = "request") -> T:
        """Like :meth:`run`, returning the value alone."""
        return self.run(fn, also_retry=also_retry, what=what).value

    def backoff(self, attempt: int) -> float:
        """The full-jitter backoff after failed attempt number ``attempt`` (1-based)."""
        return self._backoff.sample(attempt)

    # ------------------------------------------------------------------ internals

    def _retryable(self, error: BaseException, also_retry: Predicate | None) -> bool:
        if is_retryable(error, self.settings):
            return True
        return also_retry is not None and isinstance(error, LLMRelayError) and also_retry(error)

    def _retrying(self, started: float, also_retry: Predicate | None, what: str) -> tenacity.Retrying:
        """The tenacity loop for one call that failed once and may be retried."""
        s = self.settings
        label = f"[{self.provider}] {what}" if self.provider else what

        def retryable(error: BaseException) -> bool:
            return self._retryable(error, also_retry)

        def log_retry(retry_state: tenacity.RetryCallState) -> None:
            outcome = retry_state.outcome
            error = outcome.exception() if outcome is not None else None
            status = error.status if isinstance(error, LLMRelayError) else None
            # The error's class and status only: never its message, which may
            # quote request data, and never a header.
            log.warning(
                "%s failed (attempt %d of %d, %s%s); retrying in %.2fs",
                label,
                retry_state.attempt_number,
                s.max_attempts,
                type(error).__name__,
                f", HTTP {status}" if status else "",
                retry_state.upcoming_sleep,
            )

        return tenacity.Retrying(
            retry=tenacity.retry_if_exception(retryable),
            wait=self._wait,
            stop=tenacity.stop_after_attempt(s.max_attempts)
            | stop_when_out_of_time(started + s.max_total_seconds, self.clock, s.max_total_seconds, label),
            sleep=self._sleep,
            before_sleep=log_retry,
            reraise=True,
        )

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.sleep(seconds)

    def __repr__(self) -> str:
        s = self.settings
        return (
            f"<RetryPolicy attempts={s.max_attempts} total={s.max_total_seconds}s "
            f"backoff={s.initial_backoff}..{s.max_backoff}s statuses={sorted(s.retry_statuses)}>"
        )
