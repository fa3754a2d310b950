"""The hooks a llmrelay plugin can implement.

A plugin is a module (or object) registered under the ``llmrelay``
entry-point group::

    # pyproject.toml of your package
    [project.entry-points.llmrelay]
    myprovider = "my_package.llmrelay_plugin"

    # my_package/llmrelay_plugin.py
    from llmrelay.core import hookimpl

    @hookimpl
    def llmrelay_register_providers(register):
        register(MyProvider)

llmrelay's own providers and plugins register through these same hooks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from .pipeline import LayerSpec

__all__ = [
    "PROJECT_NAME",
    "hookimpl",
    "hookspec",
    "llmrelay_register_commands",
    "llmrelay_register_layers",
    "llmrelay_register_providers",
]

PROJECT_NAME = "llmrelay"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def llmrelay_register_providers(register: Callable[..., None]) -> None:
    """Register provider classes: ``register(ProviderClass)`` for each, or
    ``register("package.module:ProviderClass", name="...")`` to import the
    class only when a program first builds that provider.

    The class's ``name`` is the name users pass to ``create_provider`` and
    write in ``[providers.<name>]``; a class registered by path must be
    registered under that same name. Registering by path keeps a provider
    that imports a heavy SDK from slowing down every program that has the
    plugin installed but never uses it.
    """


@hookspec
def llmrelay_register_layers(register: Callable[[LayerSpec], None]) -> None:
    """Register layers to wrap around provider calls: ``register(LayerSpec(...))``.

    The spec's ``position`` says where the layer sits (see
    :class:`~llmrelay.core.pipeline.Position`), its ``settings_model``
    validates the ``[plugins.<name>]`` section of the config.
    """


@hookspec
def llmrelay_register_commands(register: Callable[..., None]) -> None:
    """Add subcommands to the ``llmrelay`` CLI.

    Call ``register(name, help, add_arguments, run)`` where
    ``add_arguments(parser)`` adds argparse arguments and
    ``run(args, context) -> int`` runs the command; ``context`` builds
    providers the way the CLI's global options (``--config``,
    ``--cassette``, ``--record``) say.
    """
