"""Fallback chains across real HTTP providers on local servers: one failing, one healthy."""

from __future__ import annotations

import pytest
from llmrelay.core import (
    BadRequestError,
    CircuitOpenError,
    create_provider,
)
from llmrelay.core.compose.fallback import FallbackProvider
from llmrelay.providers.anthropic import AnthropicProvider
from llmrelay.providers.openai_compat import OpenAICompatibleProvider

from tests.support import fake_anthropic as fa
from tests.support.fake_server import VALID_KEY, FakeOpenRouter
from tests.support.fake_server import Reply as FaultReply
from tests.support.scripted_http import ScriptedServer

REQUEST = {"model": "any-model", "messages": [{"role": "user", "content": "Hi"}]}
NO_RETRY = {"max_attempts": 1}


@pytest.fixture
def failing():
    with FakeOpenRouter() as server:
        yield server


@pytest.fixture
def healthy():
    with FakeOpenRouter() as server:
        yield server


def openai(server: FakeOpenRouter, name: str) -> OpenAICompatibleProvider:
    provider = OpenAICompatibleProvider(api_key=VALID_KEY, base_url=server.base_url, retry=NO_RETRY)
    provider.instance_name = name
    return provider


def test_5xx_on_the_first_server_is_answered_by_the_second(failing, healthy):
    failing.handle("POST", "/chat/completions", lambda r: FaultReply(status=503, body={"error": {"message": "down"}}))
    chain = FallbackProvider([(openai(failing, "primary"), "big-model"), (openai(healthy, "backup"), "small-model")])

    reply = chain.execute(REQUEST)

    assert reply.text == "Hello there!"
    assert reply.meta.answered_by == "backup/small-model"
    assert healthy.requests[0].body["model"] == "small-model"
    assert [(a["provider"], a["outcome"], a["error_type"]) for a in reply.meta.fallback] == [
        ("primary", "failed", "ServerError"),
        ("backup", "answered", None),
    ]


def test_refused_connection_falls_back(healthy):
    with ScriptedServer() as gone:
        dead = gone.url
    down = OpenAICompatibleProvider(base_url=dead + "/v1", retry=NO_RETRY)
    reply = FallbackProvider([down, openai(healthy, "backup")]).execute(REQUEST)
    assert reply.meta.fallback[0]["error_type"] == "APIConnectionError"


def test_streamed_429_falls_back(failing, healthy):
    failing.handle(
        "POST",
        "/chat/completions",
        lambda r: FaultReply(status=429, body={"error": {"message": "rate limited"}}, headers={"Retry-After": "1"}),
    )
    chain = FallbackProvider([openai(failing, "primary"), openai(healthy, "backup")])

    with chain.stream_execute(REQUEST) as stream:
        text = "".join(chunk.text for chunk in stream)

    assert text == "word0 word1 word2 word3 word4"
    assert stream.meta.answered_by == "backup/any-model"


def test_error_event_before_the_first_chunk_falls_back(failing, healthy):
    # HTTP 200, then an error event as the first data: nothing reached the caller yet.
    failing.script(
        "POST", "/chat/completions", FaultReply(stream_error_after=0, error={"code": 502, "message": "upstream"})
    )
    chain = FallbackProvider([openai(failing, "primary"), openai(healthy, "backup")])
    assert chain.stream_execute(REQUEST).final_response().text == "word0 word1 word2 word3 word4"


def test_client_error_is_not_masked_by_the_backup(failing, healthy):
    failing.handle("POST", "/chat/completions", lambda r: FaultReply(status=400, body={"error": {"message": "bad"}}))
    with pytest.raises(BadRequestError):
        FallbackProvider([openai(failing, "primary"), openai(healthy, "backup")]).execute(REQUEST)
    assert healthy.count("POST", "/chat/completions") == 0


def test_anthropic_overloaded_falls_back_to_an_openai_compatible_server(healthy):
    with ScriptedServer() as anthropic_server:
        anthropic_server.handler = lambda r: fa.error(529, "overloaded_error", "Overloaded")
        claude = AnthropicProvider(
            api_key="sk-ant-test-0000000000000000", base_url=anthropic_server.url + "/v1", retry=NO_RETRY
        )
        chain = FallbackProvider([(claude, "claude-3-5-sonnet-latest"), (openai(healthy, "local"), "llama3.1")])
        reply = chain.execute(REQUEST)
    assert reply.meta.answered_by == "local/llama3.1"
    assert reply.meta.fallback[0]["error_type"] == "ServerError"


def test_open_breaker_of_a_layered_member_fails_fast_and_falls_back(failing, healthy):
    config = {
        "providers": {
            "primary": {"type": "openai", "base_url": failing.base_url, "api_key": VALID_KEY, "retry": NO_RETRY},
            "backup": {"type": "openai", "base_url": healthy.base_url, "api_key": VALID_KEY},
        },
        "plugins": {"breaker": {"failure_threshold": 1}},
    }
    failing.handle("POST", "/chat/completions", lambda r: FaultReply(status=502, body={"error": {"message": "x"}}))
    primary = create_provider("primary", config=config, plugins=["breaker"])
    backup = create_provider("backup", config=config, plugins=["breaker"])
    chain = FallbackProvider([primary, backup])

    first = chain.execute(REQUEST)
    second = chain.execute(REQUEST)

    assert first.meta.fallback[0]["error_type"] == "ServerError"
    # The second time the member's own breaker answered, without a request to the failing server.
    assert second.meta.fallback[0]["error_type"] == CircuitOpenError.__name__
    assert failing.count("POST", "/chat/completions") == 1
    assert second.meta.answered_by == "backup/any-model"
