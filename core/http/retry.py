"""The retry policy: which failures are retried, how long to wait, when to give up.

Built on tenacity with ``stop`` and ``retry`` always set (tenacity's
defaults retry every exception forever). One :class:`RetryPolicy` per
provider owns all retrying for it; nothing below it (urllib3, requests)
retries, so attempts never multiply.

* Full-jitter exponential backoff: a wait drawn uniformly from
  ``[0, min(max_backoff, initial_backoff * 2**(attempt-1))]``.
* Bounded twice: ``max_attempts`` in all and ``max_total_seconds`` from the
  start of the first attempt.
* Retried: connection errors and timeouts (``retry_connection_errors``) and
  the HTTP statuses in ``retry_statuses`` (408, 429, 500, 502, 503, 504 by
  default). Never 400, 401, 402, 403 or 404; a caller can allow more with
  ``also_retry`` (the provider uses it for OpenRouter's brief ``/generation``
  404 window).
* ``Retry-After`` (seconds or an HTTP date) and ``retry-after-ms`` are
  honoured; when the service asks for a wait longer than what is left of the
  budget, the policy gives up at once instead of sleeping and then failing.
* Streams are retried only until the response headers arrive: the policy
  wraps the opening of a stream, never its iteration.

The first attempt runs without tenacity at all (a plain call in a
``try``), so a call that succeeds first time pays nothing for retrying.
Sleep, clock and random source are injectable for tests.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import tenacity

from ..errors import APIConnectionError, APIStatusError, APITimeoutError, LLMRelayError
from ..settings import RetrySettings

__all__ = ["RetryPolicy", "is_retryable", "parse_retry_after", "record_attempts"]

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


class _Attempts:
    """One call's state, reached from tenacity's retry_state through ``fn``."""

    __slots__ = ("fn", "first_error", "started", "also_retry", "what", "delays", "gave_up_reason", "count")

    def __init__(
        self, fn: Callable[[], Any], first_error: BaseException, started: float, also_retry: Predicate | None, what: str
    ) -> None:
        self.fn = fn
        self.first_error: BaseException | None = first_error
        self.started = started
        self.also_retry = also_retry
        self.what = what
        self.delays: dict[int, float] = {}
        self.gave_up_reason: str | None = None
        self.count = 0

    def __call__(self) -> Any:
        # Attempt 1 already ran outside tenacity; replay its error so that
        # tenacity's attempt numbers are the real ones.
        self.count += 1
        error, self.first_error = self.first_error, None
        if error is not None:
            raise error
        return self.fn()


def record_attempts(result: Any, count: int) -> None:
    """Note on ``result`` how many attempts produced it, for the metrics layer.

    A model result has ``meta.attempts``; an open streamed response has
    ``attempts``, which the stream driver copies to its ``ChatStream.meta``.
    A failure carries ``attempts`` on the raised error.
    """
    meta = getattr(result, "meta", None)
    if meta is not None and hasattr(meta, "attempts"):
        meta.attempts = count
    elif hasattr(result, "attempts"):
        result.attempts = count


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
        self._uniform = (rng or random.Random()).uniform
        s = self.settings
        # Built once: tenacity keeps per-call state in thread-locals.
        self._retrying = tenacity.Retrying(
            sleep=self._sleep,
            stop=self._stop,
            wait=self._wait,
            retry=self._should_retry,
            before_sleep=self._log_retry,
            reraise=True,
        )
        self._max_attempts = s.max_attempts

    # ------------------------------------------------------------------ public

    def call(self, fn: Callable[[], T], *, also_retry: Predicate | None = None, what: str = "request") -> T:
        """``fn()``, retried on retryable errors. Re-raises the last error when giving up.

        ``also_retry(error)`` makes more errors retryable for this call only.
        """
        started = self.clock()
        try:
            return fn()
        except LLMRelayError as error:
            if self._max_attempts <= 1 or not self._retryable(error, also_retry):
                raise
            first = error
        attempts = _Attempts(fn, first, started, also_retry, what)
        try:
            result: T = self._retrying(attempts)
        except LLMRelayError as error:
            error.attempts = attempts.count  # type: ignore[attr-defined]
            raise
        record_attempts(result, attempts.count)
        return result

    def backoff(self, attempt: int) -> float:
        """The full-jitter backoff after failed attempt number ``attempt`` (1-based)."""
        s = self.settings
        ceiling = min(s.max_backoff, s.initial_backoff * (2 ** (attempt - 1)))
        return self._uniform(0.0, ceiling) if ceiling > 0 else 0.0

    # ------------------------------------------------------------------ tenacity hooks

    def _retryable(self, error: BaseException, also_retry: Predicate | None) -> bool:
        if is_retryable(error, self.settings):
            return True
        return also_retry is not None and isinstance(error, LLMRelayError) and also_retry(error)

    def _should_retry(self, state: tenacity.RetryCallState) -> bool:
        outcome = state.outcome
        if outcome is None or not outcome.failed:
            return False
        attempts: _Attempts = state.fn  # type: ignore[assignment]
        return self._retryable(outcome.exception(), attempts.also_retry)

    def _delay(self, state: tenacity.RetryCallState) -> float:
        attempts: _Attempts = state.fn  # type: ignore[assignment]
        number = state.attempt_number
        delay = attempts.delays.get(number)
        if delay is None:
            delay = self.backoff(number)
            error = state.outcome.exception() if state.outcome is not None else None
            asked = getattr(error, "retry_after", None)
            if asked is not None and self.settings.respect_retry_after:
                delay = float(asked)
            attempts.delays[number] = delay
        return delay

    def _wait(self, state: tenacity.RetryCallState) -> float:
        return self._delay(state)

    def _stop(self, state: tenacity.RetryCallState) -> bool:
        attempts: _Attempts = state.fn  # type: ignore[assignment]
        if state.attempt_number >= self._max_attempts:
            attempts.gave_up_reason = f"{self._max_attempts} attempts made"
            return True
        delay = self._delay(state)
        remaining = self.settings.max_total_seconds - (self.clock() - attempts.started)
        if delay > remaining:
            attempts.gave_up_reason = (
                f"the next wait ({delay:.2f}s) is longer than the time left "
                f"({max(remaining, 0.0):.2f}s of max_total_seconds={self.settings.max_total_seconds})"
            )
            log.warning(
                "%s%s: giving up after attempt %d: %s",
                f"[{self.provider}] " if self.provider else "",
                attempts.what,
                state.attempt_number,
                attempts.gave_up_reason,
            )
            return True
        return False

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.sleep(seconds)

    def _log_retry(self, state: tenacity.RetryCallState) -> None:
        attempts: _Attempts = state.fn  # type: ignore[assignment]
        error = state.outcome.exception() if state.outcome is not None else None
        status = getattr(error, "status", None)
        # The error's class and status only: never its message, which may
        # quote request data, and never a header.
        log.warning(
            "%s%s failed (attempt %d of %d, %s%s); retrying in %.2fs",
            f"[{self.provider}] " if self.provider else "",
            attempts.what,
            state.attempt_number,
            self._max_attempts,
            type(error).__name__,
            f", HTTP {status}" if status else "",
            self._delay(state),
        )

    def __repr__(self) -> str:
        s = self.settings
        return (
            f"<RetryPolicy attempts={s.max_attempts} total={s.max_total_seconds}s "
            f"backoff={s.initial_backoff}..{s.max_backoff}s statuses={sorted(s.retry_statuses)}>"
        )
