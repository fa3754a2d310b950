"""Anthropic's Messages API in front of any provider: ``/v1/messages`` and ``count_tokens``.

This is the server side of the translation, the other direction from the
Anthropic provider's: a Messages request becomes a
:class:`~llmrelay.core.models.ChatRequest` (OpenAI-shaped), and the
provider's :class:`ChatResponse` or :class:`StreamChunk` s become a Messages
response or its named SSE events, in the order the official SDK's
accumulator expects::

    message_start, ping,
    per block: content_block_start, content_block_delta..., content_block_stop
    message_delta (stop_reason, cumulative usage), message_stop

Blocks are opened as the chunks call for them (thinking, text, one per tool
call) and each is closed before the next one opens; tool-call arguments are
forwarded as ``input_json_delta`` fragments the moment they arrive. A
failure mid-stream becomes an ``error`` event.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import BadRequestError, LLMRelayError
from .errors import anthropic_error_body

if TYPE_CHECKING:
    from ..models import ChatResponse, Usage
    from ..stream import ChatStream, StreamChunk

__all__ = ["MessageEvents", "count_tokens", "message_body", "messages_request", "stop_reason"]

_DUMPS = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal"}
_NATIVE_STOPS = {"end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn", "refusal"}
# Messages fields with an OpenAI equivalent (mapped below); the others pass through.
_MAPPED = {"model", "messages", "system", "max_tokens", "stop_sequences", "tools", "tool_choice", "metadata", "stream"}


# --------------------------------------------------------------------------- request


def _image_part(block: Mapping[str, Any]) -> dict[str, Any]:
    source = block.get("source") or {}
    if source.get("type") == "base64":
        url = f"data:{source.get('media_type', 'image/png')};base64,{source.get('data', '')}"
    elif source.get("type") == "url":
        url = str(source.get("url", ""))
    else:
        raise BadRequestError(f"image source type {source.get('type')!r} is not supported (use base64 or url)")
    return {"type": "image_url", "image_url": {"url": url}}


def _parts(blocks: Any, where: str) -> list[dict[str, Any]]:
    """Text and image blocks as OpenAI content parts; other fields (``cache_control``) ride along."""
    if isinstance(blocks, str):
        return [{"type": "text", "text": blocks}]
    if not isinstance(blocks, list):
        raise BadRequestError(f"{where}: content must be a string or a list of blocks")
    parts = []
    for block in blocks:
        if not isinstance(block, Mapping):
            raise BadRequestError(f"{where}: every content block must be an object")
        kind = block.get("type")
        if kind == "text":
            part = {key: value for key, value in block.items() if key not in ("citations",)}
            parts.append(part)
        elif kind == "image":
            parts.append(_image_part(block))
        else:
            parts.append(dict(block))  # document and other blocks pass through as written
    return parts


def _content(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """A plain string when the parts are plain text (what every OpenAI-compatible server takes)."""
    if all(part.get("type") == "text" and set(part) <= {"type", "text"} for part in parts):
        return "".join(part["text"] for part in parts)
    return parts


def _tool_result(block: Mapping[str, Any], where: str) -> dict[str, Any]:
    content = block.get("content", "")
    parts = _parts(content, where) if content else []
    message: dict[str, Any] = {
        "role": "tool",
        "tool_call_id": block.get("tool_use_id"),
        "content": _content(parts) if parts else "",
    }
    if block.get("is_error"):
        message["is_error"] = True
    return message


def _user_turn(content: Any, where: str) -> list[dict[str, Any]]:
    """A user turn; its ``tool_result`` blocks become tool messages, placed before the rest of it."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    if not isinstance(content, list):
        raise BadRequestError(f"{where}: content must be a string or a list of blocks")
    results = [
        _tool_result(block, where)
        for block in content
        if isinstance(block, Mapping) and block.get("type") == "tool_result"
    ]
    rest = [block for block in content if not (isinstance(block, Mapping) and block.get("type") == "tool_result")]
    messages = results
    if rest:
        messages.append({"role": "user", "content": _content(_parts(rest, where))})
    return messages


