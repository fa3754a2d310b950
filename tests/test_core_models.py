"""The domain model accepts what OpenAI-style agent code already sends, and keeps what it does not know."""

from __future__ import annotations

from decimal import Decimal

import pytest
from llmrelay.core import (
    ChatRequest,
    ChatResponse,
    Credits,
    ImagePart,
    Message,
    ModelInfo,
    ModelList,
    Pricing,
    TextPart,
    ToolCall,
    Usage,
    ValidationReport,
)
from llmrelay.core.errors import BadRequestError
from llmrelay.core.models import normalize_finish_reason, to_decimal
from pydantic import ValidationError

OPENAI_TOOL_CONVERSATION = {
    "model": "openai/gpt-4o-mini",
    "messages": [
        {"role": "system", "content": "You are terse."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in this picture, and what's the weather in Paris?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "low"}},
            ],
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
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp_c": 21}'},
    ],
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather for a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            },
        }
    ],
    "tool_choice": "auto",
    "temperature": 0.2,
    "max_tokens": 64,
    "stop": ["\n\n"],
    "response_format": {"type": "json_object"},
}


def test_plain_openai_dict_with_images_tool_calls_and_tool_results_is_accepted() -> None:
    request = ChatRequest.coerce(OPENAI_TOOL_CONVERSATION)

    system, user, assistant, tool = request.messages
    assert system.text == "You are terse."
    assert isinstance(user.content, list)
    assert isinstance(user.content[0], TextPart)
    assert isinstance(user.content[1], ImagePart)
    assert user.content[1].image_url.url == "https://example.com/cat.png"
    assert user.content[1].image_url.detail == "low"
    assert request.has_images
    assert assistant.tool_calls == [ToolCall.model_validate(OPENAI_TOOL_CONVERSATION["messages"][2]["tool_calls"][0])]
    assert assistant.tool_calls[0].function.arguments == '{"city": "Paris"}'
    assert tool.tool_call_id == "call_1"
    assert request.tools is not None and request.tools[0].function.name == "get_weather"


def test_to_wire_round_trips_an_openai_request() -> None:
    wire = ChatRequest.coerce(OPENAI_TOOL_CONVERSATION).to_wire()
    # What goes out is what came in: agent code moves over without changes.
    expected = dict(OPENAI_TOOL_CONVERSATION)
    expected["messages"] = [{k: v for k, v in m.items() if v is not None} for m in OPENAI_TOOL_CONVERSATION["messages"]]
    assert wire == expected


def test_unknown_content_parts_pass_through() -> None:
    audio = {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
    request = ChatRequest.coerce({"model": "m", "messages": [{"role": "user", "content": [audio]}]})
    assert request.to_wire()["messages"][0]["content"] == [audio]


def test_provider_specific_fields_pass_through_to_the_wire() -> None:
    request = ChatRequest.coerce(
        {
            "model": "openrouter/auto",
            "messages": [{"role": "user", "content": "hi"}],
            "models": ["a/b", "c/d"],  # an unknown top-level field
            "provider": {"order": ["Groq"], "allow_fallbacks": False},
            "extra_body": {"transforms": ["middle-out"], "reasoning": {"effort": "low"}},
        }
    )
    wire = request.to_wire()
    assert wire["models"] == ["a/b", "c/d"]
    assert wire["provider"] == {"order": ["Groq"], "allow_fallbacks": False}
    assert wire["transforms"] == ["middle-out"]
    assert wire["reasoning"] == {"effort": "low"}
    assert "extra_body" not in wire
    assert "stream" not in wire


def test_a_request_object_is_returned_as_is_and_other_types_are_refused() -> None:
    request = ChatRequest(messages=[Message.user("hi")])
    assert ChatRequest.coerce(request) is request
    with pytest.raises(BadRequestError, match="ChatRequest or a dict in OpenAI chat format, not list"):
        ChatRequest.coerce([{"role": "user", "content": "hi"}])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "value"),
    [("temperature", 3), ("top_p", -0.1), ("max_tokens", 0), ("messages", [])],
)
def test_out_of_range_sampling_parameters_are_rejected(field: str, value: object) -> None:
    data = {"model": "m", "messages": [{"role": "user", "content": "hi"}], field: value}
    with pytest.raises(BadRequestError, match=f"invalid chat request: {field}: ") as info:
        ChatRequest.coerce(data, provider="p")
    assert info.value.provider == "p"


def test_a_missing_model_is_filled_from_the_default() -> None:
    data = {"messages": [{"role": "user", "content": "hi"}]}
    assert ChatRequest.coerce(data, default_model="m/default").model == "m/default"
    assert ChatRequest.coerce({**data, "model": "mine"}, default_model="m/default").model == "mine"


