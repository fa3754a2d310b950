"""The module named by the ``llmrelay`` entry point of the ``llmrelay-parrot`` package.

It registers a provider (``parrot``) and a layer (``stamp``) through llmrelay's
hooks, using only llmrelay's public API.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

from llmrelay.core import (
    Call,
    CallOptions,
    ChatRequest,
    ChatResponse,
    ChatStream,
    Layer,
    LayerContext,
    LayerSpec,
    Message,
    ModelInfo,
    ModelList,
    Provider,
    ProviderSettings,
    StreamChunk,
    ValidationReport,
    hookimpl,
)
from pydantic import BaseModel, ConfigDict


class ParrotSettings(ProviderSettings):
    prefix: str = "parrot"


class ParrotProvider(Provider):
    """Answers with the last message's text, prefixed."""

    name = "parrot"
    settings_model = ParrotSettings
    env_prefix = "PARROT_"

    def execute(self, request: Any, *, options: CallOptions | None = None) -> ChatResponse:
        chat = ChatRequest.coerce(request)
        return ChatResponse(
            id="parrot-1",
            model=chat.model,
            provider=self.instance_name,
            message=Message.assistant(f"{self.settings.prefix}: {chat.messages[-1].text}"),
            finish_reason="stop",
        )

    def stream_execute(self, request: Any, *, options: CallOptions | None = None) -> ChatStream:
        chat = ChatRequest.coerce(request)
        words = chat.messages[-1].text.split()

        def chunks() -> Iterator[StreamChunk]:
            for word in words:
                yield StreamChunk(text=word + " ")
            yield StreamChunk(finish_reason="stop")

        return ChatStream(chunks(), provider=self.instance_name, model=chat.model)

    def list_models(self, *, options: CallOptions | None = None) -> ModelList:
        return ModelList(provider=self.instance_name, models=[ModelInfo(id="parrot/model")])

    def validate_config(self) -> ValidationReport:
        return ValidationReport(provider=self.instance_name, outcome="valid", message="parrot needs nothing")


class StampSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str = "stamp"


class StampLayer(Layer):
    """Remembers which operations passed through it, under its configured label."""

    name = "stamp"

    def __init__(self, label: str) -> None:
        self.label = label
        self.seen: list[str] = []
        self.closed = False
        self._lock = threading.Lock()

    def handle(self, call: Call, proceed: Callable[[Call], Any]) -> Any:
        with self._lock:
            self.seen.append(call.operation)
        call.notes[self.label] = True
        return proceed(call)

    def close(self) -> None:
        self.closed = True


def _stamp_layer(context: LayerContext) -> Layer:
    return StampLayer(context.settings.label)


@hookimpl
def llmrelay_register_providers(register: Callable[[type[Provider]], None]) -> None:
    register(ParrotProvider)


@hookimpl
def llmrelay_register_layers(register: Callable[[LayerSpec], None]) -> None:
    register(
        LayerSpec(
            name="stamp",
            position=50,
            factory=_stamp_layer,
            settings_model=StampSettings,
            description="records the operations it sees (a test plugin)",
        )
    )