def _assistant_turn(content: Any, where: str) -> dict[str, Any]:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    if not isinstance(content, list):
        raise BadRequestError(f"{where}: content must be a string or a list of blocks")
    text: list[str] = []
    reasoning: list[str] = []
    details: list[dict[str, Any]] = []
    calls = []
    for block in content:
        kind = block.get("type") if isinstance(block, Mapping) else None
        if kind == "text":
            text.append(str(block.get("text", "")))
        elif kind == "thinking":
            reasoning.append(str(block.get("thinking", "")))
            # Signed thinking goes back to an Anthropic upstream as it came (OpenRouter's reasoning_details shape).
            details.append(
                {
                    "type": "reasoning.text",
                    "text": block.get("thinking", ""),
                    "signature": block.get("signature"),
                    "format": _DETAIL_FORMAT,
                }
            )
        elif kind == "redacted_thinking":
            details.append({"type": "reasoning.encrypted", "data": block.get("data"), "format": _DETAIL_FORMAT})
        elif kind == "tool_use":
            arguments = json.dumps(block.get("input") or {}, ensure_ascii=False)
            calls.append(
                {
                    "id": block.get("id"),
                    "type": "function",
                    "function": {"name": block.get("name"), "arguments": arguments},
                }
            )
        # server-tool blocks have no OpenAI equivalent
    message: dict[str, Any] = {"role": "assistant", "content": "".join(text) if text or not calls else None}
    if calls:
        message["tool_calls"] = calls
    if reasoning:
        message["reasoning"] = "".join(reasoning)
    if details:
        message["reasoning_details"] = details
    return message


def _tool_choice(choice: Any) -> tuple[Any, bool | None]:
    if not isinstance(choice, Mapping):
        raise BadRequestError('tool_choice must be an object such as {"type": "auto"}')
    kind = choice.get("type")
    parallel = False if choice.get("disable_parallel_tool_use") else None
    if kind == "auto":
        return "auto", parallel
    if kind == "any":
        return "required", parallel
    if kind == "none":
        return "none", parallel
    if kind == "tool":
        return {"type": "function", "function": {"name": choice.get("name")}}, parallel
    raise BadRequestError(f"tool_choice type {kind!r} is not understood (use auto, any, tool or none)")


