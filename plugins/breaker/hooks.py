"""What the ``breaker`` entry point registers with pluggy: the layer hook and nothing else."""

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
