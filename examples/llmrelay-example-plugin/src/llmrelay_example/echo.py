"""A provider that answers by echoing the last user message, with no network.

It implements the whole :class:`~llmrelay.core.Provider` interface, so it is
the smallest complete template for a provider. (A provider for an
OpenAI-compatible HTTP service needs far less: subclass
``llmrelay.providers.openai_compat.OpenAICompatibleProvider`` and set
``name``, ``env_prefix`` and ``default_base_url``.)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from llmrelay.core import (
    CallOptions,
    ChatRequest,
    ChatResponse,
    ChatStream,
    ConfigurationError,
    Message,
    ModelInfo,
    ModelList,
    Provider,
    ProviderSettings,
    StreamChunk,
    Usage,
    ValidationReport,
)
from pydantic import Field

__all__ = ["EchoProvider", "EchoSettings"]


class EchoSettings(ProviderSettings):
    """Settings are validated from config; unknown keys are rejected with a hint."""

    prefix: str = Field(default="echo: ", description="put before every answer")
    uppercase: bool = False


class EchoProvider(Provider):
    """Echoes the last user message. Useful to run an agent backend offline."""

    name = "echo"
    settings_model = EchoSettings
    env_prefix = "ECHO_"  # ECHO_PREFIX=... fills settings.prefix
    requires_api_key = False

    settings: EchoSettings

    def _answer(self, request: Any) -> tuple[ChatRequest, str]:
        chat = ChatRequest.coerce(request)
        users = [m for m in chat.messages if m.role == "user"]
        if not users:
            raise ConfigurationError(f"[{self.instance_name}] the echo provider needs a user message to echo")
        text = self.settings.prefix + users[-1].text
        return chat, text.upper() if self.settings.uppercase else text

    def execute(self, request: Any, *, options: CallOptions | None = None) -> ChatResponse:
        chat, text = self._answer(request)
        words = len(text.split())
        return ChatResponse(
            id="echo-1",
            model=chat.model or "echo",
            provider=self.instance_name,
            message=Message.assistant(text),
            finish_reason="stop",
            usage=Usage(prompt_tokens=words, completion_tokens=words, total_tokens=2 * words),
        )

    def stream_execute(self, request: Any, *, options: CallOptions | None = None) -> ChatStream:
        chat, text = self._answer(request)
        words = text.split(" ")

        def chunks() -> Iterator[StreamChunk]:
            for index, word in enumerate(words):
                yield StreamChunk(text=word if index == 0 else " " + word, id="echo-s1")
            yield StreamChunk(finish_reason="stop")

        return ChatStream(chunks(), provider=self.instance_name, model=chat.model or "echo")

    def list_models(self, *, options: CallOptions | None = None) -> ModelList:
        return ModelList(
            models=[ModelInfo(id="echo", name="Echo", input_modalities=["text"])], provider=self.instance_name
        )

    def validate_config(self) -> ValidationReport:
        return ValidationReport(provider=self.instance_name, outcome="valid", message="the echo provider needs no key")
