"""The model catalog: what ``list_models`` returns, with pricing as ``Decimal``.

Prices can carry a markup (the pricing plugin's ``[plugins.pricing] markup``):
:meth:`ModelList.with_markup` multiplies every price once, keeps the
service's own prices on :attr:`ModelInfo.base_pricing` and records the
multiplier on :attr:`ModelList.markup`, so nothing downstream applies it twice.

:attr:`ModelInfo.category` sorts a model into the price tiers of the
original reports (see :func:`price_category`).
"""

from collections.abc import Iterator
from decimal import Decimal
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import Field, field_validator

from .models import ResponseMeta, _Model, to_decimal

__all__ = [
    "CATEGORY_TIERS",
    "FALLBACK_DEFERRED",
    "CatalogFallback",
    "ModelCategory",
    "ModelInfo",
    "ModelList",
    "Pricing",
    "price_category",
]

MILLION = Decimal(1_000_000)
ONE = Decimal(1)

ModelCategory = Literal["Budget", "Standard", "Fast", "Premium", "Reasoning", "Unknown"]

#: The original reports' tiers: the average of the prompt and completion price
#: in USD per million tokens, below each bound; "Reasoning" above the last.
CATEGORY_TIERS: tuple[tuple[Decimal, ModelCategory], ...] = (
    (Decimal(1), "Budget"),
    (Decimal(5), "Standard"),
    (Decimal(10), "Fast"),
    (Decimal(50), "Premium"),
)

#: A ``CallOptions.extra`` key: a layer outside the provider will answer a failed
#: ``list_models`` with the shipped catalog, so the provider raises instead of
#: falling back itself (which would hide a stale cached list from the cache).
FALLBACK_DEFERRED = "llmrelay.catalog.fallback_deferred"


def _scaled_raw(value: Any, factor: Decimal) -> Any:
    """A price the service sent as a string (``"0.000003"``), times ``factor``; anything else as it is."""
    if isinstance(value, str):
        price = to_decimal(value)
        return format(price * factor, "f") if price is not None and price >= 0 else value
    if isinstance(value, dict):  # pricing.overrides entries: {"min_prompt_tokens": 200000, "prompt": "..."}
        return {key: _scaled_raw(item, factor) for key, item in value.items()}
    if isinstance(value, list):
        return [_scaled_raw(item, factor) for item in value]
    return value  # numbers: "discount" is a fraction, not a price


class Pricing(_Model):
    """USD per unit, as ``Decimal``. Per token unless the name says otherwise.

    A negative price means "unknown / variable" (OpenRouter prices its
    ``openrouter/auto`` router at ``"-1"``); use :meth:`known` before doing
    arithmetic with a field. Prices the service sends that have no field here
    (``audio``, ``input_cache_write_1h``...) are kept as sent, as extra fields.
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

    def scaled(self, factor: Decimal) -> "Pricing":
        """Every known price times ``factor`` (extra fields and ``overrides`` too); unknown ones stay unknown."""
        if factor == ONE:
            return self
        update: dict[str, Any] = {}
        for name in _PRICE_FIELDS:
            value = getattr(self, name)
            if value is not None and value >= 0:
                update[name] = value * factor
        extra = self.model_extra
        if extra:
            for name, value in extra.items():
                update[name] = _scaled_raw(value, factor)
        return self.model_copy(update=update)


_PRICE_FIELDS = tuple(Pricing.model_fields)


def price_category(pricing: Pricing) -> ModelCategory:
    """The reports' tier for ``pricing``: the mean of its prompt and completion price per million tokens.

    ======================  ===========
    mean USD / 1M tokens    category
    ======================  ===========
    below 1 (free too)      Budget
    1 to below 5            Standard
    5 to below 10           Fast
    10 to below 50          Premium
    50 and above            Reasoning
    unknown or variable     Unknown
    ======================  ===========
    """
    prompt, completion = pricing.prompt_per_million, pricing.completion_per_million
    if prompt is None or completion is None:
        return "Unknown"
    mean = (prompt + completion) / 2
    for bound, category in CATEGORY_TIERS:
        if mean < bound:
            return category
    return "Reasoning"


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
    # The service's own prices, when ``pricing`` carries a markup (None: ``pricing`` is the service's).
    base_pricing: Pricing | None = None
    provider: str | None = None

    @property
    def supports_images(self) -> bool:
        return "image" in self.input_modalities

    @property
    def supports_tools(self) -> bool:
        return "tools" in self.supported_parameters

    @property
    def service_pricing(self) -> Pricing:
        """The service's own prices, before any markup."""
        return self.base_pricing if self.base_pricing is not None else self.pricing

    @property
    def category(self) -> ModelCategory:
        """The price tier (:func:`price_category`) of the service's own prices: a markup never moves a model."""
        return price_category(self.service_pricing)


class ModelList(_Model):
    """The result of ``list_models``: iterable like a list of :class:`ModelInfo`."""

    models: list[ModelInfo] = Field(default_factory=list)
    provider: str | None = None
    # True when this is llmrelay's built-in list, used because the service
    # could not be reached and nothing was cached: prices may be out of date.
    fallback: bool = False
    # The multiplier already applied to every price in this list (1: the service's own prices).
    markup: Decimal = ONE
    # A list merged from several providers (a Router's): the ones that could not
    # list theirs, each with the error's message. Empty when every one answered.
    unavailable: dict[str, str] = Field(default_factory=dict)
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

    def with_markup(self, factor: Decimal) -> "ModelList":
        """A copy whose prices are the service's own times ``factor`` (never on top of a markup already applied)."""
        if factor == self.markup:
            return self.model_copy(update={"models": list(self.models)})
        models = []
        for model in self.models:
            base = model.service_pricing
            if factor == ONE:
                models.append(model.model_copy(update={"pricing": base, "base_pricing": None}))
            else:
                models.append(model.model_copy(update={"pricing": base.scaled(factor), "base_pricing": base}))
        return self.model_copy(update={"models": models, "markup": factor})


@runtime_checkable
class CatalogFallback(Protocol):
    """A provider that can stand in for its service's model list with a catalog it ships.

    ``fallback_catalog_enabled`` is the user's opt-in; ``fallback_models()``
    gives the shipped list, flagged ``fallback=True``.
    """

    @property
    def fallback_catalog_enabled(self) -> bool: ...

    def fallback_models(self) -> ModelList: ...
