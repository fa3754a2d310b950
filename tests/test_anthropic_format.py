"""Pure translation between the OpenAI-shaped model and Anthropic's Messages API."""

from __future__ import annotations

import json

import pytest
from llmrelay.core import (
    AuthenticationError,
    BadRequestError,
    ChatRequest,
    FunctionCall,
    Message,
    ModelNotFoundError,
    RateLimitError,
    ServerError,
    StreamInterruptedError,
    ToolCall,
)
from llmrelay.core.stream import ChatStream
from llmrelay.providers.anthropic_format import (
    StreamDecoder,
    error_from_anthropic,
    from_messages_response,
    to_messages_body,
)

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "weather",
        "description": "Weather now",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def test_system_text_images_and_defaults():
    request = ChatRequest(
        model="claude-x",
        temperature=1.5,
        stop="END",
        user="u-1",
        messages=[
            Message.system("Be brief."),
            Message.system("Answer in French."),
            Message.user("What is this?", images=["data:image/png;base64,iVBORw0KGgo=", "https://img.test/cat.jpg"]),
        ],
    )
    body = to_messages_body(request)

    assert body["system"] == "Be brief.\n\nAnswer in French."
    assert body["max_tokens"] == 4096
    assert body["temperature"] == 1.0  # Anthropic's range ends at 1
    assert body["stop_sequences"] == ["END"]
    assert body["metadata"] == {"user_id": "u-1"}
    assert body["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                {"type": "image", "source": {"type": "url", "url": "https://img.test/cat.jpg"}},
            ],
        }
    ]


def test_tool_calls_and_results_become_tool_use_and_tool_result_blocks():
    request = ChatRequest.coerce(
        {
            "model": "claude-x",
            "tools": [WEATHER_TOOL],
            "tool_choice": {"type": "function", "function": {"name": "weather"}},
            "parallel_tool_calls": False,
            "messages": [
                {"role": "user", "content": "Weather in Paris and Rome?"},
                Message.assistant(
                    "Checking.",
                    tool_calls=[
                        ToolCall(id="toolu_1", function=FunctionCall(name="weather", arguments='{"city": "Paris"}')),
                        ToolCall(id="toolu_2", function=FunctionCall(name="weather", arguments='{"city": "Rome"}')),
                    ],
                ).model_dump(exclude_none=True),
                {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
                {"role": "tool", "tool_call_id": "toolu_2", "content": "24C"},
            ],
        }
    )
    body = to_messages_body(request)

    assert body["tools"] == [
        {"name": "weather", "description": "Weather now", "input_schema": WEATHER_TOOL["function"]["parameters"]}
    ]
    assert body["tool_choice"] == {"type": "tool", "name": "weather", "disable_parallel_tool_use": True}
    assert "parallel_tool_calls" not in body
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][1]["content"] == [
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "toolu_2", "name": "weather", "input": {"city": "Rome"}},
    ]
    # Both results in one user turn, as the API wants turns to alternate.
    assert body["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
        {"type": "tool_result", "tool_use_id": "toolu_2", "content": "24C"},
    ]


@pytest.mark.parametrize(
    "choice, expected",
    [
        ("auto", {"type": "auto"}),
        ("required", {"type": "any"}),
        ("none", {"type": "none"}),
    ],
)
def test_tool_choice_strings(choice, expected):
    request = ChatRequest(model="m", tools=[WEATHER_TOOL], tool_choice=choice, messages=[Message.user("x")])
    assert to_messages_body(request)["tool_choice"] == expected


def test_anthropic_fields_pass_through_and_openai_only_hints_are_dropped():
    request = ChatRequest.coerce(
        {
            "model": "m",
            "messages": [{"role": "user", "content": "x"}],
            "seed": 3,
            "top_k": 5,
            "extra_body": {"thinking": {"type": "enabled", "budget_tokens": 1024}},
        }
    )
    body = to_messages_body(request)
    assert body["top_k"] == 5 and body["thinking"]["budget_tokens"] == 1024
    assert "seed" not in body


