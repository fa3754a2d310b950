"""The cache plugin's entry point: its hook alone (docs/ARCHITECTURE.md, import cost)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llmrelay.core.hookspecs import hookimpl
from llmrelay.core.pipeline import LayerSpec, Position

from . import build_layer
from .settings import CacheSettings


@hookimpl
def llmrelay_register_layers(register: Callable[[LayerSpec], Any]) -> None:
    register(
        LayerSpec(
            name="cache",
            position=Position.CACHE,
            factory=build_layer,
            settings_model=CacheSettings,
            description="L1 in-process + L2 (memory or Redis) cache with stale-while-revalidate and stale-if-error",
        )
    )
