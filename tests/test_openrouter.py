"""OpenRouterProvider against a MockTransport, fed with real recorded bodies where they exist."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from llmrelay.core.errors import (
    APIConnectionError,
    AuthenticationError,
    BadRequestError,
    CapabilityNotSupportedError,
    ConfigurationError,
    InvalidResponseError,
    ModelNotFoundError,
    NotFoundError,
    PaymentRequiredError,
    RateLimitError,
    ServerError,
    StreamInterruptedError,
)
from llmrelay.core.http.transport import HTTPRequest, HTTPResponse, MockTransport
from llmrelay.providers.openrouter import CreditsNotAvailableError, OpenRouterProvider

SAMPLES = Path(__file__).parent / "data" / "openrouter_samples"
KEY = "sk-or-v1-0123456789abcdef0123456789abcdef0123456789abcdef"
HI = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def sample(name: str) -> Any:
    return json.loads((SAMPLES / name).read_text())


def make(
    handler: Callable[[HTTPRequest], HTTPResponse], **settings: Any
) -> tuple[OpenRouterProvider, MockTransport, list[float]]:
    sleeps: list[float] = []
    transport = MockTransport(handler)
    provider = OpenRouterProvider(api_key=KEY, transport=transport, sleep=sleeps.append, **settings)
    return provider, transport, sleeps


def answer(status: int, body: Any, headers: dict[str, str] | None = None) -> HTTPResponse:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return HTTPResponse(status, {"content-type": "application/json", **(headers or {})}, data)


def replies(*responses: HTTPResponse) -> Callable[[HTTPRequest], HTTPResponse]:
    queue = list(responses)
    return lambda request: queue.pop(0)


def sse(body: bytes, pieces: int = 7) -> HTTPResponse:
    size = max(1, len(body) // pieces)
    chunks = [body[i : i + size] for i in range(0, len(body), size)]
    return HTTPResponse(200, {"content-type": "text/event-stream"}, stream=iter(chunks))


# --------------------------------------------------------------------------- execute


def test_execute_parses_a_real_response_with_cost_and_serving_provider() -> None:
    recorded = sample("chat_usage_2025.json")
    provider, _, _ = make(replies(answer(200, recorded["response"])))
    reply = provider.execute(recorded["request"])
    assert reply.text and reply.finish_reason == "stop"
    assert reply.usage is not None and reply.usage.cost is not None and reply.usage.cost > 0
    assert reply.usage.reasoning_tokens is not None
    assert reply.served_by == recorded["response"]["provider"]
    assert reply.provider == "openrouter" and reply.id.startswith("gen-")


def test_request_carries_key_usage_include_and_attribution_headers() -> None:
    provider, transport, _ = make(
        replies(answer(200, sample("chat_usage_2025.json")["response"])),
        app_url="https://myapp.example",
        app_title="My App",
    )
    provider.execute(HI)
    sent = transport.requests[0]
    assert sent.url == "https://openrouter.ai/api/v1/chat/completions" and sent.method == "POST"
    assert sent.headers["Authorization"] == f"Bearer {KEY}"
    assert sent.headers["HTTP-Referer"] == "https://myapp.example"
    assert sent.headers["X-OpenRouter-Title"] == "My App" and sent.headers["X-Title"] == "My App"
    assert json.loads(sent.body)["usage"] == {"include": True}


def test_openrouter_extensions_pass_through_unchanged() -> None:
    recorded = sample("chat_native_options_2025.json")
    provider, transport, _ = make(replies(answer(200, recorded["response"])))
    request = {
        "model": "google/gemini-2.0-flash-001",
        "messages": [{"role": "user", "content": "hi"}],
        "models": ["x-ai/grok-4"],
        "provider": {"only": ["xai"], "data_collection": "deny"},
        "transforms": ["middle-out"],
        "plugins": [{"id": "context-compression"}],
        "reasoning": {"effort": "low"},
        "extra_body": {"top_k": 3},
    }
    reply = provider.execute(request)
    body = json.loads(transport.requests[0].body)
    for key in ("models", "provider", "transforms", "plugins", "reasoning"):
        assert body[key] == request[key]
    assert body["top_k"] == 3 and "extra_body" not in body
    assert reply.model == "x-ai/grok-4" and reply.served_by == "xAI"  # the fallback model served it


def test_tool_call_response() -> None:
    recorded = sample("chat_tool_calling_2025.json")
    provider, _, _ = make(replies(answer(200, recorded["response"])))
    reply = provider.execute(recorded["request"])
    assert reply.finish_reason == "tool_calls"
    assert reply.tool_calls and json.loads(reply.tool_calls[0].function.arguments) is not None


def test_whitespace_padded_body_and_unknown_finish_reason() -> None:
    body = sample("chat_usage_2025.json")["response"]
    body["choices"][0]["finish_reason"] = "brand_new_reason"
    padded = b"\n   \n\n" + json.dumps(body).encode()
    provider, _, _ = make(replies(answer(200, padded)))
    assert provider.execute(HI).finish_reason == "brand_new_reason"


def test_error_object_inside_a_200_body_is_a_typed_error_and_retried() -> None:
    failed = b"\n\n" + json.dumps({"error": {"code": 502, "message": "Upstream died"}}).encode()
    provider, transport, sleeps = make(
        replies(answer(200, failed), answer(200, sample("chat_usage_2025.json")["response"]))
    )
    reply = provider.execute(HI)
    assert reply.text and reply.meta.attempts == 2
    assert len(transport.requests) == 2 and len(sleeps) == 1


def test_real_429_body_is_retried_then_raised_with_upstream_detail() -> None:
    body = sample("error_429_2025.json")["response"]
    provider, transport, sleeps = make(replies(*(answer(429, body, {"Retry-After": "1"}) for _ in range(3))))
    with pytest.raises(RateLimitError) as caught:
        provider.execute(HI)
    assert len(transport.requests) == 3 and sleeps == [1.0, 1.0]
    error = caught.value
    assert error.attempts == 3
    assert error.status == 429 and error.provider == "openrouter" and error.retry_after == 1.0
    assert "Provider returned error" in str(error) and "rate-limited upstream" in str(error)


@pytest.mark.parametrize(
    ("status", "error_type"),
    [(400, BadRequestError), (401, AuthenticationError), (402, PaymentRequiredError), (404, NotFoundError)],
)
def test_client_errors_raise_at_once(status: int, error_type: type[Exception]) -> None:
    provider, transport, sleeps = make(replies(answer(status, {"error": {"code": status, "message": "nope"}})))
    with pytest.raises(error_type):
        provider.execute(HI)
    assert len(transport.requests) == 1 and sleeps == []


def test_404_naming_the_model_is_model_not_found() -> None:
    provider, _, _ = make(
        replies(answer(404, {"error": {"code": 404, "message": "No endpoints found for openai/gpt-4o-mini."}}))
    )
    with pytest.raises(ModelNotFoundError, match="openai/gpt-4o-mini"):
        provider.execute(HI)


def test_html_error_page_and_empty_body() -> None:
    html = HTTPResponse(
        502,
        {"content-type": "text/html", "cf-ray": "abc-LHR"},
        b"<html><head><title>502 Bad Gateway</title></head></html>",
    )
    provider, _, _ = make(replies(html, html, html), retry={"max_attempts": 3})
    with pytest.raises(ServerError, match=r"HTML page.*502 Bad Gateway") as caught:
        provider.execute(HI)
    assert caught.value.request_id == "abc-LHR"
    provider, _, _ = make(replies(answer(200, b"")))
    with pytest.raises(InvalidResponseError, match="empty body"):
        provider.execute(HI)


def test_key_echoed_by_the_service_is_redacted() -> None:
    provider, _, _ = make(replies(answer(401, {"error": {"code": 401, "message": f"Invalid key Bearer {KEY}"}})))
    with pytest.raises(AuthenticationError) as caught:
        provider.execute(HI)
    assert KEY not in str(caught.value) and KEY not in repr(caught.value) and KEY not in json.dumps(caught.value.body)


def test_bad_request_input_is_a_typed_error_before_any_network() -> None:
    provider, transport, _ = make(replies())
    with pytest.raises(BadRequestError, match="messages"):
        provider.execute({"model": "m", "messages": []})
    with pytest.raises(ConfigurationError, match="default_model"):
        provider.execute({"messages": [{"role": "user", "content": "x"}]})
    no_key = OpenRouterProvider(transport=transport)
    with pytest.raises(ConfigurationError, match="OPENROUTER_API_KEY"):
        no_key.execute(HI)
    assert transport.requests == []


def test_default_model_fills_in() -> None:
    provider, transport, _ = make(replies(answer(200, sample("chat_usage_2025.json")["response"])), default_model="a/b")
    provider.execute({"messages": [{"role": "user", "content": "x"}]})
    assert json.loads(transport.requests[0].body)["model"] == "a/b"


def test_repr_never_shows_the_key() -> None:
    provider, _, _ = make(replies())
    assert KEY not in repr(provider) and KEY not in repr(provider.settings)


# --------------------------------------------------------------------------- streaming


def test_stream_error_recording_delivers_chunks_then_raises_upstream_error() -> None:
    provider, transport, _ = make(replies(sse((SAMPLES / "stream_error_2025.sse").read_bytes())))
    stream = provider.stream_execute(HI)
    seen = []
    with pytest.raises(StreamInterruptedError, match="Token limit reached") as caught:
        for chunk in stream:
            seen.append(chunk)
    assert caught.value.upstream_code == 400
    assert "".join(c.reasoning for c in seen).startswith("We need")
    assert stream.finish_reason == "length" and stream.usage is not None  # usage of the failed call kept
    assert stream.outcome == "failed"
    assert json.loads(transport.requests[0].body)["stream"] is True


def test_stream_tool_call_fragments_assemble_by_index() -> None:
    provider, _, _ = make(replies(sse((SAMPLES / "stream_tool_calls_2025.sse").read_bytes(), pieces=23)))
    final = provider.stream_execute(HI).final_response()
    assert final.finish_reason == "tool_calls"
    call = final.tool_calls[0]
    assert call.id and call.function.name
    json.loads(call.function.arguments)
    assert final.usage is not None and final.usage.cost is not None


def test_stream_2024_end_turn_is_normalized_and_text_assembled() -> None:
    provider, _, _ = make(replies(sse((SAMPLES / "stream_end_turn_2024.sse").read_bytes(), pieces=50)))
    final = provider.stream_execute(HI).final_response()
    assert final.finish_reason == "stop" and final.native_finish_reason == "end_turn" and final.text


def test_stream_usage_taken_from_the_usage_chunk_and_finish_not_overwritten() -> None:
    provider, _, _ = make(replies(sse((SAMPLES / "stream_native_options_2025.sse").read_bytes(), pieces=31)))
    stream = provider.stream_execute(HI)
    final = stream.final_response()
    assert final.finish_reason == "stop" and final.usage is not None and final.usage.prompt_tokens > 0
    assert final.served_by == "xAI" and stream.completed


def test_stream_http_error_before_first_chunk_is_retried() -> None:
    body = (SAMPLES / "stream_native_options_2025.sse").read_bytes()
    provider, transport, sleeps = make(replies(answer(503, {"error": {"code": 503, "message": "busy"}}), sse(body)))
    stream = provider.stream_execute(HI)
    assert stream.meta.attempts == 2
    final = stream.final_response()
    assert final.text and final.meta.attempts == 2
    assert len(transport.requests) == 2 and len(sleeps) == 1


def test_stream_stopped_early_closes_the_response() -> None:
    closed: list[bool] = []
    body = (SAMPLES / "stream_native_options_2025.sse").read_bytes()
    response = HTTPResponse(200, {}, stream=iter([body[:2000], body[2000:]]), on_close=lambda: closed.append(True))
    provider, _, _ = make(replies(response))
    with provider.stream_execute(HI) as stream:
        next(stream)
    assert closed == [True] and stream.outcome == "cancelled"


def test_stream_ending_without_done_or_finish_is_interrupted() -> None:
    provider, _, _ = make(replies(sse(b'data: {"id":"g","choices":[{"delta":{"content":"Hel"}}]}\n\n')))
    stream = provider.stream_execute(HI)
    with pytest.raises(StreamInterruptedError, match="before the service said it was done"):
        list(stream)
    assert stream.text == "Hel"


# --------------------------------------------------------------------------- models


@pytest.mark.parametrize("name", ["models_2024.json", "models_2025.json", "models_2026.json"])
def test_list_models_handles_every_recorded_shape(name: str) -> None:
    payload = sample(name)
    provider, transport, _ = make(replies(answer(200, payload)))
    models = provider.list_models()
    assert len(models) == len(payload["data"]) and not models.fallback
    for info in models:
        assert info.id and "text" in info.input_modalities
    assert transport.requests[0].url.endswith("/models")


def test_model_quirks_minus_one_zero_and_nulls() -> None:
    provider, _, _ = make(replies(answer(200, sample("models_2025.json"))))
    models = provider.list_models()
    auto = models.get("openrouter/auto")
    assert auto is not None and auto.pricing.is_unknown and auto.pricing.prompt_per_million is None
    free = next(m for m in models if m.id.endswith(":free"))
    assert free.pricing.is_free and free.pricing.prompt_per_million == 0
    assert any(m.max_completion_tokens is None for m in models)


def test_model_2026_shape_details() -> None:
    payload = sample("models_2026.json")
    provider, _, _ = make(replies(answer(200, payload)))
    models = provider.list_models()
    assert models.total_count == payload["total_count"]  # type: ignore[attr-defined]
    sonnet = models.get("anthropic/claude-sonnet-4")
    assert sonnet is not None
    assert sonnet.pricing.prompt == Decimal("0.000003") and sonnet.pricing.prompt_per_million == Decimal("3")
    assert sonnet.pricing.input_cache_read == Decimal("0.0000003")
    assert sonnet.supports_tools and sonnet.supports_images and sonnet.context_length == 1000000


def test_2024_modality_string_becomes_modalities() -> None:
    provider, _, _ = make(replies(answer(200, sample("models_2024.json"))))
    models = provider.list_models()
    assert all(m.output_modalities == ["text"] for m in models)


def test_list_models_follows_next_links_on_the_same_host_only() -> None:
    page1 = {
        "data": [{"id": "a/one", "pricing": {"prompt": "0", "completion": "0"}}],
        "total_count": 2,
        "links": {"next": "https://openrouter.ai/api/v1/models?offset=1&limit=1"},
    }
    page2 = {
        "data": [{"id": "a/two", "pricing": {"prompt": "0", "completion": "0"}}],
        "total_count": 2,
        "links": {"next": "https://elsewhere.example/models?offset=2"},
    }
    provider, transport, _ = make(replies(answer(200, page1), answer(200, page2)))
    assert provider.list_models().ids == ["a/one", "a/two"]
    assert transport.requests[1].url == "https://openrouter.ai/api/v1/models?offset=1&limit=1"
    assert len(transport.requests) == 2


def test_a_paged_model_list_counts_the_attempts_of_every_page() -> None:
    page1 = {
        "data": [{"id": "a/one", "pricing": {"prompt": "0", "completion": "0"}}],
        "links": {"next": "https://openrouter.ai/api/v1/models?offset=1"},
    }
    page2 = {"data": [{"id": "a/two", "pricing": {"prompt": "0", "completion": "0"}}]}
    busy = answer(503, {"error": {"code": 503, "message": "busy"}})
    provider, _, sleeps = make(replies(answer(200, page1), busy, answer(200, page2)))
    models = provider.list_models()
    assert models.ids == ["a/one", "a/two"] and len(sleeps) == 1
    assert models.meta.attempts == 2  # the first attempt and the one retry (metrics counts retries from it)


def test_a_malformed_model_entry_does_not_hide_the_rest() -> None:
    payload = {"data": [{"id": "ok/model", "pricing": {"prompt": "0.1", "completion": "x"}}, {"name": "no id"}, "junk"]}
    provider, _, _ = make(replies(answer(200, payload)))
    models = provider.list_models()
    assert models.ids == ["ok/model"] and models[0].pricing.completion is None


# --------------------------------------------------------------------------- key, credits, generations


def key_reply(**fields: Any) -> HTTPResponse:
    data = {"label": "sk-or-v1-0fa...240", "limit": None, "limit_remaining": None, "usage": 1.5, "is_free_tier": False}
    data.update(fields)
    return answer(200, {"data": data})


def test_validate_config_valid_reports_label_limit_usage() -> None:
    provider, transport, _ = make(replies(key_reply(limit=10, limit_remaining=8.5)))
    report = provider.validate_config()
    assert report.ok and report.key_label == "sk-or-v1-0fa...240"
    assert report.limit == Decimal("10") and report.usage == Decimal("1.5") and report.limit_remaining == Decimal("8.5")
    assert transport.requests[0].url.endswith("/key")


def test_validate_config_three_failure_outcomes() -> None:
    provider, _, _ = make(replies(answer(401, {"error": {"code": 401, "message": "User not found."}})))
    report = provider.validate_config()
    assert report.outcome == "invalid_key" and "rejected the API key" in report.message and KEY not in report.message

    provider, _, _ = make(replies(key_reply(limit=5, limit_remaining=0, usage=5)))
    report = provider.validate_config()
    assert report.outcome == "no_credits" and "limit is used up" in report.message

    def unreachable(request: HTTPRequest) -> HTTPResponse:
        raise APIConnectionError("connection to openrouter.ai failed: Name or service not known")

    provider, _, sleeps = make(unreachable)
    report = provider.validate_config()
    assert report.outcome == "unreachable" and "could not reach OpenRouter" in report.message
    assert len(sleeps) == 2  # retried like any call before concluding


def test_validate_config_catches_config_problems_before_the_network() -> None:
    transport = MockTransport(replies())
    for settings, expected in [({}, "api_key is not set"), ({"api_key": " sk-or-v1-x y"}, "whitespace")]:
        report = OpenRouterProvider(transport=transport, **settings).validate_config()
        assert report.outcome == "config_error" and expected in report.message
    assert transport.requests == []


def test_invalid_settings_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="app_url"):
        OpenRouterProvider(api_key=KEY, app_url="myapp")
    with pytest.raises(ConfigurationError, match="timeout"):
        OpenRouterProvider(api_key=KEY, timeout={"connect": -1})


def test_credits_and_the_403_for_ordinary_keys() -> None:
    provider, _, _ = make(replies(answer(200, {"data": {"total_credits": 20, "total_usage": 4.25}})))
    credits = provider.get_credits()
    assert credits.remaining == Decimal("15.75") and credits.meta.attempts == 1
    forbidden = {"error": {"message": "Only management keys can fetch credits for an account", "code": 403}}
    provider, transport, sleeps = make(replies(answer(403, forbidden)))
    with pytest.raises(CreditsNotAvailableError, match="not available for this key") as caught:
        provider.get_credits()
    assert isinstance(caught.value, CapabilityNotSupportedError) and not caught.value.availability
    assert len(transport.requests) == 1 and sleeps == []


def test_generation_stats_retry_the_brief_404_window() -> None:
    missing = answer(404, {"error": {"code": 404, "message": "Generation not found"}})
    found = answer(
        200,
        {
            "data": {
                "id": "gen-1",
                "model": "openai/gpt-4o-mini",
                "total_cost": 0.0012,
                "tokens_prompt": 10,
                "latency": 400,
                "provider_name": "OpenAI",
                "unknown_new": 1,
            }
        },
    )
    provider, transport, sleeps = make(replies(missing, missing, found))
    stats = provider.get_generation_stats("gen-1")
    assert stats.id == "gen-1" and stats.total_cost == Decimal("0.0012") and stats.provider_name == "OpenAI"
    assert transport.requests[0].url.endswith("/generation?id=gen-1") and len(sleeps) == 2
    assert stats.meta.attempts == 3


def test_generation_stats_404_gives_up_after_the_window() -> None:
    missing = answer(404, {"error": {"code": 404, "message": "Generation not found"}})
    clock = [0.0]

    def sleep(seconds: float) -> None:
        clock[0] += seconds

    provider = OpenRouterProvider(
        api_key=KEY,
        transport=MockTransport(lambda r: missing),
        sleep=sleep,
        clock=lambda: clock[0],
        generation_wait_seconds=3,
    )
    with pytest.raises(NotFoundError):
        provider.get_generation_stats("gen-404")
    assert clock[0] <= 3


def test_generation_stats_needs_an_id() -> None:
    provider, _, _ = make(replies())
    with pytest.raises(ConfigurationError, match="generation id"):
        provider.get_generation_stats("  ")


def test_an_openai_compatible_provider_with_openrouters_own_rules() -> None:
    from llmrelay.providers.openai_compat import OpenAICompatibleProvider

    provider, transport, _ = make(replies())
    assert isinstance(provider, OpenAICompatibleProvider)
    # OpenRouter serves /embeddings through the inherited code path (tests/test_openrouter_embeddings.py).
    assert provider.supports("embeddings")
    # Unlike a local OpenAI-compatible server, a key is required before any request.
    keyless = OpenRouterProvider(transport=transport)
    with pytest.raises(ConfigurationError, match="OPENROUTER_API_KEY"):
        keyless.stream_execute({"model": "m", "messages": [{"role": "user", "content": "x"}]})
    assert transport.requests == []
