"""What every ``llmrelay`` command shares: the :class:`CommandContext` it runs with, the exit codes.

Both the command line (:mod:`.main`) and the built-in commands
(:mod:`.commands`) import this module; it imports neither.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

from ..errors import ConfigurationError

if TYPE_CHECKING:
    from ..config import RelayConfig
    from ..plugins import PluginRegistry
    from ..provider import CallOptions, Provider

__all__ = [
    "DEFAULT_PROVIDER",
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "REPLAY_PLACEHOLDER_KEY",
    "CommandContext",
    "Run",
    "UsageError",
]

EXIT_OK = 0
EXIT_FAILURE = 1  # the service failed, or a request was not in the cassette
EXIT_USAGE = 2  # bad arguments, bad config, unknown provider, missing key or file
EXIT_INTERRUPTED = 130

DEFAULT_PROVIDER = "openrouter"
# Sent instead of a key when replaying with none configured. Replay never
# reaches the network, and the Authorization header is not part of matching.
REPLAY_PLACEHOLDER_KEY = "llmrelay-replay-placeholder"

log = logging.getLogger("llmrelay.cli")


class UsageError(Exception):
    """A mistake in the command line itself (exit code 2)."""


class CommandContext:
    """What a command's ``run(args, context)`` receives.

    :meth:`provider` builds a provider the way the global options say
    (``--config``, ``--provider``, and under ``--cassette`` a placeholder key
    when none is set); the cassette itself is active for the whole command.
    Providers built here are closed when the command returns. Write output
    to :attr:`stdout` and notes to :attr:`stderr`.
    """

    def __init__(self, args: argparse.Namespace, registry: PluginRegistry, secrets: set[str]) -> None:
        self.args = args
        self.registry = registry
        self.secrets = secrets
        self.config_path: str | None = args.config
        self.provider_option: str | None = args.provider
        self.cassette: str | None = args.cassette
        self.record: str | None = args.record
        self.verbose: bool = args.verbose
        self.stdout: TextIO = sys.stdout
        self.stderr: TextIO = sys.stderr
        self._config: RelayConfig | None = None
        self._built: list[Provider] = []

    @property
    def replaying(self) -> bool:
        return self.cassette is not None

    @property
    def config(self) -> RelayConfig:
        """The config from ``--config``, else ``$LLMRELAY_CONFIG``, else built-in defaults."""
        if self._config is None:
            from ..config import CONFIG_ENV, RelayConfig, load_config

            path = self.config_path or os.environ.get(CONFIG_ENV)
            self._config = load_config(path) if path else RelayConfig(source="defaults")
            self._one_shot(self._config)
        return self._config

    def _one_shot(self, config: RelayConfig) -> None:
        # A CLI process runs one command and exits: a layer's warm-up (the
        # cache loads list_models on a background thread at start) would only
        # add a request racing the command's own, and under --cassette or
        # --record one the cassette does not hold or should not. A config
        # that sets warm_up explicitly keeps it.
        for spec in self.registry.layer_specs():
            model = spec.settings_model
            if model is not None and "warm_up" in model.model_fields:
                section = config.plugins.setdefault(spec.name, {})
                section.setdefault("warm_up", [])

    def provider_name(self) -> str:
        """``--provider``, else the config's ``default_provider``, else ``openrouter``."""
        chosen = self.provider_option or self.config.default_provider
        if chosen:
            return chosen
        installed = self.registry.providers()
        if DEFAULT_PROVIDER in installed:
            return DEFAULT_PROVIDER
        raise ConfigurationError(
            "no provider chosen: pass --provider NAME or set default_provider in the config "
            f"(installed: {', '.join(sorted(installed)) or 'none'})"
        )

    def provider(self, name: str | None = None, **settings: Any) -> Provider:
        """Build the named (or chosen) provider with the installed plugins' layers."""
        from ..config import create_provider

        instance = name or self.provider_name()
        section = self.config.provider_section(instance)
        type_name = section.get("type", instance)
        cls = self.registry.provider_class(type_name if isinstance(type_name, str) else instance)
        if self.replaying and cls.requires_api_key and not self._key_configured(cls, section, settings):
            settings["api_key"] = REPLAY_PLACEHOLDER_KEY
            self.stderr.write(f"llmrelay: note: no API key set; replaying {self.cassette} with a placeholder key\n")
        provider: Provider = create_provider(instance, config=self.config, registry=self.registry, **settings)
        key = provider.settings.key() if hasattr(provider.settings, "key") else None
        if key:
            self.secrets.add(key)
        self._built.append(provider)
        return provider

    def call_options(self) -> CallOptions | None:
        """Options for the command's provider calls.

        Under ``--cassette`` or ``--record`` the cache is bypassed
        (``CallOptions(cache=False)``): the command must replay or record
        the service's traffic, not an answer cached earlier (a Redis cache
        outlives the process).
        """
        from ..provider import CallOptions

        return CallOptions(cache=False) if (self.cassette or self.record) else None

    @staticmethod
    def _key_configured(cls: type[Provider], section: dict[str, Any], settings: dict[str, Any]) -> bool:
        if settings.get("api_key") or section.get("api_key"):
            return True
        return bool(cls.env_prefix and os.environ.get(f"{cls.env_prefix}API_KEY"))

    def close(self) -> None:
        built, self._built = self._built, []
        for provider in built:
            try:
                provider.close()
            except Exception as exc:  # closing must not hide the command's own result
                log.debug("closing %r failed: %s", provider, exc)


#: A command: ``run(args, context)`` returns the exit code.
Run = Callable[[argparse.Namespace, CommandContext], int]
