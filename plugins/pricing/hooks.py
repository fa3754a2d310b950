"""What the ``pricing`` entry point registers with pluggy: the layer hook and nothing else."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llmrelay.core.hookspecs import hookimpl
from llmrelay.core.pipeline import LayerSpec

from . import build_layer
from .settings import PricingSettings

#: Outside metrics (100): metrics counts what the service charged, callers see the markup.
POSITION = 50


@hookimpl
def llmrelay_register_layers(register: Callable[[LayerSpec], Any]) -> None:
    register(
        LayerSpec(
            name="pricing",
            position=POSITION,
            factory=build_layer,
            settings_model=PricingSettings,
            description="pricing: one markup on every price and cost shown; the shipped model list as a last resort",
        )
    )