@pytest.mark.parametrize(
    "request_data, message",
    [
        ({"response_format": {"type": "json_object"}}, "response_format is not supported"),
        ({"messages": [{"role": "system", "content": "only a system prompt"}]}, "no user or assistant message"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "file:///x.png"}}]}]},
            "neither a data: URL nor http",
        ),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [{"id": "t", "function": {"name": "f", "arguments": "{oops"}}],
                    }
                ]
            },
            "not JSON",
        ),
        ({"tool_choice": "sometimes"}, "tool_choice 'sometimes' is not understood"),
    ],
)
def test_untranslatable_requests_are_clear_errors(request_data, message):
    data = {"model": "m", "messages": [{"role": "user", "content": "x"}], **request_data}
    with pytest.raises(BadRequestError, match=message):
        to_messages_body(ChatRequest.coerce(data))


def test_response_with_thinking_text_and_tool_use():
    reply = from_messages_response(
        {
            "id": "msg_1",
            "model": "claude-x",
            "stop_reason": "tool_use",
            "content": [
                {"type": "thinking", "thinking": "The user wants weather.", "signature": "sig"},
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_9", "name": "weather", "input": {"city": "Oslo"}},
            ],
            "usage": {
                "input_tokens": 10,
                "cache_read_input_tokens": 90,
                "cache_creation_input_tokens": 0,
                "output_tokens": 20,
            },
        }
    )
    assert reply.text == "Let me check."
    assert reply.message.reasoning == "The user wants weather."
    assert reply.tool_calls[0].id == "toolu_9"
    assert json.loads(reply.tool_calls[0].function.arguments) == {"city": "Oslo"}
    assert (reply.finish_reason, reply.native_finish_reason) == ("tool_calls", "tool_use")
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens, reply.usage.cached_tokens) == (100, 20, 90)


@pytest.mark.parametrize(
    "stop, mapped",
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("pause_turn", "pause_turn"),
    ],
)
def test_stop_reasons(stop, mapped):
    reply = from_messages_response({"content": [{"type": "text", "text": "x"}], "stop_reason": stop})
    assert reply.finish_reason == mapped and reply.native_finish_reason == stop


def test_stream_events_assemble_text_reasoning_and_tool_calls():
    decoder = StreamDecoder(model="claude-x")
    events = [
        {
            "type": "message_start",
            "message": {"id": "msg_s", "model": "claude-x", "usage": {"input_tokens": 30, "output_tokens": 1}},
        },
        {"type": "ping"},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "hmm"}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "s"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Hi "}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "there"}},
        {
            "type": "content_block_start",
            "index": 2,
            "content_block": {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {}},
        },
        {"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": '{"ci'}},
        {
            "type": "content_block_delta",
            "index": 2,
            "delta": {"type": "input_json_delta", "partial_json": 'ty": "Oslo"}'},
        },
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 12}},
        {"type": "message_stop"},
    ]
    chunks = [c for c in (decoder.feed(e) for e in events) if c is not None]
    assert decoder.done
    response = ChatStream(iter(chunks), provider="anthropic").final_response()
    assert response.id == "msg_s"
    assert response.text == "Hi there" and response.message.reasoning == "hmm"
    assert response.tool_calls[0].id == "toolu_1"
    assert json.loads(response.tool_calls[0].function.arguments) == {"city": "Oslo"}
    assert response.finish_reason == "tool_calls"
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (30, 12)


def test_stream_error_event_overloaded_is_an_availability_interruption():
    with pytest.raises(StreamInterruptedError) as caught:
        StreamDecoder().feed({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    assert caught.value.upstream_code == "overloaded_error"
    assert caught.value.availability


def test_stream_error_event_for_a_client_error_keeps_its_type():
    with pytest.raises(BadRequestError):
        StreamDecoder().feed({"type": "error", "error": {"type": "invalid_request_error", "message": "bad"}})


@pytest.mark.parametrize(
    "status, kind, cls",
    [
        (529, "overloaded_error", ServerError),
        (429, "rate_limit_error", RateLimitError),
        (401, "authentication_error", AuthenticationError),
        (400, "invalid_request_error", BadRequestError),
        (None, "overloaded_error", ServerError),
    ],
)
def test_error_bodies_map_to_the_hierarchy(status, kind, cls):
    error = error_from_anthropic(
        {"type": "error", "error": {"type": kind, "message": "m"}}, status=status, request_id="req_1"
    )
    assert type(error) is cls
    assert error.status == (status or 529) and error.request_id == "req_1"
    assert kind in str(error)


def test_404_naming_the_model_is_model_not_found():
    error = error_from_anthropic(
        {"type": "error", "error": {"type": "not_found_error", "message": "model: claude-9"}},
        status=404,
        model="claude-9",
    )
    assert isinstance(error, ModelNotFoundError)
