"""The pricing layer: the markup on every price and cost, and the shipped catalog as a last resort.

It sits outside every other built-in layer (position 50, before metrics at
100), so:

* the cache stores and the metrics count the service's own prices and costs,
  and the markup is applied exactly once, on the way out, to whatever the
  caller gets, cached or not: ``list_models`` prices
  (:meth:`~llmrelay.core.catalog.ModelList.with_markup`; the service's own
  stay on ``ModelInfo.base_pricing``), and ``usage.cost`` of chat calls,
  streams and embeddings (the service's own on ``usage.base_cost``).
  Results are copied, never changed in place: a cached entry stays as stored.
* a provider with ``fallback_catalog`` on (OpenRouter) is asked to raise
  rather than fall back itself; when ``list_models`` then fails for
  availability (after the cache had its chance to answer with a stale list,
  and the breaker its chance to fail fast), this layer answers with the
  provider's shipped catalog, ``fallback=True``.

Credits and generation stats are the account's own figures and pass unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar, cast

from llmrelay.core.errors import LLMRelayError
from llmrelay.core.pipeline import Call, Handler, Layer, Operation
from llmrelay.core.provider import CallOptions
from llmrelay.core.stream import ChatStream, StreamChunk

if TYPE_CHECKING:
    from llmrelay.core.catalog import CatalogFallback, ModelInfo, ModelList
    from llmrelay.core.models import Usage

__all__ = ["PricingLayer"]

log = logging.getLogger("llmrelay.plugins.pricing")

R = TypeVar("R")
ONE = Decimal(1)


class PricingLayer(Layer):
    """Applies ``markup`` to what one provider returns; answers a failed ``list_models`` from ``fallback``.

    ``markup`` is public: :class:`~llmrelay.providers.pricing.PricingService`
    reads it (``configured_markup``) so that it uses the same factor.
    """

    name = "pricing"

    def __init__(self, markup: Decimal = ONE, *, fallback: CatalogFallback | None = None) -> None:
        self.markup = markup
        self.fallback = fallback
        # (the models a list arrived with, their marked-up copies): cache hits of one
        # entry share their model objects, so those are priced once, not on every hit.
        self._priced: tuple[list[ModelInfo], list[ModelInfo]] | None = None

    def handle(self, call: Call[R], proceed: Handler) -> R:
        operation = call.operation
        if operation is Operation.LIST_MODELS:
            return cast(R, self._list_models(call, proceed))
        result = proceed(call)
        if self.markup == ONE:
            return result
        if operation is Operation.EXECUTE or operation is Operation.EMBED:
            return cast(R, self._with_usage_marked_up(result))
        if operation is Operation.STREAM and isinstance(result, ChatStream):
            return cast(R, self._stream(result))
        return result

    # ------------------------------------------------------------------ model lists

    def _list_models(self, call: Call[Any], proceed: Handler) -> ModelList:
        from llmrelay.core.catalog import FALLBACK_DEFERRED

        if self.fallback is not None:
            options = call.options
            call.options = CallOptions(options.cache, options.cache_ttl, {**options.extra, FALLBACK_DEFERRED: True})
        try:
            listing: ModelList = proceed(call)
        except LLMRelayError as error:
            if self.fallback is None or not error.availability:
                raise
            log.warning("pricing: list_models failed (%s); answering with the shipped model list", error)
            listing = self.fallback.fallback_models()
            listing.meta.attempts = error.attempts
        return self._priced_list(listing)

    def _priced_list(self, listing: ModelList) -> ModelList:
        if listing.markup == self.markup:
            return listing
        source = listing.models
        priced = self._priced
        if priced is not None and _same_objects(priced[0], source):
            models = priced[1]
        else:
            models = listing.with_markup(self.markup).models
            self._priced = (list(source), models)
        return listing.model_copy(update={"models": list(models), "markup": self.markup})

    # ------------------------------------------------------------------ costs

    def _marked(self, usage: Usage | None) -> Usage | None:
        """``usage`` with the markup on its cost (the service's own kept as ``base_cost``); None: no cost."""
        if usage is None:
            return None
        base = usage.base_cost if usage.base_cost is not None else usage.cost
        if base is None:
            return None
        return usage.model_copy(update={"cost": base * self.markup, "base_cost": base})

    def _with_usage_marked_up(self, result: Any) -> Any:
        marked = self._marked(getattr(result, "usage", None))
        return result if marked is None else result.model_copy(update={"usage": marked})

    def _stream(self, stream: ChatStream) -> ChatStream:
        # A stream's cost arrives on one chunk, which must be changed before the
        # caller sees it: the chunks pass through here (only with a markup set).
        priced = ChatStream(self._chunks(stream), provider=stream.provider, model=stream.model, close=stream.close)
        priced.meta = stream.meta
        return priced

    def _chunks(self, stream: ChatStream) -> Iterator[StreamChunk]:
        for chunk in stream:
            if chunk.usage is not None:
                marked = self._marked(chunk.usage)
                if marked is not None:
                    chunk = chunk.replace(usage=marked)
            yield chunk

    def __repr__(self) -> str:
        fallback = "on" if self.fallback is not None else "off"
        return f"<PricingLayer markup={self.markup} catalog_fallback={fallback}>"


def _same_objects(first: list[Any], second: list[Any]) -> bool:
    return len(first) == len(second) and all(a is b for a, b in zip(first, second, strict=True))
