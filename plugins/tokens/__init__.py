"""Token management: a chat request never asks its model for more tokens than the model allows.

Off unless switched on in the config file::

    [plugins.tokens]
    enabled = true
    catalog_ttl = 3600      # seconds a fetched model list is used
    retry_interval = 60     # seconds after a failed fetch before the next try
    margin = 256            # tokens kept free when the context length sets the budget
    bytes_per_token = 4.0   # the prompt estimate: UTF-8 bytes per token
    set_default = false     # true: a request with no max_tokens gets the whole budget

Each request's ``max_tokens`` (and ``max_completion_tokens``) is lowered to
the smallest of the model's ``max_completion_tokens`` and its context length
minus the estimated prompt, from the provider's own ``list_models``
(:mod:`.budget` says how the prompt is estimated). A model the list does not
know, or a list that cannot be fetched, leaves the request as it was.

The pieces work alone too::

    from llmrelay.plugins.tokens import ModelLimits, clamp_request, completion_budget
    budget = completion_budget(ModelLimits(128_000, 16_384), request, margin=256, bytes_per_token=4)
    request, changes = clamp_request(request, budget)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmrelay.core.lazy import lazy_exports
from llmrelay.core.pipeline import LayerContext, Operation

from .settings import TokenSettings

# The public names, each with the module it is imported from on first use
# (PEP 562), as in llmrelay.plugins.metrics: the entry point imports this
# package, and only a provider built with the plugin on needs the layer.
_EXPORTS: dict[str, str] = {
    "TokenSettings": "settings",
    "Budget": "budget",
    "ClampReport": "budget",
    "ModelLimits": "budget",
    "TokenClamp": "budget",
    "clamp_request": "budget",
    "completion_budget": "budget",
    "estimate_prompt_tokens": "budget",
    "ModelCatalog": "catalog",
    "META_FIELD": "layer",
    "TokensLayer": "layer",
}

__all__ = [*_EXPORTS, "build_layer"]


__getattr__ = lazy_exports(__name__, _EXPORTS, globals())


def build_layer(context: LayerContext) -> TokensLayer | None:
    """The tokens layer for one provider; none for a provider with no model list to clamp to."""
    if Operation.LIST_MODELS not in context.provider.capabilities:
        return None
    from .layer import TokensLayer

    return TokensLayer(context.provider_name, context.settings_as(TokenSettings))


if TYPE_CHECKING:  # pragma: no cover - the names of _EXPORTS, for type checkers and IDEs
    from .budget import Budget as Budget
    from .budget import ClampReport as ClampReport
    from .budget import ModelLimits as ModelLimits
    from .budget import TokenClamp as TokenClamp
    from .budget import clamp_request as clamp_request
    from .budget import completion_budget as completion_budget
    from .budget import estimate_prompt_tokens as estimate_prompt_tokens
    from .catalog import ModelCatalog as ModelCatalog
    from .layer import META_FIELD as META_FIELD
    from .layer import TokensLayer as TokensLayer
