"""OpenAI chat-completions wire format, shared by every OpenAI-compatible service.

* :func:`coerce_chat_request`: a ``ChatRequest`` or dict, validated, with the
  default model filled in; bad input is a typed error.
* :func:`parse_chat_response`: a ``/chat/completions`` JSON body into a
  :class:`ChatResponse` (unknown finish reasons kept, usage with cost, cached
  and reasoning tokens, the serving upstream).
* :func:`chunk_from_data`: one decoded SSE ``data:`` object into a
  :class:`StreamChunk`. This runs once per streamed chunk, so it builds no
  pydantic object except the :class:`Usage` of the (single) usage chunk.
* :func:`parse_embedding_response`: an ``/embeddings`` JSON body into an
  :class:`~llmrelay.core.embeddings.EmbeddingResponse` (vectors in input
  order, base64 vectors decoded, usage with cost, the id and serving upstream).
* :func:`chat_stream`: an open HTTP stream into a :class:`ChatStream` whose
  ``close`` releases the connection. A data event carrying an ``error``
  object (a failure after HTTP 200 was sent) raises
  :class:`StreamInterruptedError` with the upstream code and message, after
  every chunk before it was delivered.
"""

from __future__ import annotations

import base64
import binascii
import struct
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from llmrelay.core.errors import (
    ConfigurationError,
    InvalidResponseError,
    LLMRelayError,
    StreamInterruptedError,
)
from llmrelay.core.http.client import upstream_error_message
from llmrelay.core.http.sse import event_object, iter_sse
from llmrelay.core.http.transport import HTTPResponse
from llmrelay.core.models import ChatRequest, ChatResponse, Message, Usage, normalize_finish_reason
from llmrelay.core.secrets import redact
from llmrelay.core.stream import ChatStream, StreamChunk, ToolCallDelta
from pydantic import ValidationError

if TYPE_CHECKING:
    from llmrelay.core.embeddings import EmbeddingResponse

__all__ = [
    "chat_stream",
    "chunk_from_data",
    "coerce_chat_request",
    "iter_chat_chunks",
    "parse_chat_response",
    "parse_embedding_response",
    "upstream_error_message",
]

ErrorFactory = Callable[[Mapping[str, Any]], LLMRelayError]


def coerce_chat_request(request: Any, *, default_model: str | None, provider: str) -> ChatRequest:
    """Validate ``request`` (a typed error when it is wrong) and make sure it names a model."""
    chat = ChatRequest.coerce(request, default_model=default_model, provider=provider)
    if chat.model is None:
        raise ConfigurationError(
            f"[{provider}] the request names no model: pass model=... or set default_model in the provider's settings"
        )
    return chat


def parse_chat_response(data: Any, *, provider: str, on_error: ErrorFactory | None = None) -> ChatResponse:
    """A chat completion body into a :class:`ChatResponse`."""
    if not isinstance(data, dict):
        raise InvalidResponseError(
            f"chat completion: expected a JSON object, got {type(data).__name__}", provider=provider
        )
    if isinstance(data.get("error"), Mapping) and not data.get("choices"):
        if on_error is not None:
            raise on_error(data)
        raise InvalidResponseError(
            f"chat completion failed: {upstream_error_message(data['error'])}", provider=provider
        )
    choices = data.get("choices")
    if not choices or not isinstance(choices, list) or not isinstance(choices[0], dict):
        raise InvalidResponseError(
            "chat completion: the response has no choices", provider=provider, generation_id=data.get("id")
        )
    choice = choices[0]
    raw_message = choice.get("message") or {}
    if "role" not in raw_message:
        raw_message = dict(raw_message, role="assistant")
    try:
        message = Message.model_validate(raw_message)
    except ValidationError as exc:
        raise InvalidResponseError(
            f"chat completion: the message does not have the expected shape ({exc.error_count()} problems: "
            f"{exc.errors(include_url=False)[0]['msg']})",
            provider=provider,
            generation_id=data.get("id"),
        ) from None
    return ChatResponse(
        id=data.get("id"),
        model=data.get("model"),
        provider=provider,
        served_by=data.get("provider"),
        message=message,
        finish_reason=normalize_finish_reason(choice.get("finish_reason")),
        # Older traffic sends the upstream's raw reason ("end_turn") as
        # finish_reason and no native one: keep the raw value there.
        native_finish_reason=choice.get("native_finish_reason") or choice.get("finish_reason"),
        usage=Usage.from_openai(data.get("usage")),
        created=data.get("created"),
    )


def _vector(value: Any) -> list[float] | None:
    """One ``embedding``: a list of numbers, or (``encoding_format: "base64"``) little-endian float32 bytes."""
    if isinstance(value, list):
        return value
    if isinstance(value, str):
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return None
        if len(raw) % 4:
            return None
        return list(struct.unpack(f"<{len(raw) // 4}f", raw))
    return None


