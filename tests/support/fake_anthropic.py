"""Anthropic Messages API replies for the scripted local server.

Shapes follow Anthropic's API reference (https://docs.anthropic.com/en/api/messages,
.../messages-streaming, .../errors): a streamed message is message_start, then per
content block content_block_start / content_block_delta... / content_block_stop,
then message_delta (stop_reason, output usage) and message_stop, with ping events
anywhere.
"""

from __future__ import annotations

import json
from typing import Any

from tests.support.scripted_http import Reply, sse

MODEL = "claude-3-5-haiku-20241022"


def message(content: list[dict[str, Any]], stop_reason: str = "end_turn", **usage: int) -> Reply:
    return Reply(
        200,
        {
            "id": "msg_01",
            "type": "message",
            "role": "assistant",
            "model": MODEL,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {"input_tokens": 12, "output_tokens": 7, **usage},
        },
        headers={"request-id": "req_01"},
    )


def error(status: int, kind: str, text: str, **headers: str) -> Reply:
    return Reply(
        status,
        {"type": "error", "error": {"type": kind, "message": text}},
        headers={"request-id": "req_err", **headers},
    )


def stream(
    blocks: list[dict[str, Any]],
    stop_reason: str = "end_turn",
    *,
    end: bool = True,
    error_after: int | None = None,
    error_kind: str = "overloaded_error",
) -> Reply:
    """A streamed message; each block is {"type": "text", "parts": [...]}, {"type": "tool_use",
    "id", "name", "json_parts": [...]} or {"type": "thinking", "parts": [...]}.
    ``error_after=n`` sends an error event after n content deltas; ``end=False`` stops without message_stop.
    """
    events: list[tuple[str | None, Any]] = [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_s1",
                    "type": "message",
                    "role": "assistant",
                    "model": MODEL,
                    "content": [],
                    "stop_reason": None,
                    "usage": {"input_tokens": 25, "cache_read_input_tokens": 5, "output_tokens": 1},
                },
            },
        ),
        ("ping", {"type": "ping"}),
    ]
    deltas = 0
    for index, block in enumerate(blocks):
        if block["type"] == "text":
            start, parts = {"type": "text", "text": ""}, [{"type": "text_delta", "text": p} for p in block["parts"]]
        elif block["type"] == "thinking":
            start = {"type": "thinking", "thinking": ""}
            parts = [{"type": "thinking_delta", "thinking": p} for p in block["parts"]]
            parts.append({"type": "signature_delta", "signature": "EqQBCgIYAhIM"})
        else:
            start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            parts = [{"type": "input_json_delta", "partial_json": p} for p in block["json_parts"]]
        events.append(("content_block_start", {"type": "content_block_start", "index": index, "content_block": start}))
        for part in parts:
            if error_after is not None and deltas == error_after:
                events.append(("error", {"type": "error", "error": {"type": error_kind, "message": "Overloaded"}}))
                return Reply(200, chunks=sse(*events))
            events.append(("content_block_delta", {"type": "content_block_delta", "index": index, "delta": part}))
            deltas += 1
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    if error_after is not None:
        events.append(("error", {"type": "error", "error": {"type": error_kind, "message": "Overloaded"}}))
        return Reply(200, chunks=sse(*events))
    events.append(
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": 15},
            },
        )
    )
    if end:
        events.append(("message_stop", {"type": "message_stop"}))
    return Reply(200, chunks=sse(*events))


def tool_json_parts(arguments: dict[str, Any], pieces: int = 3) -> list[str]:
    text = json.dumps(arguments)
    step = max(1, len(text) // pieces)
    return [text[i : i + step] for i in range(0, len(text), step)]
