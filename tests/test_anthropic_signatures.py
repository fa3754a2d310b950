"""Anthropic's signed thinking and cache_control survive llmrelay's translation both ways (what the gateway needs)."""

from __future__ import annotations

from llmrelay.core.models import ChatRequest
from llmrelay.providers.anthropic_format import StreamDecoder, from_messages_response, to_messages_body


def test_signed_thinking_is_kept_as_reasoning_details() -> None:
    response = from_messages_response(
        {
            "id": "msg_1",
            "model": "claude",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "sig-1"},
                {"type": "redacted_thinking", "data": "opaque"},
                {"type": "text", "text": "hi"},
            ],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 1, "output_tokens": 1},
        }
    )
    assert response.message.reasoning == "hmm" and response.text == "hi"
    assert (response.message.model_extra or {})["reasoning_details"] == [
        {"type": "reasoning.text", "text": "hmm", "format": "anthropic-claude-v1", "signature": "sig-1"},
        {"type": "reasoning.encrypted", "data": "opaque", "format": "anthropic-claude-v1"},
    ]


def test_signature_delta_is_a_chunk_carrying_the_raw_event() -> None:
    decoder = StreamDecoder(model="claude")
    event = {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "sig-2"}}
    chunk = decoder.feed(event)
    assert chunk is not None and chunk.raw == event
    assert (chunk.text, chunk.reasoning, chunk.tool_calls) == ("", "", None)


def test_reasoning_details_go_back_as_thinking_blocks_and_cache_control_is_kept() -> None:
    request = ChatRequest.coerce(
        {
            "model": "claude",
            "messages": [
                {
                    "role": "system",
                    "content": [{"type": "text", "text": "ctx", "cache_control": {"type": "ephemeral"}}],
                },
                {"role": "user", "content": [{"type": "text", "text": "q", "cache_control": {"type": "ephemeral"}}]},
                {
                    "role": "assistant",
                    "content": "a",
                    "reasoning": "hmm",
                    "reasoning_details": [
                        {"type": "reasoning.text", "text": "hmm", "signature": "sig-1"},
                        {"type": "reasoning.encrypted", "data": "opaque"},
                        {"type": "reasoning.text", "text": "unsigned"},
                    ],
                },
                {"role": "user", "content": "next"},
            ],
        }
    )
    body = to_messages_body(request)
    assert body["system"] == [{"type": "text", "text": "ctx", "cache_control": {"type": "ephemeral"}}]
    assert body["messages"][0]["content"] == [{"type": "text", "text": "q", "cache_control": {"type": "ephemeral"}}]
    assert body["messages"][1]["content"] == [
        {"type": "thinking", "thinking": "hmm", "signature": "sig-1"},
        {"type": "redacted_thinking", "data": "opaque"},
        {"type": "text", "text": "a"},
    ]


def test_plain_system_text_stays_a_string() -> None:
    body = to_messages_body(
        ChatRequest.coerce(
            {"model": "c", "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]}
        )
    )
    assert body["system"] == "s"
