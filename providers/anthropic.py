"""The Anthropic provider: Claude through the Messages API (``POST /v1/messages``).

Requests and responses stay in llmrelay's OpenAI-shaped model; the
translation to and from Anthropic's format is in
:mod:`llmrelay.providers.anthropic_format`. The HTTP side is the shared
:class:`~llmrelay.providers.http_provider.HTTPProvider` (pooled client, retry
policy, key rules and key check) and the SSE parser, with Anthropic's own headers (``x-api-key``,
``anthropic-version``, ``anthropic-beta``) and its 529 "overloaded" status
added to the statuses retried by default.

::

    from llmrelay.core import create_provider

    claude = create_provider("anthropic")            # reads ANTHROPIC_API_KEY
    reply = claude.execute({"model": "claude-3-5-haiku-latest",
                            "messages": [{"role": "system", "content": "Be brief."},
                                         {"role": "user", "content": "Hi"}]})
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from llmrelay.core.catalog import ModelInfo, ModelList
from llmrelay.core.errors import APIStatusError, InvalidResponseError, LLMRelayError, StreamInterruptedError
from llmrelay.core.http.sse import event_object, iter_sse
from llmrelay.core.http.transport import HTTPResponse
from llmrelay.core.models import ChatResponse
from llmrelay.core.provider import CORE_OPERATIONS, CallOptions, RequestLike
from llmrelay.core.settings import ProviderSettings, RetrySettings
from llmrelay.core.stream import ChatStream, StreamChunk
from pydantic import Field

from .anthropic_format import (
    DEFAULT_MAX_TOKENS,
    StreamDecoder,
    error_from_anthropic,
    from_messages_response,
    to_messages_body,
)
from .http_provider import HTTPProvider
from .openai_wire import coerce_chat_request

__all__ = ["API_VERSION", "DEFAULT_BASE_URL", "AnthropicProvider", "AnthropicSettings"]

DEFAULT_BASE_URL = "https://api.anthropic.com/v1"
API_VERSION = "2023-06-01"
KEYS_PAGE = "https://console.anthropic.com/settings/keys"


def _retry_with_overloaded() -> RetrySettings:
    # 529 is Anthropic's "overloaded": as retryable as a 503.
    return RetrySettings(retry_statuses=frozenset({408, 429, 500, 502, 503, 504, 529}))


class AnthropicSettings(ProviderSettings):
    base_url: str | None = DEFAULT_BASE_URL
    retry: RetrySettings = Field(default_factory=_retry_with_overloaded)
    api_version: str = Field(default=API_VERSION, description="sent as anthropic-version")
    beta: list[str] = Field(default_factory=list, description="sent as anthropic-beta (comma-separated)")
    default_max_tokens: int = Field(
        default=DEFAULT_MAX_TOKENS, gt=0, description="max_tokens when a request sets none (Anthropic requires it)"
    )


class AnthropicProvider(HTTPProvider):
    """Anthropic's Messages API. ``transport``, ``sleep`` and ``clock`` are for tests."""

    name = "anthropic"
    settings_model: ClassVar[type[ProviderSettings]] = AnthropicSettings
    env_prefix: ClassVar[str] = "ANTHROPIC_"
    capabilities = CORE_OPERATIONS
    default_base_url: ClassVar[str] = DEFAULT_BASE_URL
    service_title: ClassVar[str | None] = "Anthropic"
    keys_page: ClassVar[str | None] = KEYS_PAGE
    credits_hint: ClassVar[str] = "Check the plan and billing at https://console.anthropic.com/settings/billing"

    settings: AnthropicSettings

    def auth_headers(self, key: str) -> dict[str, str]:
        return {"x-api-key": key}

    def service_headers(self, settings: ProviderSettings) -> dict[str, str]:
        """``anthropic-version`` and, when configured, ``anthropic-beta``."""
        headers = {"anthropic-version": getattr(settings, "api_version", API_VERSION)}
        beta = getattr(settings, "beta", None)
        if beta:
            headers["anthropic-beta"] = ",".join(beta)
        return headers

    def _body(self, request: RequestLike, stream: bool) -> tuple[dict[str, Any], str]:
        self.require_key()
        chat = coerce_chat_request(request, default_model=self.settings.default_model, provider=self.instance_name)
        body = to_messages_body(chat, default_max_tokens=self.settings.default_max_tokens, provider=self.instance_name)
        if stream:
            body["stream"] = True
        return body, chat.model or ""

    def _typed(self, error: LLMRelayError, model: str) -> LLMRelayError:
        # The shared mapping took the status and message; add Anthropic's error type to the message.
        if isinstance(error, APIStatusError) and isinstance(error.body, dict):
            kind = (error.body.get("error") or {}).get("type")
            if kind and kind not in error.message:
                error.message = f"{error.message} ({kind})"
                error.args = (error.message,)
        return error

    # ------------------------------------------------------------------ chat

    def execute(self, request: RequestLike, *, options: CallOptions | None = None) -> ChatResponse:
        body, model = self._body(request, stream=False)
        provider = self.instance_name

        def parse(data: Any, response: HTTPResponse) -> ChatResponse:
            if not isinstance(data, dict) or data.get("type") == "error":
                raise error_from_anthropic(data, status=response.status, provider=provider, model=model)
            if not isinstance(data.get("content"), list):
                raise InvalidResponseError("messages: the response has no content list", provider=provider)
            return from_messages_response(data, provider=provider)

        try:
            return self._client.request("POST", "/messages", parse, body=body, model=model, what="messages")
        except LLMRelayError as error:
            raise self._typed(error, model) from None

    def stream_execute(self, request: RequestLike, *, options: CallOptions | None = None) -> ChatStream:
        body, model = self._body(request, stream=True)
        try:
            response = self._client.open_stream("/messages", body=body, model=model, what="messages stream")
        except LLMRelayError as error:
            raise self._typed(error, model) from None
        chunks = _stream_chunks(response, StreamDecoder(provider=self.instance_name, model=model))
        stream = ChatStream(chunks, provider=self.instance_name, model=model, close=response.close)
        stream.meta.attempts = response.attempts
        return stream

    # ------------------------------------------------------------------ models and key

    def list_models(self, *, options: CallOptions | None = None) -> ModelList:
        provider = self.instance_name
        models: list[ModelInfo] = []
        params: dict[str, Any] | None = {"limit": 1000}
        retries = 0
        for _ in range(20):  # pages of 1000; a bound so a looping cursor cannot hang the caller
            reply = self._client.request_json("GET", "/models", params=params, what="list models")
            data = reply.value
            retries += reply.attempts - 1
            entries = data.get("data") if isinstance(data, dict) else None
            if not isinstance(entries, list):
                raise InvalidResponseError('/models: expected {"data": [...]}', provider=provider)
            for entry in entries:
                if isinstance(entry, dict) and entry.get("id"):
                    models.append(
                        ModelInfo(
                            id=entry["id"],
                            name=entry.get("display_name"),
                            provider="anthropic",
                            input_modalities=["text", "image"],
                            output_modalities=["text"],
                            supported_parameters=["tools", "tool_choice", "max_tokens", "temperature", "top_p", "stop"],
                        )
                    )
            if not data.get("has_more") or not data.get("last_id"):
                break
            params = {"limit": 1000, "after_id": data["last_id"]}
        result = ModelList(models=models, provider=provider)
        result.meta.attempts = 1 + retries
        return result


def _stream_chunks(response: HTTPResponse, decoder: StreamDecoder) -> Iterator[StreamChunk]:
    """Chunks from an open Messages stream; closes the response however it ends."""
    provider = decoder.provider
    try:
        for event in iter_sse(response.iter_bytes()):
            if not event.data:
                continue
            data = event_object(event.data, provider=provider)
            data.setdefault("type", event.event)
            chunk = decoder.feed(data)
            if chunk is not None:
                yield chunk
            if decoder.done:
                response.finish()
                return
        raise StreamInterruptedError("the stream ended before message_stop", provider=provider)
    finally:
        response.close()