def parse_embedding_response(
    data: Any, *, provider: str, model: str, on_error: ErrorFactory | None = None
) -> EmbeddingResponse:
    """An ``/embeddings`` body (OpenAI's shape; OpenRouter adds ``id``, ``provider``, ``usage.cost``)."""
    from llmrelay.core.embeddings import EmbeddingResponse  # kept out of the provider-build path

    shape = '/embeddings: expected {"data": [{"embedding": [...]}]}'
    if not isinstance(data, dict):
        raise InvalidResponseError(f"{shape}, got {type(data).__name__}", provider=provider)
    if isinstance(data.get("error"), Mapping) and not data.get("data"):
        if on_error is not None:
            raise on_error(data)
        raise InvalidResponseError(f"embeddings failed: {upstream_error_message(data['error'])}", provider=provider)
    entries = data.get("data")
    if not isinstance(entries, list) or not all(isinstance(e, dict) and "embedding" in e for e in entries):
        raise InvalidResponseError(shape, provider=provider)
    ordered = sorted(entries, key=lambda e: e.get("index", 0))
    vectors: list[list[float]] = []
    for entry in ordered:
        vector = _vector(entry["embedding"])
        if vector is None:
            raise InvalidResponseError(
                "/embeddings: an embedding is neither a list of numbers nor base64 float32 data", provider=provider
            )
        vectors.append(vector)
    served_by = data.get("provider")
    return EmbeddingResponse(
        id=data.get("id"),
        model=data.get("model") or model,
        provider=provider,
        served_by=served_by if isinstance(served_by, str) else None,
        embeddings=vectors,
        usage=Usage.from_openai(data.get("usage")),
    )


def _tool_deltas(calls: list[Any]) -> list[ToolCallDelta]:
    out = []
    for position, call in enumerate(calls):
        function = call.get("function") or {}
        out.append(
            ToolCallDelta(
                call.get("index", position),
                call.get("id"),
                function.get("name"),
                function.get("arguments") or "",
            )
        )
    return out


def chunk_from_data(obj: dict[str, Any]) -> StreamChunk:
    """One ``chat.completion.chunk`` object into a :class:`StreamChunk` (no pydantic)."""
    text = reasoning = ""
    tool_calls = None
    finish = native = None
    choices = obj.get("choices")
    if choices:
        choice = choices[0]
        delta = choice.get("delta")
        if delta:
            text = delta.get("content") or ""
            # "reasoning" is OpenRouter's; "reasoning_content" DeepSeek's and vLLM's.
            reasoning = delta.get("reasoning") or delta.get("reasoning_content") or ""
            calls = delta.get("tool_calls")
            if calls:
                tool_calls = _tool_deltas(calls)
        raw_finish = choice.get("finish_reason")
        finish = normalize_finish_reason(raw_finish) if raw_finish is not None else None
        native = choice.get("native_finish_reason") or raw_finish
    usage = obj.get("usage")
    return StreamChunk(
        text,
        reasoning,
        tool_calls,
        finish,
        Usage.from_openai(usage) if usage else None,
        obj.get("id"),
        obj.get("model"),
        obj.get("provider"),
        native,
        obj,
    )


def iter_chat_chunks(response: HTTPResponse, *, provider: str) -> Iterator[StreamChunk]:
    """Chunks from an open SSE response; closes it however the iteration ends."""
    finished = False
    try:
        for event in iter_sse(response.iter_bytes()):
            data = event.data
            if data == "[DONE]":
                response.finish()
                return
            if not data:
                continue
            obj = event_object(data, provider=provider)
            error = obj.get("error")
            if error is not None:
                if obj.get("usage"):
                    # The failed generation's usage (it is billed): deliver it first.
                    yield chunk_from_data(obj)
                raise _stream_error(error, obj, provider)
            chunk = chunk_from_data(obj)
            if chunk.finish_reason is not None:
                finished = True
            yield chunk
        if not finished:
            raise StreamInterruptedError(
                "the stream ended before the service said it was done (no [DONE], no finish_reason)",
                provider=provider,
            )
    finally:
        response.close()


def _stream_error(error: Any, obj: Mapping[str, Any], provider: str) -> StreamInterruptedError:
    if isinstance(error, Mapping):
        code = error.get("code")
        message = upstream_error_message(error)
    else:
        code = None
        message = redact(str(error))
    return StreamInterruptedError(
        f"the service reported an error mid-stream: {message}" + (f" (code {code})" if code is not None else ""),
        upstream_code=code,
        provider=provider,
        generation_id=obj.get("id"),
    )


def chat_stream(response: HTTPResponse, *, provider: str, model: str | None) -> ChatStream:
    """A :class:`ChatStream` over an open SSE response; closing it releases the connection."""
    stream = ChatStream(
        iter_chat_chunks(response, provider=provider), provider=provider, model=model, close=response.close
    )
    stream.meta.attempts = response.attempts
    return stream
