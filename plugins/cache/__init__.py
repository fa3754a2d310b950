"""The cache plugin: an in-process L1 and a shared L2 (memory or Redis) around provider calls.

Registered under the ``llmrelay`` entry-point group as ``cache`` (see :mod:`.hooks`); its layer
sits at :attr:`~llmrelay.core.pipeline.Position.CACHE`, inside metrics (which
counts its hits) and outside the circuit breaker (so an open breaker can be
answered from stale data). Configure it in ``[plugins.cache]`` (see
:mod:`.settings`); per call, ``CallOptions(cache=True)`` opts a chat call in
and ``CallOptions(cache=False)`` bypasses the cache.

Importing this module is cheap: the layer's modules load when the first
provider is built, and ``redis`` only when ``backend = "redis"``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmrelay.core.pipeline import LayerContext

from .settings import CacheSettings

if TYPE_CHECKING:
    from .backends import L2Backend
    from .layer import CacheLayer

__all__ = ["CacheSettings", "build_layer", "make_backend"]


def make_backend(settings: CacheSettings) -> tuple[L2Backend | None, bool]:
    """The configured L2 backend, and whether the layer owns it (closes it on close)."""
    if settings.backend == "none":
        return None, False
    if settings.backend == "redis":
        from .redis_backend import RedisBackend

        return RedisBackend(settings.redis_url.get_secret_value(), timeout=settings.redis_timeout), True
    from .backends import shared_memory_backend

    return shared_memory_backend(settings.namespace, settings.memory_max_entries), False


def build_layer(context: LayerContext) -> CacheLayer:
    """The cache layer for one provider (the plugin's layer factory)."""
    from .keys import KeyBuilder
    from .layer import CacheLayer

    settings = context.settings_as(CacheSettings)
    provider = context.provider
    keys = KeyBuilder(
        namespace=settings.namespace,
        provider=provider.name,
        base_url=context.base_url,
        api_key=provider.settings.key(),
        salt=settings.key_salt.get_secret_value() if settings.key_salt is not None else None,
    )
    backend, owned = make_backend(settings)
    return CacheLayer(settings, keys=keys, provider_name=context.provider_name, backend=backend, owns_backend=owned)
