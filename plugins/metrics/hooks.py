"""Hooks of the metrics plugin (its layer and its CLI command), registered without the package's exports."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llmrelay.core.hookspecs import hookimpl
from llmrelay.core.pipeline import LayerSpec, Position

from . import build_layer
from .settings import MetricsSettings


@hookimpl
def llmrelay_register_layers(register: Callable[[LayerSpec], Any]) -> None:
    register(
        LayerSpec(
            name="metrics",
            position=Position.METRICS,
            factory=build_layer,
            settings_model=MetricsSettings,
            description="metrics: latency percentiles, errors, tokens, cost, cache and breaker counts; A-F grade",
        )
    )


@hookimpl
def llmrelay_register_commands(register: Callable[..., None]) -> None:
    from .cli import register_command

    register_command(register)
