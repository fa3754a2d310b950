"""A provider that lives only in the tests: scripted answers, no network.

Framework tests (pipeline, config, cache, metrics, breaker) use it so they
test llmrelay's own logic, not an HTTP stack. It records every call.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

from llmrelay.core import (
    Capability,
    ChatRequest,
    ChatResponse,
    ChatStream,
    Credits,
    GenerationStats,
    Message,
    ModelInfo,
    ModelList,
    Pricing,
    Provider,
    ProviderSettings,
    StreamChunk,
    Usage,
    ValidationReport,
    hookimpl,
)
from llmrelay.core.provider import CallOptions


class FakeSettings(ProviderSettings):
    reply: str = "hello"


Script = Callable[[str, Any], Any]


class FakeProvider(Provider):
    """Answers from a script; ``fail_with`` makes the next calls raise."""

    name = "fake"
    settings_model = FakeSettings
    env_prefix = "FAKE_"
    requires_api_key = False
    capabilities = Capability.CORE | {Capability.CREDITS, Capability.GENERATION_STATS}

    def __init__(self, settings: FakeSettings | None = None, **fields: Any) -> None:
        super().__init__(settings, **fields)
        self.calls: list[tuple[str, Any]] = []
        self._lock = threading.Lock()
        self.errors: list[BaseException] = []  # raised in order, one per call, before answering
        self.script: Script | None = None
        self.closed = False

    # -- helpers
    def _record(self, operation: str, request: Any) -> Any:
        with self._lock:
            self.calls.append((operation, request))
            error = self.errors.pop(0) if self.errors else None
        if error is not None:
            raise error
        if self.script is not None:
            return self.script(operation, request)
        return None

    def count(self, operation: str) -> int:
        with self._lock:
            return sum(1 for op, _ in self.calls if op == operation)

    # -- operations
    def execute(self, request: Any, *, options: CallOptions | None = None) -> ChatResponse:
        chat = ChatRequest.coerce(request)
        scripted = self._record("execute", chat)
        if scripted is not None:
            return scripted
        text = f"{self.settings.reply}: {chat.messages[-1].text}"
        return ChatResponse(
            id="gen-fake-1",
            model=chat.model,
            provider=self.instance_name,
            message=Message.assistant(text),
            finish_reason="stop",
            usage=Usage(prompt_tokens=3, completion_tokens=2, total_tokens=5, cost=Decimal("0.0001")),
        )

    def stream_execute(self, request: Any, *, options: CallOptions | None = None) -> ChatStream:
        chat = ChatRequest.coerce(request)
        scripted = self._record("stream_execute", chat)
        if scripted is not None:
            return scripted
        words = f"{self.settings.reply} {chat.messages[-1].text}".split()

        def chunks() -> Iterator[StreamChunk]:
            for i, word in enumerate(words):
                yield StreamChunk(text=word if i == 0 else " " + word, id="gen-fake-s", model=chat.model)
            yield StreamChunk(finish_reason="stop")
            yield StreamChunk(usage=Usage(prompt_tokens=3, completion_tokens=len(words), total_tokens=3 + len(words)))

        return ChatStream(chunks(), provider=self.instance_name, model=chat.model)

    def list_models(self, *, options: CallOptions | None = None) -> ModelList:
        scripted = self._record("list_models", None)
        if scripted is not None:
            return scripted
        return ModelList(
            provider=self.instance_name,
            models=[
                ModelInfo(id="fake/small", pricing=Pricing(prompt="0.000001", completion="0.000002")),
                ModelInfo(id="fake/auto", pricing=Pricing(prompt="-1", completion="-1")),
            ],
        )

    def validate_config(self) -> ValidationReport:
        self._record("validate_config", None)
        return ValidationReport(provider=self.instance_name, outcome="valid", message="fake provider is always valid")

    def get_credits(self, *, options: CallOptions | None = None) -> Credits:
        scripted = self._record("get_credits", None)
        if scripted is not None:
            return scripted
        return Credits(total_credits=Decimal("10"), total_usage=Decimal("2.5"), provider=self.instance_name)

    def get_generation_stats(self, generation_id: str, *, options: CallOptions | None = None) -> GenerationStats:
        scripted = self._record("get_generation_stats", generation_id)
        if scripted is not None:
            return scripted
        return GenerationStats(id=generation_id, model="fake/small", total_cost=Decimal("0.0001"))

    def close(self) -> None:
        self.closed = True


@hookimpl
def llmrelay_register_providers(register: Callable[[type[Provider]], None]) -> None:
    register(FakeProvider)
