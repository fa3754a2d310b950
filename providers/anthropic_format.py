"""Translation between llmrelay's OpenAI-shaped model and Anthropic's Messages API.

Pure functions, no I/O, so each rule is testable on its own:

* :func:`to_messages_body`: a :class:`ChatRequest` into a ``POST /v1/messages``
  body. System messages become the top-level ``system``; text and image
  parts become content blocks (``data:`` URLs as base64 sources, others as
  URL sources); assistant tool calls become ``tool_use`` blocks and tool
  messages ``tool_result`` blocks in a user turn; consecutive messages of one
  role are merged, as the API wants turns to alternate; ``tools`` /
  ``tool_choice`` / ``parallel_tool_calls`` / ``stop`` / ``user`` are mapped.
* :func:`from_messages_response`: a Messages API response into a
  :class:`ChatResponse` (text, thinking as ``reasoning``, ``tool_use`` as
  tool calls, ``stop_reason`` mapped with the raw one kept, usage with cache
  reads counted as prompt tokens).
* :class:`StreamDecoder`: streaming events (``message_start``,
  ``content_block_start`` / ``_delta`` / ``_stop`` with ``text_delta``,
  ``input_json_delta``, ``thinking_delta``, ``message_delta``,
  ``message_stop``, ``ping``, ``error``) into :class:`StreamChunk`.
* :func:`error_from_anthropic`: ``{"type": "error", "error": {"type",
  "message"}}`` into the typed error hierarchy, by HTTP status or, for an
  ``error`` event inside a stream, by the error's type (529
  ``overloaded_error`` is a :class:`ServerError`, an availability error).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from llmrelay.core.errors import (
    BadRequestError,
    LLMRelayError,
    ModelNotFoundError,
    StreamInterruptedError,
    error_for_status,
)
from llmrelay.core.models import (
    ChatRequest,
    ChatResponse,
    FunctionCall,
    ImagePart,
    Message,
    TextPart,
    Tool,
    ToolCall,
    Usage,
    normalize_finish_reason,
)
from llmrelay.core.secrets import redact
from llmrelay.core.stream import StreamChunk, ToolCallDelta

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "ERROR_STATUS",
    "StreamDecoder",
    "error_from_anthropic",
    "from_messages_response",
    "to_messages_body",
    "usage_from_anthropic",
]

DEFAULT_MAX_TOKENS = 4096

# Anthropic's error types and the HTTP status each comes with
# (https://docs.anthropic.com/en/api/errors); used for errors inside a stream.
ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}

_DATA_URL = re.compile(r"^data:(?P<media>[\w.+-]+/[\w.+-]+);base64,(?P<data>.*)$", re.S)

# OpenAI request fields with no Messages API equivalent. Sampling hints are
# dropped (a chain that falls back from OpenAI to Anthropic keeps working);
# fields that change what the answer is are refused.
_DROPPED = {
    "seed",
    "frequency_penalty",
    "presence_penalty",
    "n",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "stream_options",
    "max_completion_tokens",
}
_REFUSED = {"response_format": "use a tool with an input_schema to get structured output from Anthropic"}
_HANDLED = {
    "model",
    "messages",
    "temperature",
    "top_p",
    "max_tokens",
    "stop",
    "tools",
    "tool_choice",
    "user",
    "extra_body",
    "parallel_tool_calls",
}


# --------------------------------------------------------------------------- request


def _image_block(part: ImagePart, provider: str) -> dict[str, Any]:
    url = part.image_url.url
    match = _DATA_URL.match(url)
    if match:
        return {"type": "image", "source": {"type": "base64", "media_type": match["media"], "data": match["data"]}}
    if url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise BadRequestError(
        f"image URL {url[:40]!r}... is neither a data: URL nor http(s): Anthropic needs one of them", provider=provider
    )


def _content_blocks(content: Any, provider: str) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks = []
    for part in content:
        if isinstance(part, TextPart):
            # Extra fields (cache_control, citations) are Anthropic's own: sent as written.
            blocks.append({"type": "text", "text": part.text, **(part.model_extra or {})})
        elif isinstance(part, ImagePart):
            blocks.append(_image_block(part, provider))
        else:  # an Anthropic-native block (document, ...) passes through as written
            blocks.append(part.model_dump(exclude_none=True))
    return blocks


def _tool_use(call: ToolCall, provider: str) -> dict[str, Any]:
    try:
        arguments = json.loads(call.function.arguments or "{}")
    except ValueError:
        raise BadRequestError(
            f"the assistant's tool call {call.id!r} ({call.function.name}) has arguments that are not JSON; "
            "Anthropic needs them as an object",
            provider=provider,
        ) from None
    return {"type": "tool_use", "id": call.id, "name": call.function.name, "input": arguments}


def _thinking_blocks(message: Message) -> list[dict[str, Any]]:
    """Signed thinking from an earlier turn (OpenRouter's ``reasoning_details`` shape), sent back as it came.

    Anthropic needs a tool-using turn's thinking, with its signature, when the
    conversation goes on; reasoning without a signature cannot be sent back.
    """
    blocks = []
    for detail in (message.model_extra or {}).get("reasoning_details") or []:
        if not isinstance(detail, Mapping):
            continue
        if detail.get("type") == "reasoning.text" and detail.get("signature"):
            blocks.append({"type": "thinking", "thinking": detail.get("text") or "", "signature": detail["signature"]})
        elif detail.get("type") == "reasoning.encrypted" and detail.get("data"):
            blocks.append({"type": "redacted_thinking", "data": detail["data"]})
    return blocks


def _turns(messages: list[Message], provider: str) -> tuple[str | list[dict[str, Any]] | None, list[dict[str, Any]]]:
    system: list[str] = []
    system_blocks: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []

    def add(role: str, blocks: list[dict[str, Any]]) -> None:
        if not blocks:
            return
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})

    for message in messages:
        role = message.role
        if role in ("system", "developer"):
            if isinstance(message.content, list) and any(p.model_extra for p in message.content):
                system_blocks += _content_blocks(message.content, provider)  # cache_control on system blocks
            else:
                system.append(message.text)
        elif role == "user":
            add("user", _content_blocks(message.content, provider))
        elif role == "assistant":
            blocks = _thinking_blocks(message) + _content_blocks(message.content, provider)
            blocks += [_tool_use(call, provider) for call in message.tool_calls or []]
            add("assistant", blocks)
        elif role == "tool":
            result: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.tool_call_id}
            content = message.content
            result["content"] = content if isinstance(content, str) else _content_blocks(content, provider)
            add("user", [result])
        else:
            raise BadRequestError(
                f"message role {role!r} has no Anthropic equivalent (use system, user, assistant or tool)",
                provider=provider,
            )
    if system_blocks:
        return [{"type": "text", "text": text} for text in system if text] + system_blocks, turns
    return ("\n\n".join(s for s in system if s) or None), turns


def _tool_choice(choice: Any, parallel: Any, provider: str) -> dict[str, Any] | None:
    mapped: dict[str, Any] | None
    if choice is None:
        mapped = None
    elif choice == "auto":
        mapped = {"type": "auto"}
    elif choice in ("required", "any"):
        mapped = {"type": "any"}
    elif choice == "none":
        mapped = {"type": "none"}
    elif isinstance(choice, Mapping) and choice.get("type") == "function":
        mapped = {"type": "tool", "name": (choice.get("function") or {}).get("name")}
    elif isinstance(choice, Mapping) and choice.get("type") in ("auto", "any", "tool", "none"):
        mapped = dict(choice)  # already Anthropic's shape
    else:
        raise BadRequestError(
            f"tool_choice {choice!r} is not understood; use auto, required, none or "
            '{"type": "function", "function": {"name": ...}}',
            provider=provider,
        )
    if parallel is False:
        mapped = dict(mapped or {"type": "auto"}, disable_parallel_tool_use=True)
    return mapped


def _refuse_unsupported(request: ChatRequest, extras: Mapping[str, Any], provider: str) -> None:
    for name, hint in _REFUSED.items():
        if getattr(request, name, None) is not None or name in extras or name in request.extra_body:
            raise BadRequestError(f"{name} is not supported by Anthropic's Messages API: {hint}", provider=provider)


def _tool_definitions(tools: list[Tool]) -> list[dict[str, Any]]:
    definitions = []
    for tool in tools:
        definition: dict[str, Any] = {"name": tool.function.name, "input_schema": tool.function.parameters}
        if tool.function.description:
            definition["description"] = tool.function.description
        cache_control = (tool.model_extra or {}).get("cache_control")
        if cache_control is not None:  # a prompt-cache breakpoint after the tool list, Anthropic's own field
            definition["cache_control"] = cache_control
        definitions.append(definition)
    return definitions


def to_messages_body(
    request: ChatRequest, *, default_max_tokens: int = DEFAULT_MAX_TOKENS, provider: str = "anthropic"
) -> dict[str, Any]:
    """The ``POST /v1/messages`` body for ``request`` (without ``stream``)."""
    extras = dict(request.model_extra or {})
    _refuse_unsupported(request, extras, provider)
    system, turns = _turns(request.messages, provider)
    if not turns:
        raise BadRequestError(
            "the request has no user or assistant message (Anthropic needs at least one)", provider=provider
        )
    body: dict[str, Any] = {
        "model": request.model,
        "max_tokens": request.max_tokens or default_max_tokens,
        "messages": turns,
    }
    if system:
        body["system"] = system
    if request.temperature is not None:
        # OpenAI's range is 0..2, Anthropic's 0..1.
        body["temperature"] = min(request.temperature, 1.0)
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.stop is not None:
        body["stop_sequences"] = [request.stop] if isinstance(request.stop, str) else list(request.stop)
    if request.tools:
        body["tools"] = _tool_definitions(request.tools)
    choice = _tool_choice(request.tool_choice, extras.get("parallel_tool_calls"), provider)
    if choice is not None:
        body["tool_choice"] = choice
    if request.user:
        body["metadata"] = {"user_id": request.user}
    for name, value in extras.items():
        if name not in _HANDLED and name not in _DROPPED and name != "stream":
            body[name] = value  # Anthropic-specific fields: top_k, thinking, metadata, ...
    body.update(request.extra_body)
    return body


# --------------------------------------------------------------------------- response


def usage_from_anthropic(data: Mapping[str, Any] | None) -> Usage | None:
    """Anthropic counts cached prompt tokens apart from ``input_tokens``; llmrelay counts them in."""
    if not data:
        return None
    cache_read = data.get("cache_read_input_tokens") or 0
    cache_write = data.get("cache_creation_input_tokens") or 0
    prompt = (data.get("input_tokens") or 0) + cache_read + cache_write
    completion = data.get("output_tokens") or 0
    return Usage.model_construct(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        cached_tokens=cache_read or None,
        reasoning_tokens=None,
        cost=None,
    )


# OpenRouter's name for Anthropic's signed thinking, in its ``reasoning_details``.
_DETAIL_FORMAT = "anthropic-claude-v1"


def _reasoning_detail(block: Mapping[str, Any]) -> dict[str, Any]:
    detail = {"type": "reasoning.text", "text": block.get("thinking") or "", "format": _DETAIL_FORMAT}
    if block.get("signature"):
        detail["signature"] = block["signature"]
    return detail


def from_messages_response(data: Mapping[str, Any], *, provider: str = "anthropic") -> ChatResponse:
    """A Messages API response into a :class:`ChatResponse`."""
    text: list[str] = []
    reasoning: list[str] = []
    details: list[dict[str, Any]] = []
    calls: list[ToolCall] = []
    for block in data.get("content") or []:
        kind = block.get("type")
        if kind == "text":
            text.append(block.get("text") or "")
        elif kind == "thinking":
            reasoning.append(block.get("thinking") or "")
            details.append(_reasoning_detail(block))
        elif kind == "redacted_thinking":
            details.append({"type": "reasoning.encrypted", "data": block.get("data"), "format": _DETAIL_FORMAT})
        elif kind == "tool_use":
            calls.append(
                ToolCall(
                    id=block["id"],
                    function=FunctionCall(
                        name=block["name"], arguments=json.dumps(block.get("input") or {}, ensure_ascii=False)
                    ),
                )
            )
    stop = data.get("stop_reason")
    message = Message(
        role="assistant",
        content="".join(text) if text or not calls else None,
        tool_calls=calls or None,
        reasoning="".join(reasoning) or None,
        **({"reasoning_details": details} if details else {}),
    )
    return ChatResponse(
        id=data.get("id"),
        model=data.get("model"),
        provider=provider,
        message=message,
        finish_reason=normalize_finish_reason(stop),
        native_finish_reason=stop,
        usage=usage_from_anthropic(data.get("usage")),
    )


# --------------------------------------------------------------------------- errors


def error_from_anthropic(
    payload: Any,
    *,
    status: int | None = None,
    provider: str = "anthropic",
    model: str | None = None,
    request_id: str | None = None,
    retry_after: float | None = None,
    in_stream: bool = False,
) -> LLMRelayError:
    """The typed error for an Anthropic error body or ``error`` stream event.

    Inside a stream an availability error (overloaded, rate limit, API error)
    is a :class:`StreamInterruptedError` carrying the error type as
    ``upstream_code``; a client error keeps its own type.
    """
    error = payload.get("error") if isinstance(payload, Mapping) else None
    kind = error.get("type") if isinstance(error, Mapping) else None
    message = (
        redact(str(error.get("message") or kind or "unknown error"))
        if isinstance(error, Mapping)
        else (f"unexpected error body: {redact(str(payload))[:200]}")
    )
    if status is None or status < 400:
        status = ERROR_STATUS.get(kind or "", 500)
    text = f"{message} ({kind})" if kind else message
    if status == 404 and model and ("model" in message.lower() or model in message):
        return ModelNotFoundError(
            f"model {model!r} not found: {text}", provider=provider, status=status, body=payload, request_id=request_id
        )
    typed = error_for_status(
        status, text, retry_after=retry_after, provider=provider, body=payload, request_id=request_id
    )
    if in_stream and typed.availability:
        return StreamInterruptedError(
            f"the service reported an error mid-stream: {text}",
            upstream_code=kind,
            provider=provider,
            status=status,
            request_id=request_id,
        )
    return typed


# --------------------------------------------------------------------------- streaming


class StreamDecoder:
    """Turns Messages API stream events into chunks; one decoder per stream.

    ``feed(event)`` returns a chunk, or ``None`` for events that carry
    nothing for the caller (``ping``, block stops). It raises for an
    ``error`` event. ``done`` is set by ``message_stop``.
    """

    __slots__ = ("provider", "model", "id", "done", "_input_usage", "_tool_blocks")

    def __init__(self, *, provider: str = "anthropic", model: str | None = None) -> None:
        self.provider = provider
        self.model = model
        self.id: str | None = None
        self.done = False
        self._input_usage: dict[str, Any] = {}
        self._tool_blocks: set[int] = set()

    def _block_delta(self, event: Mapping[str, Any]) -> StreamChunk | None:
        delta = event.get("delta") or {}
        dtype = delta.get("type")
        if dtype == "text_delta":
            return StreamChunk(text=delta.get("text") or "", id=self.id, model=self.model, raw=dict(event))
        if dtype == "input_json_delta":
            index = event.get("index", 0)
            return StreamChunk(
                tool_calls=[ToolCallDelta(index, arguments=delta.get("partial_json") or "")],
                id=self.id,
                model=self.model,
                raw=dict(event),
            )
        if dtype == "thinking_delta":
            return StreamChunk(reasoning=delta.get("thinking") or "", id=self.id, model=self.model, raw=dict(event))
        if dtype == "signature_delta":
            # Nothing for the text; ``raw`` carries the signature (a gateway sends it on).
            return StreamChunk(id=self.id, model=self.model, raw=dict(event))
        return None  # citations_delta, ...

    def feed(self, event: Mapping[str, Any]) -> StreamChunk | None:
        kind = event.get("type")
        if kind == "content_block_delta":
            return self._block_delta(event)
        if kind == "content_block_start":
            block = event.get("content_block") or {}
            index = event.get("index", 0)
            if block.get("type") == "tool_use":
                self._tool_blocks.add(index)
                return StreamChunk(
                    tool_calls=[ToolCallDelta(index, id=block.get("id"), name=block.get("name"))],
                    id=self.id,
                    model=self.model,
                    raw=dict(event),
                )
            if block.get("type") == "text" and block.get("text"):
                return StreamChunk(text=block["text"], id=self.id, model=self.model, raw=dict(event))
            return None
        if kind == "message_start":
            message = event.get("message") or {}
            self.id = message.get("id")
            self.model = message.get("model") or self.model
            self._input_usage = dict(message.get("usage") or {})
            return None
        if kind == "message_delta":
            delta = event.get("delta") or {}
            stop = delta.get("stop_reason")
            usage = usage_from_anthropic({**self._input_usage, **(event.get("usage") or {})})
            return StreamChunk(
                finish_reason=normalize_finish_reason(stop),
                native_finish_reason=stop,
                usage=usage,
                id=self.id,
                model=self.model,
                raw=dict(event),
            )
        if kind == "message_stop":
            self.done = True
            return None
        if kind == "error":
            raise error_from_anthropic(event, provider=self.provider, model=self.model, in_stream=True)
        return None  # ping, content_block_stop, and event types added later
