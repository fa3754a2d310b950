"""What a call's ending says about the upstream: success, failure, or nothing."""

from __future__ import annotations

from llmrelay.core.errors import CircuitOpenError, LLMRelayError, RateLimitError

__all__ = ["Outcome", "classify"]


class Outcome:
    # Compared by identity on the hot path: always use these constants.
    SUCCESS = "success"  # the upstream answered (client errors included: it is up)
    FAILURE = "failure"  # the upstream is not answering (availability errors)
    IGNORED = "ignored"  # says nothing about the upstream (a bug, KeyboardInterrupt, our own rejection)


def classify(error: BaseException | None, *, count_rate_limits: bool = True) -> str:
    """What a call's ending says about the upstream's availability.

    Only ``error.availability`` errors are failures: timeouts, connection
    errors, 5xx, interrupted streams, and 429 unless ``count_rate_limits``
    is off. A 400/401/402/403/404 means the service answered, so it counts
    as a success and resets the consecutive-failure count.
    """
    if error is None:
        return Outcome.SUCCESS
    if isinstance(error, CircuitOpenError):
        return Outcome.IGNORED  # a breaker further in rejected it; the upstream was not asked
    if isinstance(error, LLMRelayError):
        if not error.availability:
            return Outcome.SUCCESS
        if isinstance(error, RateLimitError) and not count_rate_limits:
            return Outcome.SUCCESS
        return Outcome.FAILURE
    return Outcome.IGNORED
