"""The gateway: ``llmrelay serve`` speaks OpenAI's and Anthropic's APIs over every configured provider.

:func:`build_app` makes the WSGI application from a config (a path, a dict or
a :class:`~llmrelay.core.config.RelayConfig`); :func:`serve` runs it on
gunicorn (``pip install -e ".[gateway]"``). See the README's gateway section.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..config import RelayConfig
    from .app import GatewayApp

__all__ = ["build_app"]


def build_app(
    config: RelayConfig | Mapping[str, Any] | str | os.PathLike[str] | None = None, **overrides: Any
) -> GatewayApp:
    """The gateway's WSGI app for ``config`` (``overrides`` replace ``[gateway]`` settings)."""
    from ..config import CONFIG_ENV, RelayConfig, load_config
    from .app import GatewayApp
    from .backend import Backend
    from .settings import gateway_settings

    if config is None:
        path = os.environ.get(CONFIG_ENV)
        relay = load_config(path) if path else RelayConfig(source="defaults")
    elif isinstance(config, RelayConfig):
        relay = config
    elif isinstance(config, (str, os.PathLike)):
        relay = load_config(config)
    else:
        relay = RelayConfig.from_dict(config)
    settings = gateway_settings(relay, **overrides)
    return GatewayApp(Backend.build(relay, settings), settings)
