"""``llmrelay config``: every provider's and plugin's effective settings, and where each value came from.

Each value is shown with its origin: ``default``, ``config PATH`` (the
file, or the config dict), ``environment VAR`` (with the unit of a legacy
variable) or ``argument``. Secrets never show: ``SecretStr`` fields, fields
named like a key, token, secret, password or salt, and the password of a
URL are masked, and every line passes through the CLI's redaction. A bad
variable or config file is the one-line error (exit 2) every command gives.

    llmrelay config                        every configured instance, then every installed provider and plugin
    llmrelay --provider local config       one instance
    llmrelay config --json                 {"config", "providers": [...], "plugins": [...], "skipped": [...]}
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, TextIO

from ..errors import PluginLoadError
from ..secrets import redact
from .context import EXIT_OK, CommandContext

if TYPE_CHECKING:
    from ..config import EffectiveSettings, RelayConfig

__all__ = ["add_config_arguments", "cmd_config"]

MASK = "**********"
# A whole word of a field's (or a header's) name: api_key, key_salt, X-Auth-Token; not default_max_tokens.
_SECRET_NAME = re.compile(r"(?i)(?:^|[_-])(?:key|secret|token|password|salt)(?:[_-]|$)")
_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@/\s]+@")


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON")


def cmd_config(args: argparse.Namespace, context: CommandContext) -> int:
    # Imported here: the CLI's start-up loads no pydantic (tests/test_cli.py).
    from ..config import CONFIG_ENV, RelayConfig, effective_plugin_settings, load_config

    # The config as written: not context.config, which switches the cache's
    # warm-up off for one-shot commands and would show that as the file's.
    path = context.config_path or os.environ.get(CONFIG_ENV)
    config = load_config(path) if path else RelayConfig(source="defaults")
    providers, skipped = _providers(context, config)
    plugins = effective_plugin_settings(config=config, registry=context.registry)
    if args.json:
        _write_json(context, config, providers, plugins, skipped)
    else:
        _write_text(context, config, providers, plugins, skipped)
    return EXIT_OK


def _providers(context: CommandContext, config: RelayConfig) -> tuple[list[EffectiveSettings], dict[str, str]]:
    """``--provider``'s instance, else every configured instance and every installed provider not configured."""
    if context.provider_option:
        names = [context.provider_option]
    else:
        names = [*config.providers, *sorted(set(context.registry.providers()) - set(config.providers))]
    from ..config import effective_provider_settings

    found: list[EffectiveSettings] = []
    skipped: dict[str, str] = {}
    for name in names:
        try:
            found.append(effective_provider_settings(name, config=config, registry=context.registry))
        except PluginLoadError as exc:
            if name in config.providers or context.provider_option:
                raise
            skipped[name] = str(exc)  # an installed provider that cannot load; `llmrelay providers` says why
    return found, skipped


# --------------------------------------------------------------------------- values, masked


def _leaves(data: Mapping[str, Any], path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    for key, value in data.items():
        here = (*path, str(key))
        if isinstance(value, Mapping) and value:
            yield from _leaves(value, here)
        else:
            yield here, value


def _rows(effective: EffectiveSettings, secrets: set[str]) -> list[tuple[str, Any, Any]]:
    """(dotted setting, masked value, origin) for every leaf of the settings."""
    from pydantic import BaseModel

    settings = effective.settings
    data = settings.model_dump() if isinstance(settings, BaseModel) else dict(settings)
    rows: list[tuple[str, Any, Any]] = []
    if effective.kind == "plugin":
        rows.append(("enabled", effective.enabled, effective.origin(("enabled",))))
    for path, value in _leaves(data):
        rows.append((".".join(path), _masked(path, value, secrets), effective.origin(path)))
    return rows


def _masked(path: tuple[str, ...], value: Any, secrets: set[str]) -> Any:
    """The value as JSON can carry it, with every secret in it masked."""
    from pydantic import SecretStr

    # A number is a limit or a ratio, never a credential, whatever its name says (the tokens plugin's bytes_per_token).
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, SecretStr) or any(_SECRET_NAME.search(part) for part in path):
        return MASK
    if isinstance(value, str):
        return redact(_URL_PASSWORD.sub(r"\1***@", value), secrets)
    if isinstance(value, Mapping):
        return {str(k): _masked((*path, str(k)), v, secrets) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        items = [_masked(path, v, secrets) for v in value]
        try:
            return sorted(items)
        except TypeError:  # a set of mixed kinds keeps an order of its own
            return sorted(items, key=repr)
    if isinstance(value, (list, tuple)):
        return [_masked(path, v, secrets) for v in value]
    return redact(str(value), secrets)


# --------------------------------------------------------------------------- output


def _shown(value: Any) -> str:
    import json

    return value if isinstance(value, str) else json.dumps(value)


def _write_text(
    context: CommandContext,
    config: RelayConfig,
    providers: list[EffectiveSettings],
    plugins: list[EffectiveSettings],
    skipped: dict[str, str],
) -> None:
    out = context.stdout
    where = "no config file" if config.source == "defaults" else f"config {config.source}"
    out.write(f"Effective settings ({where}; precedence: argument > config > environment > default)\n")
    for provider in providers:
        kind = f"type {provider.type_name}, " if provider.type_name != provider.name else ""
        out.write(f"\nprovider {provider.name} ({kind}variables {provider.env_prefix or 'none'}...)\n")
        _table(out, _rows(provider, context.secrets), context.secrets)
    for plugin in plugins:
        out.write(f"\nplugin {plugin.name} ({'on' if plugin.enabled else 'off'}; variables {plugin.env_prefix}...)\n")
        _table(out, _rows(plugin, context.secrets), context.secrets)
    for name, error in skipped.items():
        out.write(f"\nprovider {name}: not loaded: {redact(error, context.secrets)}\n")


def _table(out: TextIO, rows: list[tuple[str, Any, Any]], secrets: set[str]) -> None:
    cells = [(name, _shown(value), str(origin)) for name, value, origin in rows]
    width_name = max((len(c[0]) for c in cells), default=0)
    width_value = min(max((len(c[1]) for c in cells), default=0), 48)
    for name, value, origin in cells:
        line = f"  {name:<{width_name}}  {value:<{width_value}}  {origin}"
        out.write(redact(line, secrets).rstrip() + "\n")


def _write_json(
    context: CommandContext,
    config: RelayConfig,
    providers: list[EffectiveSettings],
    plugins: list[EffectiveSettings],
    skipped: dict[str, str],
) -> None:
    import json

    def settings(effective: EffectiveSettings) -> dict[str, Any]:
        return {
            name: {"value": value, "origin": origin.kind, "source": origin.source}
            for name, value, origin in _rows(effective, context.secrets)
        }

    data = {
        "config": None if config.source == "defaults" else config.source,
        "providers": [{"name": p.name, "type": p.type_name, "settings": settings(p)} for p in providers],
        "plugins": [{"name": p.name, "enabled": p.enabled, "settings": settings(p)} for p in plugins],
        "skipped": [{"name": name, "error": redact(error, context.secrets)} for name, error in skipped.items()],
    }
    context.stdout.write(redact(json.dumps(data, indent=2), context.secrets) + "\n")
