"""The pricing plugin: a markup configured once, and the shipped model list when the service is down.

Registered under the ``llmrelay`` entry-point group as ``pricing`` (see
:mod:`.hooks`); its layer sits outside every other built-in one
(:data:`.hooks.POSITION`). Configure it in the config file::

    [plugins.pricing]
    markup = 1.3

    [providers.openrouter]
    fallback_catalog = true      # a provider setting: the layer answers for it after the cache

Every price and cost a provider built by ``create_provider`` returns then
carries the markup, once: model list prices (``ModelList.markup`` says which
factor is in them, ``ModelInfo.base_pricing`` keeps the service's own) and
``usage.cost`` of chat calls, streams and embeddings (``usage.base_cost``
keeps the service's own). ``PricingService`` over such a provider uses the
same markup. The cache and the metrics keep the service's own figures.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from llmrelay.core.pipeline import LayerContext

from .settings import PricingSettings

if TYPE_CHECKING:
    from llmrelay.core.catalog import CatalogFallback

    from .layer import PricingLayer

__all__ = ["PricingLayer", "PricingSettings", "build_layer"]


def build_layer(context: LayerContext) -> PricingLayer | None:
    """The pricing layer for one provider; ``None`` (no layer) when it would change nothing."""
    settings = context.settings_as(PricingSettings)
    provider = context.provider
    # Duck-typed (see llmrelay.core.catalog.CatalogFallback): the catalog module
    # loads with the first list_models call, not when a provider is built.
    offers_fallback = getattr(provider, "fallback_catalog_enabled", False) is True
    fallback = cast("CatalogFallback", provider) if offers_fallback else None
    if settings.markup == 1 and fallback is None:
        return None
    # Imported only when a layer is built: it loads the chat and stream models,
    # which a provider build otherwise leaves to the first chat call.
    from .layer import PricingLayer

    return PricingLayer(settings.markup, fallback=fallback)


def __getattr__(name: str) -> Any:
    if name == "PricingLayer":
        from .layer import PricingLayer

        return PricingLayer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
