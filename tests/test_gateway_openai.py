"""The gateway's OpenAI API, with the official ``openai`` SDK as the client.

One gateway process (gunicorn, as ``llmrelay serve`` runs it) in front of two
scripted local upstreams; each test queues the upstream's replies and checks
what the SDK gets and what the upstream was sent.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.support.gateway import (
    ANTHROPIC_UPSTREAM_KEY,
    GATEWAY_KEY,
    OPENAI_UPSTREAM_KEY,
    RunningGateway,
    gateway,
    upstreams,
)
from tests.support.scripted_http import Reply, ScriptedServer, sse

__all__ = ["gateway", "upstreams"]  # fixtures, imported to be found by pytest

MODEL = "gpt-4o-mini"


@pytest.fixture
def upstream(upstreams: tuple[ScriptedServer, ScriptedServer]) -> Iterator[ScriptedServer]:
    oa, an = upstreams
    for server in (oa, an):
        server.replies.clear()
        server.requests.clear()
        server.handler = None
    yield oa


@pytest.fixture
def client(gateway: RunningGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=GATEWAY_KEY, max_retries=0)


def completion(text: str = "Hello!", **extra: Any) -> dict[str, Any]:
    message = {"role": "assistant", "content": text, **extra}
    return {
        "id": "chatcmpl-up1",
        "object": "chat.completion",
        "created": 1754500000,
        "model": MODEL,
        "choices": [
            {"index": 0, "message": message, "finish_reason": "tool_calls" if "tool_calls" in extra else "stop"}
        ],
        "usage": {
            "prompt_tokens": 11,
            "completion_tokens": 3,
            "total_tokens": 14,
            "prompt_tokens_details": {"cached_tokens": 4},
        },
    }


def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-up2",
        "object": "chat.completion.chunk",
        "created": 1754500001,
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }


USAGE = {"prompt_tokens": 9, "completion_tokens": 5, "total_tokens": 14}


def text_stream(words: list[str]) -> Reply:
    events: list[tuple[str | None, Any]] = [(None, chunk({"role": "assistant", "content": ""}))]
    events += [(None, chunk({"content": word})) for word in words]
    events.append((None, chunk({}, "stop")))
    events.append((None, {**chunk({}), "choices": [], "usage": USAGE}))
    events.append((None, "[DONE]"))
    return Reply(200, chunks=sse(*events))


def tool_stream(fragments: list[str]) -> Reply:
    first = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}
    events: list[tuple[str | None, Any]] = [(None, chunk({"role": "assistant", "tool_calls": [first]}))]
    events += [(None, chunk({"tool_calls": [{"index": 0, "function": {"arguments": part}}]})) for part in fragments]
    events.append((None, chunk({}, "tool_calls")))
    events.append((None, {**chunk({}), "choices": [], "usage": USAGE}))
    events.append((None, "[DONE]"))
    return Reply(200, chunks=sse(*events))


# --------------------------------------------------------------------------- chat


def test_chat_completion_through_the_gateway(client: openai.OpenAI, upstream: ScriptedServer) -> None:
    upstream.replies.append(Reply(200, completion("Hello there!")))
    reply = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "hi"}],
        response_format={"type": "json_object"},
        extra_body={"provider": {"sort": "price"}},
    )
    assert reply.choices[0].message.content == "Hello there!"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None and (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (11, 3)
    assert reply.usage.prompt_tokens_details is not None and reply.usage.prompt_tokens_details.cached_tokens == 4
    sent = upstream.requests[-1].json
    assert sent["model"] == MODEL and sent["messages"] == [{"role": "user", "content": "hi"}]
    assert sent["response_format"] == {"type": "json_object"}  # passthrough fields reach the upstream
    assert sent["provider"] == {"sort": "price"}
    # The upstream got its own key, never the client's.
    assert upstream.requests[-1].headers["authorization"] == f"Bearer {OPENAI_UPSTREAM_KEY}"


def test_stream_has_one_id_the_role_once_a_finish_chunk_usage_and_done(
    gateway: RunningGateway, upstream: ScriptedServer
) -> None:
    upstream.replies.append(text_stream(["Hel", "lo", " world"]))
    response = gateway.post(
        "/v1/chat/completions",
        {
            "model": MODEL,
            "messages": [{"role": "user", "content": "hi"}],
            "stream": True,
            "stream_options": {"include_usage": True},
        },
        stream=True,
    )
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    frames = [line[len(b"data: ") :] for line in response.iter_lines() if line.startswith(b"data: ")]
    assert frames[-1] == b"[DONE]"
    chunks = [json.loads(frame) for frame in frames[:-1]]
    assert len({c["id"] for c in chunks}) == 1 and len({c["created"] for c in chunks}) == 1
    assert [c["choices"][0]["delta"].get("role") for c in chunks if c["choices"]].count("assistant") == 1
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == "Hello world"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 14
    assert float(response.headers["x-llmrelay-overhead-ms"]) >= 0


def test_stream_without_include_usage_has_no_usage_chunk(client: openai.OpenAI, upstream: ScriptedServer) -> None:
    upstream.replies.append(text_stream(["a", "b"]))
    chunks = list(client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}], stream=True))
    assert all(c.choices for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_sdk_stream_accumulator_assembles_streamed_tool_call_fragments(
    client: openai.OpenAI, upstream: ScriptedServer
) -> None:
    upstream.replies.append(tool_stream(['{"ci', 'ty": "Pa', 'ris"}']))
    tools: Any = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    with client.chat.completions.stream(
        model=MODEL,
        messages=[{"role": "user", "content": "weather?"}],
        tools=tools,
        stream_options={"include_usage": True},
    ) as stream:
        deltas = [event for event in stream if event.type == "tool_calls.function.arguments.delta"]
        final = stream.get_final_completion()
    assert [d.arguments_delta for d in deltas if d.arguments_delta] == [
        '{"ci',
        'ty": "Pa',
        'ris"}',
    ]  # forwarded as they came
    call = final.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.id == "call_1" and call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"city": "Paris"}  # type: ignore[union-attr]
    assert final.choices[0].finish_reason == "tool_calls"
    assert final.usage is not None and final.usage.total_tokens == 14
    assert upstream.requests[-1].json["tools"] == tools


def test_tool_calls_across_turns_and_images_reach_the_upstream_intact(
    client: openai.OpenAI, upstream: ScriptedServer
) -> None:
    upstream.replies.append(Reply(200, completion("It is sunny in Paris.")))
    image = "data:image/png;base64,iVBORw0KGgo="
    messages: Any = [
        {
            "role": "user",
            "content": [{"type": "text", "text": "weather here?"}, {"type": "image_url", "image_url": {"url": image}}],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"sky": "clear"}'},
    ]
    reply = client.chat.completions.create(model=MODEL, messages=messages)
    assert reply.choices[0].message.content == "It is sunny in Paris."
    sent = upstream.requests[-1].json["messages"]
    assert sent[0]["content"][1] == {"type": "image_url", "image_url": {"url": image}}
    assert sent[1]["tool_calls"][0]["function"]["arguments"] == '{"city": "Paris"}'
    assert sent[2] == {"role": "tool", "tool_call_id": "call_1", "content": '{"sky": "clear"}'}


def test_concurrent_streams_each_get_their_own_answer(gateway: RunningGateway, upstream: ScriptedServer) -> None:
    def answer(request: Any) -> Reply:
        word = request.json["messages"][0]["content"]
        return text_stream([word, "-", word])

    upstream.handler = answer
    results: dict[int, str] = {}

    def run(number: int) -> None:
        client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=GATEWAY_KEY, max_retries=0)
        stream = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": f"w{number}"}], stream=True
        )
        results[number] = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results == {n: f"w{n}-w{n}" for n in range(16)}


# --------------------------------------------------------------------------- models, embeddings


def test_models_and_embeddings(
    client: openai.OpenAI, upstream: ScriptedServer, upstreams: tuple[ScriptedServer, ScriptedServer]
) -> None:
    upstream.replies.append(
        Reply(
            200,
            {"object": "list", "data": [{"id": "gpt-4o-mini", "object": "model", "created": 1, "owned_by": "openai"}]},
        )
    )
    upstreams[1].replies.append(
        Reply(200, {"data": [{"id": "claude-x", "display_name": "Claude X", "type": "model"}], "has_more": False})
    )
    listed = client.models.list()
    assert {"gpt-4o-mini", "claude-x"} <= {m.id for m in listed.data}  # every served provider's models
    upstream.replies.clear()
    upstream.replies.append(
        Reply(
            200,
            {
                "object": "list",
                "model": "text-embedding-3-small",
                "id": "gen-emb-1",
                "data": [{"object": "embedding", "index": 0, "embedding": [0.5, -0.25]}],
                "usage": {"prompt_tokens": 2, "total_tokens": 2, "cost": 0.00002},
            },
        )
    )
    vectors = client.embeddings.create(model="text-embedding-3-small", input="hello", encoding_format="float")
    assert vectors.data[0].embedding == [0.5, -0.25]
    assert vectors.usage.model_extra == {"cost": 0.00002}  # OpenRouter's cost, carried as on chat usage
    assert upstream.requests[-1].json["input"] == "hello"


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"x-api-key": "wrong"}, {"Authorization": GATEWAY_KEY}]
)
def test_without_a_valid_key_401_and_nothing_else(
    gateway: RunningGateway, upstream: ScriptedServer, headers: dict[str, str]
) -> None:
    for path in ("/v1/chat/completions", "/v1/nowhere"):
        response = gateway.post(path, {"model": MODEL, "messages": [{"role": "user", "content": "x"}]}, headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["type"] == "authentication_error"
    assert upstream.requests == []


def test_bad_key_is_an_authentication_error_in_the_sdk(gateway: RunningGateway) -> None:
    bad = openai.OpenAI(base_url=gateway.url + "/v1", api_key="not-the-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])


def test_x_api_key_header_is_accepted(gateway: RunningGateway, upstream: ScriptedServer) -> None:
    upstream.replies.append(Reply(200, completion("ok")))
    response = gateway.post(
        "/v1/chat/completions",
        {"model": MODEL, "messages": [{"role": "user", "content": "x"}]},
        headers={"x-api-key": GATEWAY_KEY},
    )
    assert response.status_code == 200


def test_unknown_route_is_404_in_openai_format(gateway: RunningGateway) -> None:
    response = gateway.get("/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found_error"


def test_body_over_the_limit_is_413(gateway: RunningGateway, upstream: ScriptedServer) -> None:
    big = {"model": MODEL, "messages": [{"role": "user", "content": "x" * 70000}]}
    response = gateway.post("/v1/chat/completions", big)
    assert response.status_code == 413
    assert "bytes" in response.json()["error"]["message"]
    assert upstream.requests == []


def test_bad_json_and_bad_requests_are_400(gateway: RunningGateway, upstream: ScriptedServer) -> None:
    response = gateway.post(
        "/v1/chat/completions",
        None,
        data=b"{not json",
        headers={"Authorization": f"Bearer {GATEWAY_KEY}", "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    response = gateway.post("/v1/chat/completions", {"model": MODEL, "messages": []})
    assert response.status_code == 400 and "messages" in response.json()["error"]["message"]
    assert upstream.requests == []


def test_upstream_429_comes_back_as_429_with_retry_after(client: openai.OpenAI, upstream: ScriptedServer) -> None:
    upstream.replies.append(Reply(429, {"error": {"message": "slow down"}}, headers={"Retry-After": "7"}))
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
    assert caught.value.response.headers["retry-after"] == "7"
    assert "slow down" in caught.value.message
    assert "Traceback" not in caught.value.response.text


def test_upstream_500_is_a_server_error_without_leaking_keys(client: openai.OpenAI, upstream: ScriptedServer) -> None:
    echo = f"internal failure for key {OPENAI_UPSTREAM_KEY} / {ANTHROPIC_UPSTREAM_KEY}"
    upstream.replies.append(Reply(500, {"error": {"message": echo}}))
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
    text = caught.value.response.text
    assert caught.value.status_code == 500
    assert OPENAI_UPSTREAM_KEY not in text and ANTHROPIC_UPSTREAM_KEY not in text and GATEWAY_KEY not in text


def test_upstream_refusing_the_gateways_own_key_is_502_not_401(client: openai.OpenAI, upstream: ScriptedServer) -> None:
    upstream.replies.append(Reply(401, {"error": {"message": "Incorrect API key provided"}}))
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
    assert caught.value.status_code == 502


def test_mid_stream_error_reaches_the_sdk_as_an_error(client: openai.OpenAI, upstream: ScriptedServer) -> None:
    events: list[tuple[str | None, Any]] = [
        (None, chunk({"role": "assistant", "content": "par"})),
        (None, chunk({"content": "tial"})),
        (None, {"error": {"message": "upstream overloaded", "code": 502}}),
    ]
    upstream.replies.append(Reply(200, chunks=sse(*events)))
    received = []
    with pytest.raises(openai.APIError) as caught:
        for part in client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "x"}], stream=True
        ):
            received.append(part.choices[0].delta.content if part.choices else "")
    assert "".join(r or "" for r in received) == "partial"
    assert "overloaded" in str(caught.value.message)


def test_secrets_never_in_the_gateway_log(gateway: RunningGateway) -> None:
    log = gateway.stderr()
    for secret in (GATEWAY_KEY, OPENAI_UPSTREAM_KEY, ANTHROPIC_UPSTREAM_KEY):
        assert secret not in log
