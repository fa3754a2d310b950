"""Circuit breaker plugin: fail fast, without network, while an upstream is down.

On by default for every provider with the original reports' defaults
(5 consecutive failures open it, probes after 60 s); configure or switch
it off in the config file::

    [plugins.breaker]
    enabled = true                 # false: no breaker layer at all
    failure_threshold = 5
    reset_timeout = 60
    failure_rate_threshold = 0.5   # over the last window_size calls, once minimum_calls were made
    half_open_probes = 1
    count_rate_limits = true       # 429 counts as a failure
    per_model = false
    redis_url = "redis://127.0.0.1:6379/0"   # optional: share state across a fleet

Standalone use, with no provider pipeline at all::

    from llmrelay.plugins.breaker import CircuitBreaker
    breaker = CircuitBreaker("my-upstream")
    breaker.call(fetch, url)
"""

from __future__ import annotations

from llmrelay.core.pipeline import LayerContext

from .board import BreakerBoard, listen, unlisten
from .circuit import BreakerListener, CircuitBreaker, CircuitState, Outcome, Permit, SharedState, classify
from .layer import BreakerLayer
from .settings import BreakerSettings

__all__ = [
    "BreakerBoard",
    "BreakerLayer",
    "BreakerListener",
    "BreakerSettings",
    "CircuitBreaker",
    "CircuitState",
    "Outcome",
    "Permit",
    "SharedState",
    "build_layer",
    "classify",
    "listen",
    "unlisten",
]


def build_layer(context: LayerContext) -> BreakerLayer:
    """The breaker layer for one provider, from its ``[plugins.breaker]`` settings."""
    settings = context.settings_as(BreakerSettings)
    shared = None
    if settings.redis_url is not None:
        from .shared import RedisSharedState

        shared = RedisSharedState(
            settings.redis_url, prefix=settings.redis_prefix, retry_interval=settings.redis_retry_interval
        )
    return BreakerLayer(BreakerBoard(context.provider_name, settings, shared=shared))
