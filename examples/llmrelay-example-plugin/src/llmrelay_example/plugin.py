"""The module the ``llmrelay`` entry point names: hook implementations only.

Keep it light: llmrelay imports it whenever it loads plugins, so heavy
imports belong in the modules it registers, not here.
"""

from __future__ import annotations

from collections.abc import Callable

from llmrelay.core import LayerSpec, Position, Provider, hookimpl

from .call_log import CallLogSettings, build_call_log
from .echo import EchoProvider


@hookimpl
def llmrelay_register_providers(register: Callable[[type[Provider]], None]) -> None:
    register(EchoProvider)  # create_provider("echo"), or [providers.x] type = "echo"


@hookimpl
def llmrelay_register_layers(register: Callable[[LayerSpec], None]) -> None:
    register(
        LayerSpec(
            name="call_log",  # the [plugins.call_log] section of the config
            position=Position.OUTERMOST + 50,  # outside metrics: it sees every call, cache hits included
            factory=build_call_log,
            settings_model=CallLogSettings,
            enabled_by_default=False,  # opt in: [plugins.call_log] enabled = true
            description="logs one line per provider call: operation, provider, model, outcome, seconds",
        )
    )
