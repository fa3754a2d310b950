"""The OpenAI-compatible provider against local servers on 127.0.0.1.

The OpenAI-speaking fake server (tests/support/fake_server.py, shared with the
OpenRouter tests) covers chat, streams, faults and errors; streamed tool calls
come from the scripted server, in the chunk shapes OpenAI and vLLM send.
"""

from __future__ import annotations

import json

import pytest
from llmrelay.core import (
    APIConnectionError,
    AuthenticationError,
    ConfigurationError,
    RateLimitError,
    ServerError,
    StreamInterruptedError,
    create_provider,
)
from llmrelay.providers.openai_compat import OpenAICompatibleProvider

from tests.support.fake_server import VALID_KEY, FakeOpenRouter
from tests.support.fake_server import Reply as FaultReply
from tests.support.scripted_http import Reply, ScriptedServer, sse

REQUEST = {"model": "llama3.1:8b", "messages": [{"role": "user", "content": "Hi"}]}


@pytest.fixture
def server():
    with FakeOpenRouter() as s:
        yield s


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def provider(server, sleeps):
    p = OpenAICompatibleProvider(api_key=VALID_KEY, base_url=server.base_url, sleep=sleeps.append)
    yield p
    p.close()


def test_execute(server, provider):
    reply = provider.execute(REQUEST)
    sent = server.requests[0]
    assert (sent.method, sent.path) == ("POST", "/chat/completions")
    assert sent.headers["authorization"] == f"Bearer {VALID_KEY}"
    assert sent.body["model"] == "llama3.1:8b" and "stream" not in sent.body
    assert reply.text == "Hello there!" and reply.provider == "openai"
    assert reply.usage.total_tokens == 16


def test_stream_asks_for_usage(server, provider):
    with provider.stream_execute(REQUEST) as stream:
        text = "".join(c.text for c in stream)
    assert text == "word0 word1 word2 word3 word4"
    assert server.requests[0].body["stream"] is True
    assert server.requests[0].body["stream_options"] == {"include_usage": True}
    assert stream.usage.completion_tokens == 5 and stream.finish_reason == "stop"


def test_stream_usage_can_be_turned_off_for_strict_servers(server):
    with OpenAICompatibleProvider(base_url=server.base_url, api_key=VALID_KEY, stream_usage=False) as p:
        p.stream_execute(REQUEST).final_response()
    assert "stream_options" not in server.requests[0].body


def test_organization_and_project_headers(server):
    with OpenAICompatibleProvider(
        base_url=server.base_url, api_key=VALID_KEY, organization="org-1", project="p-2"
    ) as p:
        p.execute(REQUEST)
    assert server.requests[0].headers["openai-organization"] == "org-1"
    assert server.requests[0].headers["openai-project"] == "p-2"


def test_local_server_needs_no_key():
    with ScriptedServer() as local:
        local.replies.append(
            Reply(200, {"choices": [{"message": {"role": "assistant", "content": "local"}, "finish_reason": "stop"}]})
        )
        with OpenAICompatibleProvider(base_url=local.url + "/v1") as p:
            assert p.execute(REQUEST).text == "local"
        assert "authorization" not in local.requests[0].headers


def test_api_openai_com_without_a_key_is_a_configuration_error(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ConfigurationError, match="OPENAI_API_KEY"):
        create_provider("openai", plugins=False)


def test_second_instance_from_config(server):
    config = {"providers": {"groq": {"type": "openai", "base_url": server.base_url, "api_key": VALID_KEY}}}
    groq = create_provider("groq", config=config, plugins=False)
    assert isinstance(groq, OpenAICompatibleProvider) and groq.instance_name == "groq"
    assert groq.execute(REQUEST).provider == "groq"


def test_streaming_tool_calls():
    def delta(**fields):
        return {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "model": "gpt-4o",
            "choices": [{"index": 0, "delta": fields, "finish_reason": None}],
        }

    events = [
        delta(role="assistant", content=None),
        delta(
            tool_calls=[
                {"index": 0, "id": "call_A", "type": "function", "function": {"name": "weather", "arguments": ""}}
            ]
        ),
        delta(tool_calls=[{"index": 0, "function": {"arguments": '{"city":'}}]),
        delta(tool_calls=[{"index": 0, "function": {"arguments": ' "Paris"}'}}]),
        delta(
            tool_calls=[
                {
                    "index": 1,
                    "id": "call_B",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"city": "Rome"}'},
                }
            ]
        ),
        {"id": "chatcmpl-1", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
        {
            "id": "chatcmpl-1",
            "choices": [],
            "usage": {"prompt_tokens": 50, "completion_tokens": 20, "total_tokens": 70},
        },
    ]
    with ScriptedServer() as local:
        local.replies.append(Reply(200, chunks=sse(*[(None, e) for e in events], (None, "[DONE]"))))
        with OpenAICompatibleProvider(base_url=local.url + "/v1", api_key="sk-local-000000000000000000") as p:
            response = p.stream_execute(
                {**REQUEST, "tools": [{"type": "function", "function": {"name": "weather"}}]}
            ).final_response()
        assert local.requests[0].json["tools"][0]["function"]["name"] == "weather"
    assert [(c.id, c.function.name) for c in response.tool_calls] == [("call_A", "weather"), ("call_B", "weather")]
    assert json.loads(response.tool_calls[0].function.arguments) == {"city": "Paris"}
    assert response.finish_reason == "tool_calls" and response.usage.total_tokens == 70


