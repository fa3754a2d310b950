"""Pricing: what a call costs, what models cost per million tokens, and the markup on both.

* :func:`calculate_cost` / :meth:`PricingService.calculate_cost`: the cost in
  USD (``Decimal``) of ``input_tokens`` + ``output_tokens`` on one model, from
  the catalog's per-token prices (plus the model's per-request price, if it
  has one), times the markup. A model the catalog does not hold, or prices as
  variable (OpenRouter's ``openrouter/auto`` at ``"-1"``), raises
  :class:`UnknownPriceError`.
* :meth:`PricingService.cost` / :meth:`PricingService.cost_of`: the cost of a
  call that happened. The response's own ``usage.cost`` (OpenRouter reports
  it) is preferred; otherwise it is computed from usage x the model's
  per-token prices (cached prompt tokens at the cache-read price when the
  model has one, plus any per-request price).
* :meth:`PricingService.prices` / :meth:`PricingService.per_million`: many
  model ids priced with one model-list fetch.
* The model list is kept for ``ttl`` seconds. When the service cannot be
  reached (an ``availability`` error, or the provider answering with its
  shipped list), the last list fetched is used, marked ``meta.stale``; when
  there is none, the built-in fallback list is, marked ``fallback=True``
  (prices as of its recording, see the file's ``source``). Other errors (a
  bad key) are raised, never papered over.

**Markup, once.** The markup is configured in one place, the pricing plugin
(``[plugins.pricing] markup = 1.3``), which applies it to every price and
cost a provider built by ``create_provider`` returns, and records what it did
(``ModelList.markup``, ``ModelInfo.base_pricing``, ``Usage.base_cost``). A
:class:`PricingService` over such a provider uses that markup too. Every
figure here is computed from the service's own prices and costs times one
factor, so a markup is never applied on top of another: ``markup=`` on the
service, or ``markup_rate=`` on a call, replaces the configured markup for
those figures rather than multiplying it.
"""

from __future__ import annotations

import difflib
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from llmrelay.core.catalog import ModelInfo, ModelList, Pricing
from llmrelay.core.errors import ConfigurationError, LLMRelayError
from llmrelay.core.models import ChatResponse, ResponseMeta, Usage
from llmrelay.core.pipeline import LayeredProvider
from llmrelay.core.provider import Provider

from .openrouter_models import FALLBACK_FILE, load_fallback_models

__all__ = [
    "FALLBACK_FILE",
    "CostEstimate",
    "ModelPrice",
    "PricingService",
    "UnknownPriceError",
    "calculate_cost",
    "compute_cost",
    "configured_markup",
    "load_fallback_models",
]

ONE = Decimal(1)
MarkupLike = Decimal | float | int | str


class UnknownPriceError(LLMRelayError, LookupError):
    """A model has no usable price: not in the catalog (``reason="not listed"``) or priced as variable.

    ``model_id`` is the model asked about; ``suggestion`` a listed id close to it, when there is one.
    """

    def __init__(self, model_id: str, reason: str, detail: str, *, suggestion: str | None = None) -> None:
        super().__init__(detail)
        self.model_id = model_id
        self.reason = reason
        self.suggestion = suggestion


@dataclass(frozen=True, slots=True)
class CostEstimate:
    """The cost of one call, USD. ``source`` is "reported", "computed" or "unknown"."""

    model: str | None
    base: Decimal | None  # the service's own cost, before markup
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
    markup: Decimal = ONE  # already in the two prices

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


def calculate_cost(
    model_id: str,
    input_tokens: int,
    output_tokens: int,
    markup_rate: MarkupLike | None = None,
    *,
    catalog: ModelList,
) -> Decimal:
    """What ``input_tokens`` in and ``output_tokens`` out cost on ``model_id``, in USD, with the markup.

    Prices come from ``catalog`` (a ``list_models`` result). ``markup_rate``
    ``None`` keeps the markup the catalog already carries (the configured
    one, ``catalog.markup``); a number replaces it. Raises
    :class:`UnknownPriceError` for a model the catalog cannot price, and
    :class:`ConfigurationError` for negative token counts or a markup that is
    not a positive number.
    """
    factor = catalog.markup if markup_rate is None else _as_decimal(markup_rate, "markup_rate")
    return _token_cost(model_id, catalog.get(model_id), input_tokens, output_tokens, factor, catalog.ids)


