"""The ``llmrelay serve`` subcommand (kept cheap to import: the CLI imports it on every run)."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from ..errors import ConfigurationError

if TYPE_CHECKING:
    from ..cli.context import CommandContext

__all__ = ["add_serve_arguments", "cmd_serve"]


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    # Also after the command (`llmrelay serve --config FILE`); SUPPRESS keeps a global --config when not repeated.
    parser.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS, help="TOML config file")
    parser.add_argument("--host", help="address to listen on (default: [gateway] host, else 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (default: [gateway] port, else 8080)")
    parser.add_argument("--workers", type=int, help="worker processes (default: [gateway] workers, else 1)")


def cmd_serve(args: argparse.Namespace, context: CommandContext) -> int:
    from ..config import CONFIG_ENV, RelayConfig, load_config
    from .settings import gateway_settings

    # Not context.config: that one switches the cache's warm-up off for one-shot commands.
    path = context.config_path or os.environ.get(CONFIG_ENV)
    config = load_config(path) if path else RelayConfig(source="defaults")
    settings = gateway_settings(
        config, host=args.host, port=args.port, workers=args.workers, default_provider=context.provider_option
    )
    if not (settings.providers or config.providers or settings.default_provider or config.default_provider):
        # Nothing configured: serve the provider every other command uses (OpenRouter, from the environment).
        settings = settings.model_copy(update={"default_provider": context.provider_name()})
    try:
        from .server import serve
    except ImportError as exc:
        raise ConfigurationError(
            f"llmrelay serve needs the gateway extra ({exc.name} is not installed): pip install 'llmrelay[gateway]'"
        ) from None
    from .backend import Backend

    Backend.check(config, settings)
    context.stderr.write(f"llmrelay: gateway listening on http://{settings.host}:{settings.port}\n")
    serve(config, settings)
    return 0
