"""The gateway's Anthropic Messages API, with the official ``anthropic`` SDK as the client.

Answered from an OpenAI-compatible upstream (translated both ways) and from an
Anthropic upstream (models ending in ``-anthropic``). Streams are checked
event by event and through the SDK's own accumulator
(``client.messages.stream(...).get_final_message()``).
"""

from __future__ import annotations

import json
from typing import Any

import anthropic
import pytest

from tests.support import fake_anthropic
from tests.support.gateway import GATEWAY_KEY, RunningGateway, gateway, upstreams
from tests.support.scripted_http import Reply, ScriptedServer, sse

__all__ = ["gateway", "upstreams"]  # fixtures, imported to be found by pytest

MODEL = "gpt-4o-mini"


@pytest.fixture
def oa(upstreams: tuple[ScriptedServer, ScriptedServer]) -> ScriptedServer:
    for server in upstreams:
        server.replies.clear()
        server.requests.clear()
    return upstreams[0]


@pytest.fixture
def an(oa: ScriptedServer, upstreams: tuple[ScriptedServer, ScriptedServer]) -> ScriptedServer:
    return upstreams[1]


@pytest.fixture
def client(gateway: RunningGateway) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.url, api_key=GATEWAY_KEY, max_retries=0)


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-up",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def openai_stream(deltas: list[dict[str, Any]], finish: str, usage: dict[str, Any] | None = None) -> Reply:
    events: list[tuple[str | None, Any]] = [(None, chunk(delta)) for delta in deltas]
    events.append((None, chunk({}, finish)))
    usage = usage or {
        "prompt_tokens": 20,
        "completion_tokens": 6,
        "total_tokens": 26,
        "prompt_tokens_details": {"cached_tokens": 8},
    }
    events.append((None, {**chunk({}), "choices": [], "usage": usage}))
    events.append((None, "[DONE]"))
    return Reply(200, chunks=sse(*events))


def raw_events(gateway: RunningGateway, body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    response = gateway.post(
        "/v1/messages",
        {**body, "stream": True},
        stream=True,
        headers={"x-api-key": GATEWAY_KEY, "anthropic-version": "2023-06-01"},
    )
    assert response.status_code == 200
    events, name = [], None
    for line in response.iter_lines():
        if line.startswith(b"event: "):
            name = line[7:].decode()
        elif line.startswith(b"data: "):
            data = json.loads(line[6:])
            assert data["type"] == name  # the event name and the data's type agree
            events.append((name, data))
    return events


# --------------------------------------------------------------------------- requests


def test_request_translation_system_blocks_images_tools_and_split_tool_results(
    client: anthropic.Anthropic, oa: ScriptedServer
) -> None:
    oa.replies.append(
        Reply(
            200,
            {
                "id": "c1",
                "object": "chat.completion",
                "created": 1,
                "model": MODEL,
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": "done"}, "finish_reason": "length"}
                ],
                "usage": {
                    "prompt_tokens": 30,
                    "completion_tokens": 2,
                    "total_tokens": 32,
                    "prompt_tokens_details": {"cached_tokens": 10},
                },
            },
        )
    )
    message = client.messages.create(
        model=MODEL,
        max_tokens=50,
        system=[{"type": "text", "text": "Be brief."}, {"type": "text", "text": " Be kind."}],
        stop_sequences=["END"],
        metadata={"user_id": "user-42"},
        tools=[
            {
                "name": "get_weather",
                "description": "weather",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
            }
        ],
        tool_choice={"type": "tool", "name": "get_weather"},
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "checking"},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
                    {"type": "text", "text": "and tomorrow?"},
                ],
            },
        ],
    )
    assert message.content[0].type == "text" and message.content[0].text == "done"
    assert message.stop_reason == "max_tokens"
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens, message.usage.output_tokens) == (
        20,
        10,
        2,
    )
    sent = oa.requests[-1].json
    assert sent["messages"][0] == {"role": "system", "content": "Be brief. Be kind."}
    assert sent["messages"][1]["content"][1] == {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="},
    }
    assert sent["messages"][2]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    # A user turn mixing a tool result and text: the tool message first, right after the call, then the text.
    assert sent["messages"][3] == {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"}
    assert sent["messages"][4] == {"role": "user", "content": "and tomorrow?"}
    assert sent["stop"] == ["END"] and sent["user"] == "user-42" and sent["max_tokens"] == 50
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert sent["tools"][0]["function"]["parameters"]["properties"] == {"city": {"type": "string"}}


def test_non_streamed_tool_use_answer(client: anthropic.Anthropic, oa: ScriptedServer) -> None:
    call = {"id": "call_9", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}
    oa.replies.append(
        Reply(
            200,
            {
                "id": "c2",
                "object": "chat.completion",
                "created": 1,
                "model": MODEL,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": None, "tool_calls": [call]},
                        "finish_reason": "tool_calls",
                    }
                ],
                "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10},
            },
        )
    )
    message = client.messages.create(model=MODEL, max_tokens=20, messages=[{"role": "user", "content": "weather"}])
    block = message.content[0]
    assert block.type == "tool_use" and block.id == "call_9" and block.input == {"city": "Oslo"}
    assert message.stop_reason == "tool_use"