def test_error_inside_a_200_stream(server, provider):
    server.script(
        "POST", "/chat/completions", FaultReply(stream_error_after=2, error={"code": 503, "message": "overloaded"})
    )
    stream = provider.stream_execute(REQUEST)
    assert [next(stream).text, next(stream).text] == ["word0", " word1"]
    with pytest.raises(StreamInterruptedError, match="overloaded"):
        next(stream)


def test_connection_cut_mid_stream(server, provider):
    server.script("POST", "/chat/completions", FaultReply(stream_cut_after=1))
    with pytest.raises(StreamInterruptedError):
        provider.stream_execute(REQUEST).final_response()


@pytest.mark.parametrize("status, cls", [(401, AuthenticationError), (429, RateLimitError), (503, ServerError)])
def test_error_statuses(server, sleeps, status, cls):
    server.handle(
        "POST",
        "/chat/completions",
        lambda r: FaultReply(
            status=status, body={"error": {"message": "nope", "type": "x", "code": None}}, headers={"Retry-After": "0"}
        ),
    )
    with (
        OpenAICompatibleProvider(api_key=VALID_KEY, base_url=server.base_url, sleep=sleeps.append) as p,
        pytest.raises(cls) as caught,
    ):
        p.execute(REQUEST)
    assert caught.value.status == status
    assert VALID_KEY not in str(caught.value)
    # Availability errors were retried by the shared policy; the client error was not.
    assert server.count("POST", "/chat/completions") == (1 if status == 401 else 3)


def test_list_models_validate_and_unreachable(server, provider):
    server.models_payload = {
        "object": "list",
        "data": [
            {"id": "llama3.1:8b", "object": "model", "created": 1721260800, "owned_by": "library"},
            {"id": "Qwen/Qwen2.5-7B", "object": "model", "owned_by": "vllm", "max_model_len": 32768},
        ],
    }
    models = provider.list_models()
    assert models.ids == ["llama3.1:8b", "Qwen/Qwen2.5-7B"]
    assert models.get("Qwen/Qwen2.5-7B").context_length == 32768
    assert provider.validate_config().ok

    with ScriptedServer() as gone:
        dead_url = gone.url
    with OpenAICompatibleProvider(base_url=dead_url + "/v1", retry={"max_attempts": 1}) as p:
        report = p.validate_config()
        assert report.outcome == "unreachable"
        with pytest.raises(APIConnectionError):
            p.execute(REQUEST)


def test_embeddings():
    with ScriptedServer() as local:
        local.replies.append(
            Reply(
                200,
                {
                    "model": "nomic-embed-text",
                    "data": [{"index": 1, "embedding": [0.3, 0.4]}, {"index": 0, "embedding": [0.1, 0.2]}],
                    "usage": {"prompt_tokens": 4, "total_tokens": 4},
                },
            )
        )
        with OpenAICompatibleProvider(base_url=local.url + "/v1") as p:
            result = p.embed({"model": "nomic-embed-text", "input": ["a", "b"]})
        assert local.requests[0].json == {"model": "nomic-embed-text", "input": ["a", "b"]}
    assert result.embeddings == [[0.1, 0.2], [0.3, 0.4]]


def test_a_subclass_for_another_service_needs_only_its_identity():
    with ScriptedServer() as service:

        class ExampleCloud(OpenAICompatibleProvider):
            name = "examplecloud"
            env_prefix = "EXAMPLECLOUD_"
            default_base_url = service.url + "/v1"
            requires_api_key = True

            def prepare_body(self, body, request, *, stream):
                return {**super().prepare_body(body, request, stream=stream), "safe_mode": True}

        service.replies.append(
            Reply(200, {"choices": [{"message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}]})
        )
        with ExampleCloud(api_key="ec-key-000000000000") as provider:
            assert provider.base_url == service.url + "/v1"
            assert provider.execute(REQUEST).text == "hi"
        assert service.requests[0].path == "/v1/chat/completions"
        assert service.requests[0].json["safe_mode"] is True


def test_plain_provider_settings_are_upgraded():
    from llmrelay.core import ProviderSettings

    with OpenAICompatibleProvider(ProviderSettings(base_url="http://127.0.0.1:9/v1")) as provider:
        assert provider.base_url == "http://127.0.0.1:9/v1"
        assert provider.settings.stream_usage is True
