"""What the ``tokens`` entry point registers with pluggy: the layer hook and nothing else."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llmrelay.core.hookspecs import hookimpl
from llmrelay.core.pipeline import LayerSpec

from . import build_layer
from .settings import TokenSettings

# Between metrics (100) and the cache (200); layer.py says why. Written here
# as a number so loading the entry point does not import the layer.
POSITION = 150


@hookimpl
def llmrelay_register_layers(register: Callable[[LayerSpec], Any]) -> None:
    register(
        LayerSpec(
            name="tokens",
            position=POSITION,
            factory=build_layer,
            settings_model=TokenSettings,
            enabled_by_default=False,
            description="clamps max_tokens to what the model allows, from the provider's model list",
        )
    )