# --------------------------------------------------------------------------- streams


STREAM_DELTAS = [
    {"role": "assistant", "reasoning": "Let me "},
    {"reasoning": "think."},
    {"content": "Weather"},
    {"content": " coming."},
    {
        "tool_calls": [
            {"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}
        ]
    },
    {"tool_calls": [{"index": 0, "function": {"arguments": '{"ci'}}]},
    {"tool_calls": [{"index": 0, "function": {"arguments": 'ty": "Pa'}}]},
    {"tool_calls": [{"index": 0, "function": {"arguments": 'ris"}'}}]},
    {
        "tool_calls": [
            {"index": 1, "id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}
        ]
    },
]


def test_stream_events_come_in_the_exact_order_the_sdk_expects(gateway: RunningGateway, oa: ScriptedServer) -> None:
    oa.replies.append(openai_stream(STREAM_DELTAS, "tool_calls"))
    events = raw_events(gateway, {"model": MODEL, "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]})
    names = [name for name, _ in events]
    assert names == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    starts = [data["content_block"]["type"] for name, data in events if name == "content_block_start"]
    assert starts == ["thinking", "text", "tool_use", "tool_use"]
    fragments = [
        d["delta"]["partial_json"]
        for n, d in events
        if n == "content_block_delta" and d["delta"]["type"] == "input_json_delta"
    ]
    assert fragments == ['{"ci', 'ty": "Pa', 'ris"}', "{}"]  # forwarded as they arrived, not buffered
    indexes = [data["index"] for name, data in events if name.startswith("content_block")]
    assert indexes == sorted(indexes)
    delta = events[-2][1]
    assert delta["delta"]["stop_reason"] == "tool_use"
    assert delta["usage"] == {"input_tokens": 12, "output_tokens": 6, "cache_read_input_tokens": 8}


def test_sdk_accumulator_builds_the_final_message(client: anthropic.Anthropic, oa: ScriptedServer) -> None:
    oa.replies.append(openai_stream(STREAM_DELTAS, "tool_calls"))
    with client.messages.stream(model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "hi"}]) as stream:
        texts = list(stream.text_stream)
        final = stream.get_final_message()
    assert texts == ["Weather", " coming."]
    kinds = [block.type for block in final.content]
    assert kinds == ["thinking", "text", "tool_use", "tool_use"]
    assert final.content[0].thinking == "Let me think."  # type: ignore[union-attr]
    assert final.content[1].text == "Weather coming."  # type: ignore[union-attr]
    assert final.content[2].input == {"city": "Paris"} and final.content[2].name == "get_weather"  # type: ignore[union-attr]
    assert final.content[3].input == {} and final.content[3].id == "call_2"  # type: ignore[union-attr]
    assert final.stop_reason == "tool_use"
    assert (final.usage.input_tokens, final.usage.output_tokens, final.usage.cache_read_input_tokens) == (12, 6, 8)


def test_interleaved_tool_call_fragments_become_whole_blocks_in_order(
    client: anthropic.Anthropic, gateway: RunningGateway, oa: ScriptedServer
) -> None:
    # OpenAI's wire lets an upstream interleave two parallel calls' fragments;
    # Anthropic's blocks come one after another, each with its own whole input.
    def call(index: int, arguments: str, first: bool = False) -> dict[str, Any]:
        entry: dict[str, Any] = {"index": index, "function": {"arguments": arguments}}
        if first:
            entry.update(id=f"call_{index}", type="function")
            entry["function"]["name"] = ["get_weather", "get_time"][index]
        return {"tool_calls": [entry]}

    deltas = [
        call(0, '{"city": ', first=True),
        call(1, '{"zone": ', first=True),
        call(0, '"Paris"}'),
        call(1, '"CET"}'),
    ]
    oa.replies.append(openai_stream(deltas, "tool_calls"))
    events = raw_events(gateway, {"model": MODEL, "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]})
    blocks = [(n, d["index"]) for n, d in events if n.startswith("content_block")]
    assert blocks == [
        ("content_block_start", 0),
        ("content_block_delta", 0),
        ("content_block_delta", 0),
        ("content_block_stop", 0),
        ("content_block_start", 1),
        ("content_block_delta", 1),
        ("content_block_delta", 1),
        ("content_block_stop", 1),
    ]
    fragments = [d["delta"]["partial_json"] for n, d in events if n == "content_block_delta"]
    assert fragments == ['{"city": ', '"Paris"}', '{"zone": ', '"CET"}']

    oa.replies.append(openai_stream(deltas, "tool_calls"))
    with client.messages.stream(model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "hi"}]) as stream:
        final = stream.get_final_message()
    calls = [(block.id, block.name, block.input) for block in final.content if block.type == "tool_use"]
    assert calls == [("call_0", "get_weather", {"city": "Paris"}), ("call_1", "get_time", {"zone": "CET"})]


def test_cache_control_on_a_tool_reaches_an_anthropic_upstream(client: anthropic.Anthropic, an: ScriptedServer) -> None:
    an.replies.append(fake_anthropic.message([{"type": "text", "text": "ok"}]))
    tool = {
        "name": "lookup",
        "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}},
        "cache_control": {"type": "ephemeral"},
    }
    client.messages.create(
        model="claude-3-5-haiku-20241022-anthropic",
        max_tokens=50,
        tools=[tool],  # type: ignore[list-item]  # the SDK's TypedDict is checked by the API, not here
        messages=[{"role": "user", "content": "hi"}],
    )
    sent = an.requests[-1].json
    assert sent["tools"] == [tool]


def test_stream_from_an_anthropic_upstream(client: anthropic.Anthropic, an: ScriptedServer) -> None:
    an.replies.append(
        fake_anthropic.stream(
            [
                {"type": "thinking", "parts": ["Hmm, ", "Paris."]},
                {"type": "text", "parts": ["Checking", " now"]},
                {
                    "type": "tool_use",
                    "id": "toolu_7",
                    "name": "get_weather",
                    "json_parts": fake_anthropic.tool_json_parts({"city": "Paris"}),
                },
            ],
            stop_reason="tool_use",
        )
    )
    with client.messages.stream(
        model="claude-3-5-haiku-20241022-anthropic",
        max_tokens=100,
        messages=[{"role": "user", "content": "hi"}],
        thinking={"type": "enabled", "budget_tokens": 1024},
    ) as stream:
        final = stream.get_final_message()
    sent = an.requests[-1].json
    assert sent["model"] == "claude-3-5-haiku-20241022" and sent["thinking"] == {
        "type": "enabled",
        "budget_tokens": 1024,
    }
    assert [block.type for block in final.content] == ["thinking", "text", "tool_use"]
    assert final.content[0].thinking == "Hmm, Paris."  # type: ignore[union-attr]
    assert final.content[0].signature == "EqQBCgIYAhIM"  # type: ignore[union-attr]  # passed through
    assert final.content[1].text == "Checking now"  # type: ignore[union-attr]
    assert final.content[2].id == "toolu_7" and final.content[2].input == {"city": "Paris"}  # type: ignore[union-attr]
    assert final.stop_reason == "tool_use"
    assert (final.usage.input_tokens, final.usage.cache_read_input_tokens, final.usage.output_tokens) == (25, 5, 15)


def test_anthropic_upstream_passes_signed_thinking_and_cache_control_through(
    client: anthropic.Anthropic, an: ScriptedServer
) -> None:
    an.replies.append(
        fake_anthropic.message(
            [
                {"type": "thinking", "thinking": "Plan it.", "signature": "sig-abc"},
                {"type": "text", "text": "Done."},
            ],
            cache_read_input_tokens=40,
        )
    )
    message = client.messages.create(
        model="claude-3-5-haiku-20241022-anthropic",
        max_tokens=100,
        system=[{"type": "text", "text": "Long shared context.", "cache_control": {"type": "ephemeral"}}],
        messages=[
            {"role": "user", "content": [{"type": "text", "text": "q1", "cache_control": {"type": "ephemeral"}}]},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "Earlier.", "signature": "sig-old"},
                    {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": "x"}},
                ],
            },
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "found"}]},
        ],
        thinking={"type": "enabled", "budget_tokens": 1024},
    )
    assert message.content[0].type == "thinking"
    assert message.content[0].signature == "sig-abc" and message.content[0].thinking == "Plan it."
    assert message.content[1].text == "Done."  # type: ignore[union-attr]
    assert message.usage.cache_read_input_tokens == 40 and message.usage.input_tokens == 12
    sent = an.requests[-1].json
    assert sent["system"] == [{"type": "text", "text": "Long shared context.", "cache_control": {"type": "ephemeral"}}]
    assert sent["messages"][0]["content"] == [{"type": "text", "text": "q1", "cache_control": {"type": "ephemeral"}}]
    assert sent["messages"][1]["content"][0] == {"type": "thinking", "thinking": "Earlier.", "signature": "sig-old"}
    assert sent["messages"][1]["content"][1]["type"] == "tool_use"
    assert sent["messages"][2]["content"][0]["type"] == "tool_result"


