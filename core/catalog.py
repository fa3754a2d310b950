"""The model catalog: what ``list_models`` returns, with pricing as ``Decimal``."""

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from pydantic import Field, field_validator

from .models import ResponseMeta, _Model, to_decimal

__all__ = ["ModelInfo", "ModelList", "Pricing"]

MILLION = Decimal(1_000_000)


class Pricing(_Model):
    """USD per unit, as ``Decimal``. Per token unless the name says otherwise.

    A negative price means "unknown / variable" (OpenRouter prices its
    ``openrouter/auto`` router at ``"-1"``); use :meth:`known` before doing
    arithmetic with a field.
    """

    prompt: Decimal | None = None
    completion: Decimal | None = None
    request: Decimal | None = None
    image: Decimal | None = None
    web_search: Decimal | None = None
    internal_reasoning: Decimal | None = None
    input_cache_read: Decimal | None = None
    input_cache_write: Decimal | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _decimal(cls, value: Any) -> Any:
        # Unparseable prices become None instead of failing a whole /models list.
        return to_decimal(value) if isinstance(value, (str, int, float)) else value

    @staticmethod
    def known(value: Decimal | None) -> bool:
        return value is not None and value >= 0

    @property
    def is_unknown(self) -> bool:
        return not (self.known(self.prompt) and self.known(self.completion))

    @property
    def is_free(self) -> bool:
        return self.prompt == 0 and self.completion == 0

    @property
    def prompt_per_million(self) -> Decimal | None:
        return self.prompt * MILLION if self.known(self.prompt) else None  # type: ignore[operator]  # known: not None

    @property
    def completion_per_million(self) -> Decimal | None:
        return self.completion * MILLION if self.known(self.completion) else None  # type: ignore[operator]  # known: not None


class ModelInfo(_Model):
    id: str
    name: str | None = None
    description: str | None = None
    created: int | None = None
    context_length: int | None = None
    max_completion_tokens: int | None = None
    input_modalities: list[str] = Field(default_factory=list)
    output_modalities: list[str] = Field(default_factory=list)
    supported_parameters: list[str] = Field(default_factory=list)
    pricing: Pricing = Field(default_factory=Pricing)
    provider: str | None = None

    @property
    def supports_images(self) -> bool:
        return "image" in self.input_modalities

    @property
    def supports_tools(self) -> bool:
        return "tools" in self.supported_parameters


class ModelList(_Model):
    """The result of ``list_models``: iterable like a list of :class:`ModelInfo`."""

    models: list[ModelInfo] = Field(default_factory=list)
    provider: str | None = None
    # True when this is llmrelay's built-in list, used because the service
    # could not be reached and nothing was cached: prices may be out of date.
    fallback: bool = False
    meta: ResponseMeta = Field(default_factory=ResponseMeta)

    def __iter__(self) -> Iterator[ModelInfo]:  # type: ignore[override]  # models, not BaseModel's (field, value)s
        return iter(self.models)

    def __len__(self) -> int:
        return len(self.models)

    def __getitem__(self, index: int) -> ModelInfo:
        return self.models[index]

    def get(self, model_id: str) -> ModelInfo | None:
        for model in self.models:
            if model.id == model_id:
                return model
        return None

    @property
    def ids(self) -> list[str]:
        return [m.id for m in self.models]
