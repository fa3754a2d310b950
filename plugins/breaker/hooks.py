"""The breaker plugin's hooks: what its entry point registers with pluggy.

pluggy inspects every name of a plugin it registers (with
``inspect.getattr_static``), so the entry point names this module, with a
handful of names, rather than the package and everything it exports: that
took most of the time of loading the built-in plugins.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llmrelay.core.hookspecs import hookimpl
from llmrelay.core.pipeline import LayerSpec, Position

from . import build_layer
from .settings import BreakerSettings


@hookimpl
def llmrelay_register_layers(register: Callable[[LayerSpec], Any]) -> None:
    register(
        LayerSpec(
            name="breaker",
            position=Position.BREAKER,
            factory=build_layer,
            settings_model=BreakerSettings,
            description="circuit breaker: fails fast with CircuitOpenError while the upstream is unavailable",
        )
    )