def _messages(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    system = body.get("system")
    if system:
        messages.append({"role": "system", "content": _content(_parts(system, "system"))})
    for number, turn in enumerate(body["messages"]):
        where = f"messages[{number}]"
        if not isinstance(turn, Mapping):
            raise BadRequestError(f"{where}: expected an object with role and content")
        role = turn.get("role")
        if role == "user":
            messages += _user_turn(turn.get("content", ""), where)
        elif role == "assistant":
            messages.append(_assistant_turn(turn.get("content", ""), where))
        else:
            raise BadRequestError(f"{where}: role must be user or assistant, not {role!r}")
    return messages


def messages_request(body: Any) -> tuple[dict[str, Any], bool]:
    """A Messages API body as an OpenAI-format chat request, and whether to stream."""
    if not isinstance(body, Mapping):
        raise BadRequestError("the request body must be a JSON object in Anthropic Messages format")
    if not isinstance(body.get("messages"), list):
        raise BadRequestError("messages: required, a list of {role, content} turns")
    request: dict[str, Any] = {"model": body.get("model"), "messages": _messages(body)}
    if body.get("max_tokens") is not None:
        request["max_tokens"] = body["max_tokens"]
    if body.get("stop_sequences"):
        request["stop"] = list(body["stop_sequences"])
    if body.get("tools"):
        request["tools"] = [_tool(tool) for tool in body["tools"]]
    if body.get("tool_choice") is not None:
        request["tool_choice"], parallel = _tool_choice(body["tool_choice"])
        if parallel is False:
            request["parallel_tool_calls"] = False
    metadata = body.get("metadata")
    if isinstance(metadata, Mapping) and metadata.get("user_id"):
        request["user"] = metadata["user_id"]
    for name, value in body.items():
        if name not in _MAPPED:
            request[name] = value  # temperature, top_p, top_k, thinking, ...
    return request, bool(body.get("stream"))


def _tool(tool: Any) -> dict[str, Any]:
    if not isinstance(tool, Mapping) or not tool.get("name"):
        raise BadRequestError("tools: every tool needs a name and an input_schema")
    function: dict[str, Any] = {"name": tool["name"], "parameters": tool.get("input_schema") or {"type": "object"}}
    if tool.get("description"):
        function["description"] = tool["description"]
    entry: dict[str, Any] = {"type": "function", "function": function}
    if tool.get("cache_control") is not None:
        # Rides along beside the function, as on content parts: an Anthropic upstream sends it on.
        entry["cache_control"] = tool["cache_control"]
    return entry


# --------------------------------------------------------------------------- response


def stop_reason(finish: str | None, native: str | None) -> str:
    if native is not None and native in _NATIVE_STOPS:
        return native
    return _STOP.get(finish or "stop", "end_turn")


def _usage(usage: Usage | None) -> dict[str, Any]:
    if usage is None:
        return {"input_tokens": 0, "output_tokens": 0}
    cached = usage.cached_tokens or 0
    # Anthropic counts cache reads apart from input_tokens; llmrelay counts them in.
    body: dict[str, Any] = {
        "input_tokens": max(usage.prompt_tokens - cached, 0),
        "output_tokens": usage.completion_tokens,
    }
    if usage.cached_tokens is not None:
        body["cache_read_input_tokens"] = cached
    return body


def _message_id(upstream: str | None) -> str:
    if upstream and upstream.startswith("msg_"):
        return upstream
    return f"msg_{uuid.uuid4().hex}"


_DETAIL_FORMAT = "anthropic-claude-v1"


def _thinking(reasoning: str | None, details: Any) -> list[dict[str, Any]]:
    """Thinking blocks: signed ones from ``reasoning_details`` (an Anthropic or OpenRouter upstream), else unsigned."""
    blocks: list[dict[str, Any]] = []
    for detail in details if isinstance(details, list) else []:
        if not isinstance(detail, Mapping):
            continue
        if detail.get("type") == "reasoning.text":
            blocks.append(
                {"type": "thinking", "thinking": detail.get("text") or "", "signature": detail.get("signature") or ""}
            )
        elif detail.get("type") == "reasoning.encrypted" and detail.get("data"):
            blocks.append({"type": "redacted_thinking", "data": detail["data"]})
    if not blocks and reasoning:
        blocks.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    return blocks


def message_body(response: ChatResponse, requested_model: str | None) -> dict[str, Any]:
    message = response.message
    content = _thinking(message.reasoning, (message.model_extra or {}).get("reasoning_details"))
    if message.text or not message.tool_calls:
        content.append({"type": "text", "text": message.text})
    for call in message.tool_calls or []:
        try:
            arguments = json.loads(call.function.arguments or "{}")
        except ValueError:
            arguments = {"_raw_arguments": call.function.arguments}
        content.append({"type": "tool_use", "id": call.id, "name": call.function.name, "input": arguments})
    return {
        "id": _message_id(response.id),
        "type": "message",
        "role": "assistant",
        "model": response.model or requested_model or "",
        "content": content,
        "stop_reason": stop_reason(response.finish_reason, response.native_finish_reason),
        "stop_sequence": None,
        "usage": _usage(response.usage),
    }


def _event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + _DUMPS(data).encode() + b"\n\n"


class _Blocks:
    """The open content block of a stream; opening another closes it.

    Tool calls are sent one block after another, as Anthropic does, with each
    fragment forwarded as it arrives. An upstream may interleave the fragments
    of parallel calls (OpenAI's wire allows it): a fragment of a new call that
    comes while the open call's arguments are not yet a whole JSON document is
    held until they are, then its block follows with what was held, so no
    call's input is ever split across blocks.
    """

    __slots__ = ("arguments", "held", "index", "kind", "tool")

    def __init__(self) -> None:
        self.index = -1
        self.kind: str | None = None
        self.tool: int | None = None
        self.arguments = ""  # the open tool call's arguments so far
        # Calls whose block waits for the open one to finish: index -> (id, name, fragments).
        self.held: dict[int, tuple[str, str, list[str]]] = {}

    def close(self) -> bytes:
        """Close the open block, then send the held tool calls, each a whole block."""
        out = self._close_one()
        while self.held:
            tool = next(iter(self.held))
            out += self._open_held(tool) + self._close_one()
        return out

    def _close_one(self) -> bytes:
        if self.kind is None:
            return b""
        self.kind = None
        return _event("content_block_stop", {"type": "content_block_stop", "index": self.index})

    def open(self, kind: str, block: dict[str, Any], tool: int | None = None) -> bytes:
        closing = self.close()
        return closing + self._start(kind, block, tool)

    def _start(self, kind: str, block: dict[str, Any], tool: int | None = None) -> bytes:
        self.index += 1
        self.kind = kind
        self.tool = tool
        self.arguments = ""
        return _event(
            "content_block_start", {"type": "content_block_start", "index": self.index, "content_block": block}
        )

    def delta(self, delta: dict[str, Any]) -> bytes:
        return _event("content_block_delta", {"type": "content_block_delta", "index": self.index, "delta": delta})

    def _arguments(self, fragment: str) -> bytes:
        self.arguments += fragment
        return self.delta({"type": "input_json_delta", "partial_json": fragment})

    def _open_held(self, tool: int) -> bytes:
        tool_id, name, fragments = self.held.pop(tool)
        out = self._start("tool_use", {"type": "tool_use", "id": tool_id, "name": name, "input": {}}, tool)
        for fragment in fragments:
            out += self._arguments(fragment)
        return out

    def _open_call_complete(self) -> bool:
        try:
            json.loads(self.arguments or "{}")
        except ValueError:
            return False
        return True

    def _tool_fragment(self, call: Any) -> bytes:
        fragment = call.arguments or ""
        if self.kind == "tool_use" and self.tool == call.index:
            out = self._arguments(fragment) if fragment else b""
            if self.held and self._open_call_complete():
                # The open call is whole: the next held one takes its place, live from here on.
                out += self._close_one() + self._open_held(next(iter(self.held)))
            return out
        if call.index in self.held:
            self.held[call.index][2].append(fragment)
            return b""
        tool_id = call.id or f"toolu_{uuid.uuid4().hex[:24]}"
        if self.kind == "tool_use" and not self._open_call_complete():
            self.held[call.index] = (tool_id, call.name or "", [fragment] if fragment else [])
            return b""
        out = self._close_one() + self._start(
            "tool_use", {"type": "tool_use", "id": tool_id, "name": call.name or "", "input": {}}, call.index
        )
        return out + (self._arguments(fragment) if fragment else b"")

    def feed(self, chunk: StreamChunk) -> bytes:
        """The events for one chunk: thinking, then text, then tool-call fragments."""
        out = b""
        raw = chunk.raw
        if raw is not None and raw.get("type") == "content_block_delta" and self.kind == "thinking":
            delta = raw.get("delta") or {}
            if delta.get("type") == "signature_delta":  # an Anthropic upstream's signature, sent on
                out += self.delta({"type": "signature_delta", "signature": delta.get("signature", "")})
        if chunk.reasoning:
            if self.kind != "thinking":
                out += self.open("thinking", {"type": "thinking", "thinking": "", "signature": ""})
            out += self.delta({"type": "thinking_delta", "thinking": chunk.reasoning})
        if chunk.text:
            if self.kind != "text":
                out += self.open("text", {"type": "text", "text": ""})
            out += self.delta({"type": "text_delta", "text": chunk.text})
        for call in chunk.tool_calls or ():
            out += self._tool_fragment(call)
        return out


def _message_start(stream: ChatStream, requested_model: str | None) -> bytes:
    message: dict[str, Any] = {
        "id": _message_id(stream.id),
        "type": "message",
        "role": "assistant",
        "model": stream.model or requested_model or "",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        # The input count is known only at the end for most upstreams; message_delta carries it.
        "usage": {"input_tokens": 0, "output_tokens": 0},
    }
    return _event("message_start", {"type": "message_start", "message": message}) + PING


PING = _event("ping", {"type": "ping"})


class MessageEvents:
    """The named SSE events of a streamed message, in the order the Messages API sends them.

    Iterate once. ``started`` turns true with ``message_start``: a keep-alive
    ``ping`` is valid only after it. The stream keeps its own finish reason
    and usage; ``message_delta`` is written from them.
    """

    def __init__(self, stream: ChatStream, requested_model: str | None) -> None:
        self.stream = stream
        self.requested_model = requested_model
        self.started = False

    def _start(self) -> bytes:
        if self.started:
            return b""
        self.started = True
        return _message_start(self.stream, self.requested_model)

    def ping(self) -> bytes | None:
        return PING if self.started else None

    def __iter__(self) -> Iterator[bytes]:
        stream, blocks = self.stream, _Blocks()
        try:
            for chunk in stream:
                out = self._start() + blocks.feed(chunk)
                if out:
                    yield out
        except LLMRelayError as error:
            _status, body, _retry = anthropic_error_body(error)
            yield self._start() + blocks.close() + _event("error", body)
            return
        out = self._start() + blocks.close()
        stop = {"stop_reason": stop_reason(stream.finish_reason, stream.native_finish_reason), "stop_sequence": None}
        out += _event("message_delta", {"type": "message_delta", "delta": stop, "usage": _usage(stream.usage)})
        yield out + _event("message_stop", {"type": "message_stop"})


# --------------------------------------------------------------------------- count_tokens


def count_tokens(request: Mapping[str, Any]) -> int:
    """An estimate of a request's input tokens: about four characters of its text a token.

    Providers expose no tokenizer, so this is the same rough rule Anthropic
    and OpenAI give for English text; it is meant for budgeting, not billing.
    """
    characters = 0
    for message in request.get("messages") or []:
        content = message.get("content")
        if isinstance(content, str):
            characters += len(content)
        elif isinstance(content, list):
            for part in content:
                if part.get("type") == "text":
                    characters += len(str(part.get("text", "")))
                elif part.get("type") == "image_url":
                    characters += 4 * 1600  # Anthropic's figure for a ~1.15 megapixel image
        for call in message.get("tool_calls") or []:
            characters += len(json.dumps(call.get("function") or {}))
        characters += len(str(message.get("reasoning") or ""))
    for tool in request.get("tools") or []:
        characters += len(json.dumps(tool))
    return max(1, (characters + 3) // 4)
