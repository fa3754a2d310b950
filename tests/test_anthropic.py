"""The Anthropic provider against a local Messages API server on 127.0.0.1."""

from __future__ import annotations

import json

import pytest
from llmrelay.core import (
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    RateLimitError,
    ServerError,
    StreamInterruptedError,
    create_provider,
)
from llmrelay.providers.anthropic import AnthropicProvider

from tests.support import fake_anthropic as fa
from tests.support.scripted_http import Reply, ScriptedServer

KEY = "sk-ant-api03-TESTKEY-0123456789abcdefghij"
REQUEST = {
    "model": "claude-3-5-haiku-latest",
    "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
}


@pytest.fixture
def server():
    with ScriptedServer() as s:
        yield s


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def claude(server, sleeps):
    provider = AnthropicProvider(api_key=KEY, base_url=server.url + "/v1", sleep=sleeps.append)
    yield provider
    provider.close()


def test_execute_sends_messages_api_request_with_headers(server, claude):
    server.replies.append(fa.message([{"type": "text", "text": "Hello!"}]))

    reply = claude.execute(REQUEST)

    sent = server.requests[0]
    assert (sent.method, sent.path) == ("POST", "/v1/messages")
    assert sent.headers["x-api-key"] == KEY
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in sent.headers
    assert sent.json["system"] == "Be brief."
    assert sent.json["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]
    assert sent.json["max_tokens"] == 4096 and "stream" not in sent.json
    assert reply.text == "Hello!" and reply.finish_reason == "stop" and reply.provider == "anthropic"
    assert reply.usage.total_tokens == 19


def test_streaming_text(server, claude):
    server.replies.append(fa.stream([{"type": "text", "parts": ["Hel", "lo", "!"]}]))

    with claude.stream_execute(REQUEST) as stream:
        texts = [c.text for c in stream if c.text]
    assert texts == ["Hel", "lo", "!"]
    assert server.requests[0].json["stream"] is True
    response = stream.final_response()
    assert response.text == "Hello!" and response.finish_reason == "stop"
    assert (response.usage.prompt_tokens, response.usage.completion_tokens, response.usage.cached_tokens) == (30, 15, 5)


def test_streaming_tool_calls(server, claude):
    args = {"city": "Paris", "unit": "C"}
    server.replies.append(
        fa.stream(
            [
                {"type": "thinking", "parts": ["need ", "weather"]},
                {"type": "text", "parts": ["Checking."]},
                {"type": "tool_use", "id": "toolu_A", "name": "weather", "json_parts": fa.tool_json_parts(args)},
                {
                    "type": "tool_use",
                    "id": "toolu_B",
                    "name": "weather",
                    "json_parts": fa.tool_json_parts({"city": "Rome"}),
                },
            ],
            stop_reason="tool_use",
        )
    )

    response = claude.stream_execute(
        {
            **REQUEST,
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": "weather",
                        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                    },
                }
            ],
        }
    ).final_response()

    assert server.requests[0].json["tools"][0]["name"] == "weather"
    assert response.message.reasoning == "need weather"
    assert [c.id for c in response.tool_calls] == ["toolu_A", "toolu_B"]
    assert json.loads(response.tool_calls[0].function.arguments) == args
    assert response.finish_reason == "tool_calls"


def test_error_event_mid_stream_raises_after_the_delivered_chunks(server, claude):
    server.replies.append(fa.stream([{"type": "text", "parts": ["a", "b", "c"]}], error_after=2))
    stream = claude.stream_execute(REQUEST)
    assert next(stream).text == "a"
    assert next(stream).text == "b"
    with pytest.raises(StreamInterruptedError) as caught:
        next(stream)
    assert caught.value.upstream_code == "overloaded_error"
    assert stream.outcome == "failed"


def test_stream_cut_before_message_stop_is_an_interruption(server, claude):
    server.replies.append(fa.stream([{"type": "text", "parts": ["partial"]}], end=False))
    with pytest.raises(StreamInterruptedError, match="before message_stop"):
        claude.stream_execute(REQUEST).final_response()


def test_overloaded_529_is_retried_then_succeeds(server, claude, sleeps):
    server.replies += [fa.error(529, "overloaded_error", "Overloaded"), fa.message([{"type": "text", "text": "ok"}])]
    assert claude.execute(REQUEST).text == "ok"
    assert len(server.requests) == 2 and len(sleeps) == 1


@pytest.mark.parametrize(
    "status, kind, cls",
    [
        (529, "overloaded_error", ServerError),
        (429, "rate_limit_error", RateLimitError),
        (401, "authentication_error", AuthenticationError),
        (400, "invalid_request_error", BadRequestError),
    ],
)
def test_error_statuses_map_to_typed_errors(server, sleeps, status, kind, cls):
    server.handler = lambda request: fa.error(status, kind, "details here", **{"retry-after": "0"})
    provider = AnthropicProvider(api_key=KEY, base_url=server.url + "/v1", sleep=sleeps.append)
    with pytest.raises(cls) as caught:
        provider.execute(REQUEST)
    error = caught.value
    assert error.status == status and error.provider == "anthropic"
    assert kind in str(error) and "details here" in str(error)
    assert error.request_id == "req_err"
    assert KEY not in str(error) and KEY not in repr(error)


def test_streaming_request_error_before_any_chunk_raises_at_call(server, claude):
    server.handler = lambda request: fa.error(400, "invalid_request_error", "max_tokens: too large")
    with pytest.raises(BadRequestError, match="max_tokens: too large"):
        claude.stream_execute(REQUEST)


def test_list_models_and_validate(server, claude):
    server.handler = lambda request: Reply(
        200,
        {"data": [{"id": "claude-3-5-haiku-20241022", "display_name": "Haiku"}], "has_more": False, "last_id": None},
    )
    assert claude.list_models().ids == ["claude-3-5-haiku-20241022"]
    assert claude.validate_config().ok
    server.handler = lambda request: fa.error(401, "authentication_error", "invalid x-api-key")
    report = claude.validate_config()
    assert report.outcome == "invalid_key" and KEY not in report.message


def test_registered_through_entry_points_and_needs_a_key(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="ANTHROPIC_API_KEY"):
        create_provider("anthropic")
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    provider = create_provider("anthropic", plugins=False)
    assert isinstance(provider, AnthropicProvider)
    assert KEY not in repr(provider)


def test_validate_config_reports_settings_problems_without_a_request(server):
    for settings, expected in [
        ({}, "api_key is not set"),
        ({"api_key": KEY + " "}, "whitespace"),
        ({"api_key": "Bearer " + KEY}, "'Bearer '"),
    ]:
        provider = AnthropicProvider(base_url=server.url + "/v1", **settings)
        report = provider.validate_config()
        assert report.outcome == "config_error" and expected in report.message
        provider.close()
    assert server.requests == []


def test_unreachable_service_is_its_own_outcome():
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    provider = AnthropicProvider(api_key=KEY, base_url=f"http://127.0.0.1:{port}/v1", retry={"max_attempts": 1})
    report = provider.validate_config()
    assert report.outcome == "unreachable" and "could not reach Anthropic" in report.message
    provider.close()