def test_mid_stream_error_is_an_error_event(
    client: anthropic.Anthropic, gateway: RunningGateway, oa: ScriptedServer
) -> None:
    events: list[tuple[str | None, Any]] = [
        (None, chunk({"role": "assistant", "content": "par"})),
        (None, {"error": {"message": "upstream overloaded", "code": 502}}),
    ]
    oa.replies.append(Reply(200, chunks=sse(*events)))
    seen = raw_events(gateway, {"model": MODEL, "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]})
    assert [name for name, _ in seen] == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "error",
    ]
    assert seen[-1][1]["error"]["type"] == "api_error" and "overloaded" in seen[-1][1]["error"]["message"]
    oa.replies.append(Reply(200, chunks=sse(*events)))
    with pytest.raises(anthropic.APIStatusError):  # noqa: SIM117 - the error comes from iterating
        with client.messages.stream(model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "x"}]) as stream:
            stream.get_final_message()


# --------------------------------------------------------------------------- count_tokens, models, errors


def test_count_tokens(client: anthropic.Anthropic, oa: ScriptedServer) -> None:
    counted = client.messages.count_tokens(
        model=MODEL,
        system="You are terse.",
        messages=[{"role": "user", "content": "How many tokens is this sentence?"}],
    )
    assert 5 <= counted.input_tokens <= 20
    assert oa.requests == []  # estimated by the gateway, no upstream call


