"""Pricing: what a call cost, what models cost per million tokens, with an optional markup.

:class:`PricingService` sits on any provider's ``list_models``:

* :meth:`PricingService.cost` / :meth:`PricingService.cost_of`: the cost of a
  call. The response's own ``usage.cost`` (OpenRouter reports it) is
  preferred; otherwise it is computed from usage x the model's per-token
  prices (cached prompt tokens at the cache-read price when the model has
  one, plus any per-request price). An optional markup multiplier applies to
  either (the original reports charged 1.3x).
* :meth:`PricingService.prices` / :meth:`PricingService.per_million`: many
  model ids priced with one model-list fetch.
* The model list is kept for ``ttl`` seconds. When the service cannot be
  reached (an ``availability`` error), the last list fetched is used, marked
  ``meta.stale``; when there is none, the built-in fallback list is, marked
  ``fallback=True`` (prices as of its recording, see the file's ``source``).
  Other errors (a bad key) are raised, never papered over.

The built-in list, ``data/openrouter_fallback_models.json``, was built from
real ``GET /models`` responses recorded by simonw/llm-openrouter (2025-04-23
full list, 2026-08-04 entries on top); its ``source`` field says exactly where.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from importlib import resources
from typing import Any

from llmrelay.core.catalog import ModelList, Pricing
from llmrelay.core.errors import ConfigurationError, LLMRelayError
from llmrelay.core.models import ChatResponse, ResponseMeta, Usage
from llmrelay.core.provider import Provider

__all__ = ["FALLBACK_FILE", "CostEstimate", "ModelPrice", "PricingService", "compute_cost", "load_fallback_models"]

FALLBACK_FILE = "openrouter_fallback_models.json"
ONE = Decimal(1)


@dataclass(frozen=True, slots=True)
class CostEstimate:
    """The cost of one call, USD. ``source`` is "reported", "computed" or "unknown"."""

    model: str | None
    base: Decimal | None  # before markup
    total: Decimal | None  # after markup
    markup: Decimal
    source: str

    @property
    def known(self) -> bool:
        return self.total is not None


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """Display prices of one model: USD per million tokens (``None`` when unknown/variable)."""

    model: str
    prompt_per_million: Decimal | None
    completion_per_million: Decimal | None
    found: bool
    fallback: bool = False

    @property
    def is_free(self) -> bool:
        return self.prompt_per_million == 0 and self.completion_per_million == 0


def compute_cost(usage: Usage, pricing: Pricing) -> Decimal | None:
    """Usage x per-token prices; ``None`` when a needed price is unknown (missing or negative)."""
    prompt_price, completion_price = _known(pricing.prompt), _known(pricing.completion)
    if prompt_price is None or completion_price is None:
        return None
    cached = usage.cached_tokens or 0
    cache_read_price = _known(pricing.input_cache_read)
    if cached and cache_read_price is not None:
        uncached = max(usage.prompt_tokens - cached, 0)
        prompt_cost = uncached * prompt_price + cached * cache_read_price
    else:
        prompt_cost = usage.prompt_tokens * prompt_price
    total = prompt_cost + usage.completion_tokens * completion_price
    request_price = _known(pricing.request)
    if request_price is not None:
        total += request_price
    return total


def _known(price: Decimal | None) -> Decimal | None:
    """``price`` when it is a real price, ``None`` when missing or negative ("unknown / variable")."""
    return price if Pricing.known(price) else None


def load_fallback_models(provider: str = "openrouter") -> ModelList:
    """The built-in model list, flagged ``fallback=True``."""
    from .openrouter import parse_model_list

    text = (resources.files("llmrelay.providers") / "data" / FALLBACK_FILE).read_text("utf-8")
    models, _ = parse_model_list(json.loads(text), provider=provider)
    return ModelList(models=models, provider=provider, fallback=True)


def _as_decimal(value: Decimal | float | int | str, what: str) -> Decimal:
    try:
        result = Decimal(str(value))
    except Exception:
        raise ConfigurationError(f"{what} must be a number, got {value!r}") from None
    if not result.is_finite() or result <= 0:
        raise ConfigurationError(f"{what} must be a positive number, got {value!r}")
    return result


class PricingService:
    """Prices and costs for one provider's models. Thread-safe."""

    def __init__(
        self,
        provider: Provider,
        *,
        markup: Decimal | float | int | str = ONE,
        ttl: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        fallback: Callable[[], ModelList] | None = None,
    ) -> None:
        self.provider = provider
        self.markup = _as_decimal(markup, "markup")
        self.ttl = ttl
        self._clock = clock
        self._fallback = fallback or (lambda: load_fallback_models(getattr(provider, "instance_name", "openrouter")))
        self._lock = threading.Lock()
        self._models: ModelList | None = None
        self._fetched_at = 0.0
        self._index: dict[str, Pricing] = {}

    # ------------------------------------------------------------------ the model list

    def models(self, *, refresh: bool = False) -> ModelList:
        """The provider's models (cached ``ttl`` seconds; stale or fallback when unreachable)."""
        with self._lock:
            cached = self._models
            if cached is not None and not refresh and self._clock() - self._fetched_at < self.ttl:
                return cached
        try:
            fresh = self.provider.list_models()
        except LLMRelayError as error:
            if not error.availability:
                raise
            with self._lock:
                if self._models is not None and not self._models.fallback:
                    stale = self._models.model_copy(update={"meta": ResponseMeta(stale=True)})
                    return stale
                fallback = self._fallback()
                self._store(fallback, fetched_at=float("-inf"))  # retried on the next call
                return fallback
        with self._lock:
            self._store(fresh, fetched_at=self._clock())
        return fresh

    def _store(self, models: ModelList, *, fetched_at: float) -> None:
        self._models = models
        self._fetched_at = fetched_at
        self._index = {m.id: m.pricing for m in models}

    # ------------------------------------------------------------------ prices

    def prices(self, model_ids: Iterable[str]) -> dict[str, Pricing | None]:
        """Per-token pricing for many models at once (one list fetch); ``None`` for unknown ids."""
        wanted = list(model_ids)
        self.models()
        with self._lock:
            index = self._index
        return {model_id: index.get(model_id) for model_id in wanted}

    def price(self, model_id: str) -> Pricing | None:
        return self.prices([model_id])[model_id]

    def per_million(self, model_ids: Iterable[str], *, with_markup: bool = False) -> dict[str, ModelPrice]:
        """Display prices per million tokens for many models; ``with_markup`` applies the markup."""
        wanted = list(model_ids)
        listing = self.models()
        with self._lock:
            index = self._index
        factor = self.markup if with_markup else ONE
        out = {}
        for model_id in wanted:
            pricing = index.get(model_id)
            if pricing is None:
                out[model_id] = ModelPrice(model_id, None, None, found=False, fallback=listing.fallback)
                continue
            prompt = pricing.prompt_per_million
            completion = pricing.completion_per_million
            out[model_id] = ModelPrice(
                model_id,
                prompt * factor if prompt is not None else None,
                completion * factor if completion is not None else None,
                found=True,
                fallback=listing.fallback,
            )
        return out

    # ------------------------------------------------------------------ costs

    def cost(
        self, usage: Usage | None, model_id: str | None, *, markup: Decimal | float | str | None = None
    ) -> CostEstimate:
        """Cost of a call with ``usage`` on ``model_id``: ``usage.cost`` if reported, else computed."""
        factor = _as_decimal(markup, "markup") if markup is not None else self.markup
        if usage is None:
            return CostEstimate(model_id, None, None, factor, "unknown")
        if usage.cost is not None:
            reported = Decimal(usage.cost)
            return CostEstimate(model_id, reported, reported * factor, factor, "reported")
        pricing = self.price(model_id) if model_id else None
        base = compute_cost(usage, pricing) if pricing is not None else None
        if base is None:
            return CostEstimate(model_id, None, None, factor, "unknown")
        return CostEstimate(model_id, base, base * factor, factor, "computed")

    def cost_of(self, result: ChatResponse | Any, *, markup: Decimal | float | str | None = None) -> CostEstimate:
        """Cost of a :class:`ChatResponse` or a finished :class:`ChatStream`."""
        return self.cost(getattr(result, "usage", None), getattr(result, "model", None), markup=markup)

    def __repr__(self) -> str:
        return f"<PricingService markup={self.markup} ttl={self.ttl}s provider={self.provider!r}>"
