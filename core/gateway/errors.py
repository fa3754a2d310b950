"""llmrelay's errors as each protocol's error responses: status, body, ``Retry-After``.

The message is the error's own ``str()``, which llmrelay redacts when the
error is made; no traceback and no request content ever reach a client.

An upstream's refusal of *the gateway's* credentials (401) is a 502: the
client's own key was accepted, and answering 401 would tell it to fix a key
it does not hold.
"""

from __future__ import annotations

from typing import Any

from ..errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    CapabilityNotSupportedError,
    CircuitOpenError,
    ConfigurationError,
    InvalidResponseError,
    LLMRelayError,
    NotFoundError,
    PaymentRequiredError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    StreamInterruptedError,
)

__all__ = ["anthropic_error_body", "classify", "openai_error_body"]

# (status, OpenAI error type, Anthropic error type)
_ANTHROPIC_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}

_OPENAI_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_quota",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}


def classify(error: BaseException) -> tuple[int, float | None]:
    """The HTTP status to answer with and the ``Retry-After`` seconds, if any."""
    retry_after = getattr(error, "retry_after", None)
    if isinstance(error, CircuitOpenError):
        return 503, retry_after
    if isinstance(error, AuthenticationError):
        return 502, None
    if isinstance(error, RateLimitError):
        return 429, retry_after
    if isinstance(error, ServerError):
        status = error.status or 502
        return (status if status >= 500 else 502), retry_after
    if isinstance(error, (PaymentRequiredError, PermissionDeniedError, NotFoundError)):
        return error.status or 400, None
    if isinstance(error, APIStatusError):
        return (error.status if error.status and 400 <= error.status < 500 else 400), None
    if isinstance(error, APITimeoutError):
        return 504, None
    if isinstance(error, (APIConnectionError, StreamInterruptedError, InvalidResponseError)):
        return 502, None
    if isinstance(error, (ConfigurationError, CapabilityNotSupportedError)):
        return 400, None
    if isinstance(error, LLMRelayError):
        return 502, None
    return 500, None


def _message(error: BaseException) -> str:
    if isinstance(error, LLMRelayError):
        return str(error)
    return "internal error in the gateway (see its log)"


def openai_error_body(error: BaseException, status: int | None = None) -> tuple[int, dict[str, Any], float | None]:
    code, retry_after = classify(error)
    status = status or code
    kind = _OPENAI_BY_STATUS.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return status, {"error": {"message": _message(error), "type": kind, "param": None, "code": kind}}, retry_after


def anthropic_error_body(error: BaseException, status: int | None = None) -> tuple[int, dict[str, Any], float | None]:
    code, retry_after = classify(error)
    status = status or code
    kind = _ANTHROPIC_BY_STATUS.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return status, {"type": "error", "error": {"type": kind, "message": _message(error)}}, retry_after
