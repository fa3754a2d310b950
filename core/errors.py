"""Every error llmrelay raises, in one place.

Foreign exceptions (requests, urllib3, json, pydantic, redis) are mapped to
this hierarchy at the boundary where they occur; nothing else escapes a
provider call. Catch :class:`LLMRelayError` to catch everything::

    LLMRelayError                      base; .provider, .status, .request_id, .generation_id, .attempts
    ├── ConfigurationError             bad or missing settings; raised before any network I/O
    │   └── UnknownProviderError       no installed provider has that name (.available, .suggestion)
    ├── PluginLoadError                an entry point failed to load (strict mode only)
    ├── CapabilityNotSupportedError    the provider lacks an optional capability (credits, embeddings...)
    ├── CircuitOpenError               breaker open: failed fast, no network (.retry_after)    [availability]
    └── ProviderError                  the upstream call failed
        ├── APIConnectionError         could not connect, or the connection dropped           [availability]
        ├── APITimeoutError            connect or read timeout, or a deadline passed          [availability]
        ├── StreamInterruptedError     a stream broke after it started (.upstream_code)       [availability]
        ├── InvalidResponseError       the body was not what the API promises (HTML, bad JSON)
        └── APIStatusError             the service answered with an HTTP error (.status, .body)
            ├── BadRequestError        400, 413, 422
            ├── AuthenticationError    401
            ├── PaymentRequiredError   402: out of credits or over the key's limit
            ├── PermissionDeniedError  403: moderation, region, key kind
            ├── NotFoundError          404
            │   └── ModelNotFoundError 404 naming a model
            ├── RateLimitError         429 (.retry_after)                                     [availability]
            └── ServerError            408, 5xx (.status)                                    [availability]

``[availability]`` errors say "the service is not answering right now":
``error.availability`` is True for them. The retry policy, the cache's
stale-if-error, the circuit breaker and fallback chains all act on this
flag and never on client errors, so a bad request or a bad key is never
masked by stale data nor retried.

No message, ``repr`` or attribute of these errors contains an API key:
messages are built from status codes and the service's own error text, and
every message (and an :class:`APIStatusError`'s ``body``) is passed through
:func:`llmrelay.core.secrets.redact` when the error is created.
"""

from __future__ import annotations

from typing import Any

from .secrets import redact

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "CapabilityNotSupportedError",
    "CircuitOpenError",
    "ConfigurationError",
    "InvalidResponseError",
    "LLMRelayError",
    "ModelNotFoundError",
    "NotFoundError",
    "PaymentRequiredError",
    "PermissionDeniedError",
    "PluginLoadError",
    "ProviderError",
    "RateLimitError",
    "ServerError",
    "StreamInterruptedError",
    "UnknownProviderError",
    "error_for_status",
]


class LLMRelayError(Exception):
    """Base of every llmrelay error.

    ``attempts`` is how many attempts the failed call made: the retry policy
    sets it on the error it gives up with (1 when the error was not retried).
    """

    availability: bool = False
    attempts: int = 1

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        status: int | None = None,
        request_id: str | None = None,
        generation_id: str | None = None,
    ) -> None:
        # Second line of defence: a message built from an upstream body or a
        # URL may carry something shaped like a key.
        message = redact(message)
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.status = status
        self.request_id = request_id
        self.generation_id = generation_id

    def __str__(self) -> str:
        parts = []
        if self.provider:
            parts.append(f"[{self.provider}]")
        parts.append(self.message)
        if self.status is not None and self.status > 0:
            parts.append(f"(HTTP {self.status})")
        if self.generation_id:
            parts.append(f"(generation {self.generation_id})")
        elif self.request_id:
            parts.append(f"(request {self.request_id})")
        return " ".join(parts)

    def __repr__(self) -> str:
        fields = [f"{self.message!r}"]
        for name in ("provider", "status", "request_id", "generation_id"):
            value = getattr(self, name)
            if value is not None:
                fields.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(fields)})"

    def __reduce__(self) -> Any:
        # Keyword-only attributes survive pickling (multiprocessing, caches).
        return (_rebuild, (type(self), self.message, dict(self.__dict__)))