def configured_markup(provider: Provider) -> Decimal:
    """The markup the pricing plugin applies to ``provider``'s results (1 when it applies none).

    Read from the layer named ``"pricing"`` of a provider built by
    ``create_provider``: its ``markup`` attribute (a ``Decimal``).
    """
    layer = provider.layer("pricing") if isinstance(provider, LayeredProvider) else None
    markup = getattr(layer, "markup", None)
    return markup if isinstance(markup, Decimal) else ONE


def _token_cost(
    model_id: str, model: ModelInfo | None, input_tokens: int, output_tokens: int, factor: Decimal, ids: list[str]
) -> Decimal:
    usage = Usage(
        prompt_tokens=_tokens(input_tokens, "input_tokens"), completion_tokens=_tokens(output_tokens, "output_tokens")
    )
    if model is None:
        close = difflib.get_close_matches(model_id, ids, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UnknownPriceError(
            model_id,
            "not listed",
            f"no price for {model_id!r}: it is not in the model list ({len(ids)} models){hint}",
            suggestion=close[0] if close else None,
        )
    base = compute_cost(usage, model.service_pricing)
    if base is None:
        raise UnknownPriceError(
            model_id,
            "variable",
            f"no price for {model_id!r}: the service lists its prompt or completion price as unknown or variable; "
            "its cost is known only after a call (usage.cost)",
        )
    return base * factor


def _tokens(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigurationError(f"{what} must be a whole number of tokens, 0 or more, got {value!r}")
    return value


def _known(price: Decimal | None) -> Decimal | None:
    """``price`` when it is a real price, ``None`` when missing or negative ("unknown / variable")."""
    return price if Pricing.known(price) else None


def _as_decimal(value: MarkupLike, what: str) -> Decimal:
    try:
        result = Decimal(str(value))
    except Exception:
        raise ConfigurationError(f"{what} must be a number, got {value!r}") from None
    if not result.is_finite() or result <= 0:
        raise ConfigurationError(f"{what} must be a positive number, got {value!r}")
    return result


class PricingService:
    """Prices and costs for one provider's models. Thread-safe.

    ``markup`` ``None`` uses the markup configured for ``provider``
    (:func:`configured_markup`); a number replaces it for this service's figures.
    """

    def __init__(
        self,
        provider: Provider,
        *,
        markup: MarkupLike | None = None,
        ttl: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        fallback: Callable[[], ModelList] | None = None,
    ) -> None:
        self.provider = provider
        self.markup = configured_markup(provider) if markup is None else _as_decimal(markup, "markup")
        self.ttl = ttl
        self._clock = clock
        self._fallback = fallback or (lambda: load_fallback_models(getattr(provider, "instance_name", "openrouter")))
        self._lock = threading.Lock()
        self._models: ModelList | None = None
        self._fetched_at = 0.0
        self._index: dict[str, ModelInfo] = {}

    # ------------------------------------------------------------------ the model list

    def models(self, *, refresh: bool = False) -> ModelList:
        """The provider's models, priced with this service's markup (cached ``ttl`` seconds; stale or
        fallback when unreachable)."""
        with self._lock:
            cached = self._models
            if cached is not None and not refresh and self._clock() - self._fetched_at < self.ttl:
                return cached
        try:
            fresh = self.provider.list_models()
        except LLMRelayError as error:
            if not error.availability:
                raise
            return self._stand_in(self._fallback)
        if fresh.fallback:  # the provider's own stand-in: a list this service fetched is better
            return self._stand_in(lambda: fresh)
        with self._lock:
            return self._store(fresh, fetched_at=self._clock())

    def _stand_in(self, fallback: Callable[[], ModelList]) -> ModelList:
        """The last real list (stale), else the fallback list, which is tried again on the next call."""
        with self._lock:
            if self._models is not None and not self._models.fallback:
                return self._models.model_copy(update={"meta": ResponseMeta(stale=True)})
            return self._store(fallback(), fetched_at=float("-inf"))

    def _store(self, models: ModelList, *, fetched_at: float) -> ModelList:
        priced = models.with_markup(self.markup)
        self._models = priced
        self._fetched_at = fetched_at
        self._index = {m.id: m for m in priced}
        return priced

    def _lookup(self, model_ids: Iterable[str]) -> tuple[list[str], dict[str, ModelInfo], ModelList]:
        wanted = list(model_ids)
        listing = self.models()
        with self._lock:
            index = self._index
        return wanted, index, listing

    # ------------------------------------------------------------------ prices

    def prices(self, model_ids: Iterable[str], *, with_markup: bool = True) -> dict[str, Pricing | None]:
        """Per-token pricing for many models at once (one list fetch); ``None`` for unknown ids."""
        wanted, index, _ = self._lookup(model_ids)
        out: dict[str, Pricing | None] = {}
        for model_id in wanted:
            model = index.get(model_id)
            out[model_id] = None if model is None else (model.pricing if with_markup else model.service_pricing)
        return out

    def price(self, model_id: str, *, with_markup: bool = True) -> Pricing | None:
        return self.prices([model_id], with_markup=with_markup)[model_id]

    def per_million(self, model_ids: Iterable[str], *, with_markup: bool = True) -> dict[str, ModelPrice]:
        """Display prices per million tokens for many models; ``with_markup=False`` gives the service's own."""
        wanted, index, listing = self._lookup(model_ids)
        factor = self.markup if with_markup else ONE
        out = {}
        for model_id in wanted:
            model = index.get(model_id)
            if model is None:
                out[model_id] = ModelPrice(model_id, None, None, found=False, fallback=listing.fallback, markup=factor)
                continue
            pricing = model.pricing if with_markup else model.service_pricing
            out[model_id] = ModelPrice(
                model_id,
                pricing.prompt_per_million,
                pricing.completion_per_million,
                found=True,
                fallback=listing.fallback,
                markup=factor,
            )
        return out

    # ------------------------------------------------------------------ costs

    def calculate_cost(
        self, model_id: str, input_tokens: int, output_tokens: int, markup_rate: MarkupLike | None = None
    ) -> Decimal:
        """The reports' ``calculate_cost``: USD for the tokens on ``model_id``, with this service's markup
        (``markup_rate`` replaces it). Raises :class:`UnknownPriceError` (see :func:`calculate_cost`)."""
        factor = self.markup if markup_rate is None else _as_decimal(markup_rate, "markup_rate")
        _, index, listing = self._lookup([model_id])
        return _token_cost(model_id, index.get(model_id), input_tokens, output_tokens, factor, listing.ids)

    def cost(self, usage: Usage | None, model_id: str | None, *, markup: MarkupLike | None = None) -> CostEstimate:
        """Cost of a call with ``usage`` on ``model_id``: ``usage.cost`` if reported, else computed."""
        factor = _as_decimal(markup, "markup") if markup is not None else self.markup
        if usage is None:
            return CostEstimate(model_id, None, None, factor, "unknown")
        reported = usage.base_cost if usage.base_cost is not None else usage.cost
        if reported is not None:
            return CostEstimate(model_id, reported, reported * factor, factor, "reported")
        pricing = self.price(model_id, with_markup=False) if model_id else None
        base = compute_cost(usage, pricing) if pricing is not None else None
        if base is None:
            return CostEstimate(model_id, None, None, factor, "unknown")
        return CostEstimate(model_id, base, base * factor, factor, "computed")

    def cost_of(self, result: ChatResponse | Any, *, markup: MarkupLike | None = None) -> CostEstimate:
        """Cost of a :class:`ChatResponse`, an ``EmbeddingResponse`` or a finished ``ChatStream``."""
        return self.cost(getattr(result, "usage", None), getattr(result, "model", None), markup=markup)

    def __repr__(self) -> str:
        return f"<PricingService markup={self.markup} ttl={self.ttl}s provider={self.provider!r}>"
