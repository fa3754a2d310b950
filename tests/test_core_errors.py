"""One error hierarchy: typed, carrying what a caller needs, never carrying a key."""

from __future__ import annotations

import logging
import pickle

import pytest
from llmrelay.core import errors
from llmrelay.core.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    CapabilityNotSupportedError,
    CircuitOpenError,
    ConfigurationError,
    InvalidResponseError,
    LLMRelayError,
    ModelNotFoundError,
    NotFoundError,
    PaymentRequiredError,
    PermissionDeniedError,
    PluginLoadError,
    ProviderError,
    RateLimitError,
    ServerError,
    StreamInterruptedError,
    UnknownProviderError,
    error_for_status,
)

KEY = "sk-or-v1-" + "0123456789abcdef" * 4


def test_every_error_is_an_llmrelay_error_and_the_tree_is_as_documented() -> None:
    parents = {
        ConfigurationError: LLMRelayError,
        UnknownProviderError: ConfigurationError,
        PluginLoadError: LLMRelayError,
        CapabilityNotSupportedError: LLMRelayError,
        CircuitOpenError: LLMRelayError,
        ProviderError: LLMRelayError,
        APIConnectionError: ProviderError,
        APITimeoutError: ProviderError,
        StreamInterruptedError: ProviderError,
        InvalidResponseError: ProviderError,
        APIStatusError: ProviderError,
        BadRequestError: APIStatusError,
        AuthenticationError: APIStatusError,
        PaymentRequiredError: APIStatusError,
        PermissionDeniedError: APIStatusError,
        NotFoundError: APIStatusError,
        ModelNotFoundError: NotFoundError,
        RateLimitError: APIStatusError,
        ServerError: APIStatusError,
    }
    for cls, parent in parents.items():
        assert cls.__bases__ == (parent,), cls
        # The module docstring draws the same tree.
        assert cls.__name__ in errors.__doc__
    exported = {getattr(errors, name) for name in errors.__all__ if name != "error_for_status"}
    assert exported == set(parents) | {LLMRelayError}


AVAILABILITY = {
    CircuitOpenError,
    APIConnectionError,
    APITimeoutError,
    StreamInterruptedError,
    RateLimitError,
    ServerError,
}


@pytest.mark.parametrize(
    "cls",
    [
        ConfigurationError,
        PluginLoadError,
        CircuitOpenError,
        APIConnectionError,
        APITimeoutError,
        StreamInterruptedError,
        InvalidResponseError,
        BadRequestError,
        AuthenticationError,
        PaymentRequiredError,
        PermissionDeniedError,
        NotFoundError,
        ModelNotFoundError,
        RateLimitError,
        ServerError,
    ],
)
def test_only_the_service_is_not_answering_errors_have_the_availability_flag(cls: type[LLMRelayError]) -> None:
    error = cls("x")
    assert error.availability is (cls in AVAILABILITY)


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (402, PaymentRequiredError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (408, ServerError),
        (413, BadRequestError),
        (422, BadRequestError),
        (429, RateLimitError),
        (418, BadRequestError),
        (500, ServerError),
        (502, ServerError),
        (529, ServerError),
    ],
)
def test_error_for_status_picks_the_type(status: int, cls: type[APIStatusError]) -> None:
    error = error_for_status(status, "upstream said no", provider="openrouter", request_id="req-1")
    assert type(error) is cls
    assert error.status == status
    assert error.provider == "openrouter"
    assert error.request_id == "req-1"


def test_retry_after_is_carried_for_rate_limits_and_server_errors() -> None:
    limited = error_for_status(429, "slow down", retry_after=2.5)
    assert isinstance(limited, RateLimitError) and limited.retry_after == 2.5
    busy = error_for_status(503, "busy", retry_after=7)
    assert isinstance(busy, ServerError) and busy.retry_after == 7
    assert CircuitOpenError("open", retry_after=30.0, provider="p").retry_after == 30.0


def test_str_names_provider_status_and_generation() -> None:
    error = ServerError("upstream failed", provider="openrouter", status=502, request_id="req-9", generation_id="gen-9")
    assert str(error) == "[openrouter] upstream failed (HTTP 502) (generation gen-9)"
    only_request = BadRequestError("bad", provider="p", status=400, request_id="req-9")
    assert str(only_request) == "[p] bad (HTTP 400) (request req-9)"
    assert str(ConfigurationError("missing key")) == "missing key"
    assert repr(error) == (
        "ServerError('upstream failed', provider='openrouter', status=502, request_id='req-9', generation_id='gen-9')"
    )


def test_stream_interrupted_keeps_the_upstream_code() -> None:
    error = StreamInterruptedError("provider error mid-stream", upstream_code=502, provider="p", generation_id="g")
    assert error.upstream_code == 502
    assert error.generation_id == "g"


def test_capability_not_supported_names_the_capability_and_how_to_check() -> None:
    error = CapabilityNotSupportedError("embeddings", provider="openrouter")
    assert error.capability == "embeddings"
    assert str(error) == (
        "[openrouter] embeddings is not supported by this provider (check `provider.capabilities` before calling)"
    )


def test_unknown_provider_lists_installed_ones_with_a_suggestion() -> None:
    error = UnknownProviderError("openrouer", ["openrouter", "echo"], "openrouter")
    assert str(error) == (
        "unknown provider 'openrouer'. Did you mean 'openrouter'? Installed providers: echo, openrouter. "
        "Install the package that provides it, or run `llmrelay providers`."
    )
    assert error.available == ["echo", "openrouter"]


@pytest.mark.parametrize(
    "error",
    [
        ServerError("boom", provider="p", status=503, retry_after=1.5, request_id="r", generation_id="g"),
        RateLimitError("slow", provider="p", status=429, retry_after=3.0, body={"error": {"code": 429}}),
        StreamInterruptedError("cut", upstream_code="overloaded", provider="p"),
        CircuitOpenError("open", retry_after=4.0, provider="p"),
        UnknownProviderError("x", ["a", "b"], "a"),
        CapabilityNotSupportedError("credits", provider="p"),
        ConfigurationError("bad"),
    ],
)
def test_errors_survive_pickling_with_every_attribute(error: LLMRelayError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert copy.__dict__ == error.__dict__
    assert copy.availability is error.availability


def test_a_key_in_a_message_or_body_never_reaches_str_repr_args_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    # An upstream that echoes the request's Authorization header back in its error.
    error = error_for_status(
        401,
        f"Invalid credentials: Bearer {KEY} (see https://x.test/?key={KEY})",
        provider="openrouter",
        body={"error": {"message": f"key {KEY} is disabled", "metadata": [f"Authorization: Bearer {KEY}"]}},
    )
    assert isinstance(error, AuthenticationError)
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("llmrelay.test").debug("call failed: %r", error, exc_info=error)
    shown = [
        str(error),
        repr(error),
        str(error.args),
        repr(error.body),
        caplog.text,
        pickle.dumps(error).decode("latin-1"),
    ]
    for text in shown:
        assert KEY not in text
        assert "sk-or-v1-0123" not in text
    assert "Invalid credentials: Bearer ***" in str(error)


@pytest.mark.parametrize(
    "cls", [ConfigurationError, PluginLoadError, APIConnectionError, StreamInterruptedError, ServerError]
)
def test_every_error_type_redacts(cls: type[LLMRelayError]) -> None:
    error = cls(f"failed with sk-proj-{'A' * 40}")
    assert "AAAA" not in str(error) and "AAAA" not in repr(error)
