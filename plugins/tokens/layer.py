"""The tokens layer: a chat request never asks its model for more tokens than the model allows.

For ``execute`` and ``stream_execute``, when the request sets a cap on the
reply (``max_tokens``, ``max_completion_tokens``, either in ``extra_body``)
or ``set_default`` is on, the layer looks the model up in the provider's
model list (:mod:`.catalog`), works out the budget (:mod:`.budget`) and
sends a copy of the request with every cap above it lowered to it. What it
did is on the result as ``meta.token_clamp`` (a :class:`ClampReport`) and
in one DEBUG log line (model, field, numbers: nothing from the prompt).

It passes the request through unchanged when the request has no model, the
model is not in the list, the list gives no limit, or the list cannot be
fetched. Every other operation passes straight through.

It sits at position 150 (``hooks.POSITION``), between metrics (100) and the cache (200): the
cache keys the request that is really sent (two requests clamped to the same
budget share an entry), and the layer's own ``list_models`` calls go through
the cache and the breaker but are not counted by metrics as the caller's.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Final, TypeVar

from llmrelay.core.models import ResponseMeta
from llmrelay.core.pipeline import Call, Handler, Layer, Operation

from .budget import ClampReport, clamp_request, completion_budget, has_token_fields
from .catalog import ModelCatalog
from .settings import TokenSettings

if TYPE_CHECKING:
    from llmrelay.core.catalog import ModelList
    from llmrelay.core.models import ChatRequest

__all__ = ["META_FIELD", "TokensLayer"]

log = logging.getLogger("llmrelay.plugins.tokens")

R = TypeVar("R")

#: The name of the extra field on ``ResponseMeta`` that holds the :class:`ClampReport`.
META_FIELD: Final = "token_clamp"

_CHAT = frozenset({Operation.EXECUTE, Operation.STREAM})


class TokensLayer(Layer):
    name = "tokens"

    def __init__(self, provider: str, settings: TokenSettings) -> None:
        self.provider = provider
        self.settings = settings
        self.catalog = ModelCatalog(provider, ttl=settings.catalog_ttl, retry_interval=settings.retry_interval)

    def handle(self, call: Call[R], proceed: Handler) -> R:
        if call.operation not in _CHAT:
            return proceed(call)
        report = self._clamp(call, proceed)
        result = proceed(call)
        if report is not None:
            # Every result here has its own meta: the provider's fresh one, or
            # the copy the cache hands each caller (a stream's too).
            meta = getattr(result, "meta", None)
            if isinstance(meta, ResponseMeta):
                setattr(meta, META_FIELD, report)
        return result

    def _clamp(self, call: Call[Any], proceed: Handler) -> ClampReport | None:
        """Put the clamped request on ``call``; what changed, or ``None`` when nothing did."""
        request: ChatRequest = call.request
        model = request.model
        settings = self.settings
        if model is None or not (settings.set_default or has_token_fields(request)):
            return None  # nothing to clamp: no need for the model list either

        def fetch() -> ModelList:
            # Through the layers beneath this one (cache, breaker), as the caller's list_models would go.
            listing: Call[ModelList] = Call(Operation.LIST_MODELS, call.provider)
            return proceed(listing)

        limits = self.catalog.limits(model, fetch)
        if limits is None:
            log.debug(
                "%s: tokens: no limits known for %r (not in the model list, or no list); the request passes through",
                self.provider,
                model,
            )
            return None
        budget = completion_budget(limits, request, margin=settings.margin, bytes_per_token=settings.bytes_per_token)
        if budget is None:
            return None
        clamped, changes = clamp_request(request, budget, set_default=settings.set_default)
        if not changes:
            return None
        call.request = clamped
        if log.isEnabledFor(logging.DEBUG):
            told = ", ".join(f"{c.field} {c.requested} -> {c.sent}" for c in changes)
            log.debug("%s: tokens: %s for %r (%s limit %d)", self.provider, told, model, budget.basis, budget.tokens)
        return ClampReport(model, budget.tokens, budget.basis, changes)

    def __repr__(self) -> str:
        return f"<TokensLayer {self.provider!r} {self.catalog!r}>"