def test_a_tool_message_needs_the_id_of_the_call_it_answers() -> None:
    with pytest.raises(ValidationError, match="tool message needs tool_call_id"):
        Message(role="tool", content="42")


def test_message_helpers_build_openai_shapes() -> None:
    message = Message.user("look", images=["https://example.com/a.png"])
    assert message.model_dump(exclude_none=True) == {
        "role": "user",
        "content": [
            {"type": "text", "text": "look"},
            {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
        ],
    }
    assert message.text == "look"
    assert Message.tool("ok", tool_call_id="c1").model_dump(exclude_none=True) == {
        "role": "tool",
        "content": "ok",
        "tool_call_id": "c1",
    }


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("stop", "stop"),
        ("end_turn", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("SAFETY", "content_filter"),
        ("a_reason_from_2027", "a_reason_from_2027"),
        (None, None),
    ],
)
def test_finish_reasons_are_normalized_and_unknown_ones_kept(sent: str | None, kept: str | None) -> None:
    assert normalize_finish_reason(sent) == kept


def test_a_response_accepts_any_finish_reason_and_extra_fields() -> None:
    response = ChatResponse.model_validate(
        {
            "id": "gen-1",
            "message": {"role": "assistant", "content": "hi"},
            "finish_reason": "brand_new_reason",
            "system_fingerprint": "fp_1",
            "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4, "cost": "0.00012"},
        }
    )
    assert response.finish_reason == "brand_new_reason"
    assert response.model_extra == {"system_fingerprint": "fp_1"}
    assert response.text == "hi"
    assert response.tool_calls == []
    assert response.cost == Decimal("0.00012")


def test_usage_from_openai_flattens_details_and_keeps_cost_as_decimal() -> None:
    usage = Usage.from_openai(
        {
            "prompt_tokens": 194,
            "completion_tokens": 2,
            "prompt_tokens_details": {"cached_tokens": 128},
            "completion_tokens_details": {"reasoning_tokens": 1},
            "cost": 0.000095,
        }
    )
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (194, 2, 196)
    assert usage.cached_tokens == 128
    assert usage.reasoning_tokens == 1
    assert usage.cost == Decimal("0.000095")
    assert Usage.from_openai(None) is None
    assert Usage.from_openai({}) is None


def test_pricing_is_decimal_per_token_and_per_million() -> None:
    pricing = Pricing.model_validate({"prompt": "0.00000015", "completion": "0.0000006", "request": "0"})
    assert pricing.prompt == Decimal("0.00000015")
    assert pricing.prompt_per_million == Decimal("0.15")
    assert pricing.completion_per_million == Decimal("0.6")
    assert not pricing.is_unknown
    assert not pricing.is_free
    # Floats keep the digits they print with (no binary noise).
    assert Pricing(prompt=0.1).prompt == Decimal("0.1")


def test_a_negative_price_means_unknown() -> None:
    auto = Pricing.model_validate({"prompt": "-1", "completion": "-1"})
    assert auto.is_unknown
    assert auto.prompt_per_million is None
    assert auto.completion_per_million is None
    assert not Pricing.known(auto.prompt)
    assert Pricing(prompt="0", completion="0").is_free


def test_to_decimal_gives_none_for_missing_or_garbage() -> None:
    assert to_decimal(None) is None
    assert to_decimal("") is None
    assert to_decimal("n/a") is None
    assert to_decimal(3) == Decimal(3)


def test_model_list_behaves_like_a_list_of_models() -> None:
    models = ModelList(
        models=[
            ModelInfo(id="a/vision", input_modalities=["text", "image"], supported_parameters=["tools"]),
            ModelInfo(id="b/text"),
        ]
    )
    assert len(models) == 2
    assert [m.id for m in models] == models.ids == ["a/vision", "b/text"]
    assert models[1].id == "b/text"
    assert models.get("a/vision") is models[0]
    assert models.get("nope") is None
    assert models[0].supports_images and models[0].supports_tools
    assert not models[1].supports_images


def test_credits_remaining_is_exact() -> None:
    credits = Credits(total_credits="10.10", total_usage="0.20")
    assert credits.remaining == Decimal("9.90")


def test_validation_report_ok_only_when_valid() -> None:
    assert ValidationReport(provider="p", outcome="valid", message="fine").ok
    assert not ValidationReport(provider="p", outcome="invalid_key", message="bad key").ok
    with pytest.raises(ValidationError):
        ValidationReport(provider="p", outcome="maybe", message="?")  # type: ignore[arg-type]