def test_models_in_anthropic_shape(client: anthropic.Anthropic, oa: ScriptedServer, an: ScriptedServer) -> None:
    oa.replies.append(Reply(200, {"object": "list", "data": [{"id": "gpt-4o-mini", "object": "model", "created": 1}]}))
    an.replies.append(
        Reply(200, {"data": [{"id": "claude-x", "display_name": "Claude X", "type": "model"}], "has_more": False})
    )
    ids = [model.id for model in client.models.list()]
    assert ids == ["gpt-4o-mini", "claude-x"]


def test_errors_in_anthropic_format(client: anthropic.Anthropic, gateway: RunningGateway, oa: ScriptedServer) -> None:
    bad = anthropic.Anthropic(base_url=gateway.url, api_key="wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as caught:
        bad.messages.create(model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert caught.value.body == {
        "type": "error",
        "error": {"type": "authentication_error", "message": caught.value.body["error"]["message"]},
    }  # type: ignore[index]
    oa.replies.append(Reply(429, {"error": {"message": "too many"}}, headers={"Retry-After": "3"}))
    with pytest.raises(anthropic.RateLimitError) as limited:
        client.messages.create(model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert limited.value.response.headers["retry-after"] == "3"
    assert limited.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    response = gateway.post("/v1/messages/nothing", {}, headers={"x-api-key": GATEWAY_KEY})
    assert response.status_code == 404 and response.json()["type"] == "error"
    response = gateway.post(
        "/v1/messages", {"model": MODEL, "messages": "not a list"}, headers={"x-api-key": GATEWAY_KEY}
    )
    assert response.status_code == 400 and response.json()["error"]["type"] == "invalid_request_error"
