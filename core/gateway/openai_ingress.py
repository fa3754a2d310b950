"""OpenAI's API in and out: ``/v1/chat/completions``, ``/v1/models``, ``/v1/embeddings``.

The request body is already OpenAI's chat format, which is llmrelay's own
(:class:`~llmrelay.core.models.ChatRequest` keeps unknown fields and sends
them on), so a request needs no translation; responses and stream chunks are
written back in OpenAI's shapes: one ``id`` and ``created`` for every chunk
of a stream, the role in the first chunk only, tool-call deltas with their
``index``, the finish reason in a chunk of its own, a usage chunk with
``choices: []`` when ``stream_options.include_usage`` asks, then
``data: [DONE]``.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..errors import BadRequestError, LLMRelayError
from .errors import openai_error_body

if TYPE_CHECKING:
    from ..catalog import ModelList
    from ..embeddings import EmbeddingResponse
    from ..models import ChatResponse, Usage
    from ..stream import ChatStream, StreamChunk, ToolCallDelta

__all__ = [
    "chat_request",
    "completion_body",
    "embeddings_body",
    "models_body",
    "sse_chunks",
    "usage_body",
]

_DUMPS = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
# An SSE comment: clients skip it; it keeps proxies from timing an idle stream out.
PING = b": ping\n\n"


def chat_request(body: Any) -> tuple[dict[str, Any], bool, bool]:
    """The chat request to send on, whether to stream, and whether the stream ends with usage."""
    if not isinstance(body, dict):
        raise BadRequestError("the request body must be a JSON object in OpenAI chat format")
    request = dict(body)
    stream = bool(request.pop("stream", False))
    # stream_options is passed on as well: an upstream may need it, and the providers keep what they are given.
    options = request.get("stream_options") or {}
    include_usage = bool(options.get("include_usage")) if isinstance(options, dict) else False
    return request, stream, include_usage


def usage_body(usage: Usage | None) -> dict[str, Any] | None:
    if usage is None:
        return None
    body: dict[str, Any] = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens or usage.prompt_tokens + usage.completion_tokens,
    }
    if usage.cached_tokens is not None:
        body["prompt_tokens_details"] = {"cached_tokens": usage.cached_tokens}
    if usage.reasoning_tokens is not None:
        body["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    if usage.cost is not None:
        body["cost"] = float(usage.cost)
    return body


def _completion_id(upstream_id: str | None) -> str:
    return upstream_id or f"chatcmpl-{uuid.uuid4().hex}"


def completion_body(response: ChatResponse, requested_model: str | None) -> dict[str, Any]:
    message = response.message
    out: dict[str, Any] = {"role": "assistant", "content": message.content if message.content != "" else ""}
    if isinstance(message.content, list):
        out["content"] = message.text
    if message.content is None:
        out["content"] = None
    if message.tool_calls:
        out["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.function.name, "arguments": call.function.arguments},
            }
            for call in message.tool_calls
        ]
    if message.reasoning:
        out["reasoning"] = message.reasoning
    details = (message.model_extra or {}).get("reasoning_details")
    if details:
        out["reasoning_details"] = details  # OpenRouter's shape, signatures included
    body: dict[str, Any] = {
        "id": _completion_id(response.id),
        "object": "chat.completion",
        "created": response.created or int(time.time()),
        "model": response.model or requested_model or "",
        "choices": [{"index": 0, "message": out, "finish_reason": response.finish_reason or "stop", "logprobs": None}],
    }
    usage = usage_body(response.usage)
    if usage is not None:
        body["usage"] = usage
    return body


def _delta(chunk: StreamChunk, first: bool) -> dict[str, Any]:
    delta: dict[str, Any] = {"role": "assistant"} if first else {}
    if chunk.text:
        delta["content"] = chunk.text
    if chunk.reasoning:
        delta["reasoning"] = chunk.reasoning
    if chunk.tool_calls:
        delta["tool_calls"] = [_tool_delta(call) for call in chunk.tool_calls]
    return delta


def sse_chunks(stream: ChatStream, requested_model: str | None, include_usage: bool) -> Iterator[bytes]:
    """The SSE body of a streamed completion; an upstream failure ends it with an ``error`` event.

    The stream itself keeps the id, model, finish reason and usage of what it
    delivered, so the finish and usage chunks are written from it at the end.
    """
    created = int(time.time())
    head: dict[str, Any] = {"id": None, "object": "chat.completion.chunk", "created": created, "model": ""}

    def frame(choices: list[dict[str, Any]], **extra: Any) -> bytes:
        head["model"] = stream.model or requested_model or ""
        return b"data: " + _DUMPS({**head, "choices": choices, **extra}).encode() + b"\n\n"

    first = True
    try:
        for chunk in stream:
            if head["id"] is None:
                head["id"] = _completion_id(stream.id)
            if chunk.text or chunk.reasoning or chunk.tool_calls:
                # Chunks with only a finish reason or usage are summed up at the end.
                yield frame([{"index": 0, "delta": _delta(chunk, first), "finish_reason": None, "logprobs": None}])
                first = False
    except LLMRelayError as error:
        _status, body, _retry = openai_error_body(error)
        yield b"data: " + _DUMPS(body).encode() + b"\n\n"
        return
    if head["id"] is None:
        head["id"] = _completion_id(stream.id)
    end = b""
    if first:
        end += frame(
            [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None, "logprobs": None}]
        )
    end += frame([{"index": 0, "delta": {}, "finish_reason": stream.finish_reason or "stop", "logprobs": None}])
    if include_usage:
        end += frame([], usage=usage_body(stream.usage))
    yield end + b"data: [DONE]\n\n"


def _tool_delta(call: ToolCallDelta) -> dict[str, Any]:
    item: dict[str, Any] = {"index": call.index}
    if call.id:
        item["id"] = call.id
        item["type"] = "function"
    function: dict[str, Any] = {"arguments": call.arguments}
    if call.name:
        function["name"] = call.name
    item["function"] = function
    return item


def models_body(models: ModelList) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {"id": model.id, "object": "model", "created": model.created or 0, "owned_by": model.provider or "llmrelay"}
            for model in models
        ],
    }


def embeddings_body(response: EmbeddingResponse, requested_model: str | None) -> dict[str, Any]:
    usage = response.usage
    body: dict[str, Any] = {
        "object": "list",
        "data": [
            {"object": "embedding", "index": index, "embedding": vector}
            for index, vector in enumerate(response.embeddings)
        ],
        "model": response.model or requested_model or "",
        "usage": {
            "prompt_tokens": usage.prompt_tokens if usage else 0,
            "total_tokens": (usage.total_tokens or usage.prompt_tokens) if usage else 0,
        },
    }
    if response.cost is not None:
        # OpenRouter's extension of the shape, as on chat usage (with any configured markup applied).
        body["usage"]["cost"] = float(response.cost)
    if response.id:
        body["id"] = response.id
    return body


def dumps(data: Any) -> bytes:
    return _DUMPS(data).encode()