def _rebuild(cls: type[LLMRelayError], message: str, state: dict[str, Any]) -> LLMRelayError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class ConfigurationError(LLMRelayError):
    """Settings are missing or invalid. Raised before any network call."""


class UnknownProviderError(ConfigurationError):
    """No installed provider is registered under the requested name."""

    def __init__(self, name: str, available: list[str], suggestion: str | None = None) -> None:
        hint = f" Did you mean {suggestion!r}?" if suggestion else ""
        listed = ", ".join(sorted(available)) or "none"
        super().__init__(
            f"unknown provider {name!r}.{hint} Installed providers: {listed}. "
            "Install the package that provides it, or run `llmrelay providers`."
        )
        self.name = name
        self.available = sorted(available)
        self.suggestion = suggestion


class PluginLoadError(LLMRelayError):
    """An entry point could not be loaded and strict plugin loading is on."""


class CapabilityNotSupportedError(LLMRelayError):
    """The provider does not offer this optional operation."""

    def __init__(self, capability: str, *, provider: str | None = None) -> None:
        super().__init__(
            f"{capability!s} is not supported by this provider (check `provider.capabilities` before calling)",
            provider=provider,
        )
        self.capability = capability


class CircuitOpenError(LLMRelayError):
    """The circuit breaker is open: the call failed fast without network I/O."""

    availability = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ProviderError(LLMRelayError):
    """The upstream service call failed."""


class APIConnectionError(ProviderError):
    """The connection could not be made, or it dropped before a response."""

    availability = True


class APITimeoutError(ProviderError):
    """A connect, read or stream-idle timeout, or the call's total deadline."""

    availability = True


class StreamInterruptedError(ProviderError):
    """A stream broke after it had started delivering chunks.

    Raised for a dropped connection, a stall past the idle timeout, or an
    ``error`` event the service sent inside an HTTP 200 stream; in the last
    case ``upstream_code`` holds the code the service gave. The chunks before
    the error were already delivered to the caller.
    """

    availability = True

    def __init__(self, message: str, *, upstream_code: Any = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.upstream_code = upstream_code


class InvalidResponseError(ProviderError):
    """The service answered, but not with what its API promises."""


class APIStatusError(ProviderError):
    """The service answered with an HTTP error status."""

    def __init__(self, message: str, *, body: Any = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.body = _redact_value(body)


class BadRequestError(APIStatusError):
    """400 / 413 / 422: the request itself is wrong; retrying will not help."""


class AuthenticationError(APIStatusError):
    """401: the API key is missing, invalid, disabled or expired."""


class PaymentRequiredError(APIStatusError):
    """402: out of credits, or the key's spending limit is reached."""


class PermissionDeniedError(APIStatusError):
    """403: refused for this key, region or content."""


class NotFoundError(APIStatusError):
    """404: no such resource."""


class ModelNotFoundError(NotFoundError):
    """404 for a model id the service does not know."""


class RateLimitError(APIStatusError):
    """429: slow down; ``retry_after`` is the wait the service asked for, in seconds."""

    availability = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ServerError(APIStatusError):
    """408 or 5xx: the service or an upstream behind it failed."""

    availability = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


def _redact_value(value: Any) -> Any:
    """``redact`` applied to every string inside a decoded JSON body."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: _redact_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_redact_value(item) for item in value]
    return value


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    402: PaymentRequiredError,
    403: PermissionDeniedError,
    404: NotFoundError,
    408: ServerError,
    413: BadRequestError,
    422: BadRequestError,
    429: RateLimitError,
}


def error_for_status(
    status: int,
    message: str,
    *,
    retry_after: float | None = None,
    **kwargs: Any,
) -> APIStatusError:
    """The typed error for an HTTP error status."""
    cls = _BY_STATUS.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else BadRequestError
    if cls is RateLimitError or cls is ServerError:
        return cls(message, status=status, retry_after=retry_after, **kwargs)
    return cls(message, status=status, **kwargs)
