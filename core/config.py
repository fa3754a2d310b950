"""Building providers from keyword arguments, a dict, a TOML file or the environment.

The config file::

    default_provider = "openrouter"

    [providers.openrouter]
    api_key = "${OPENROUTER_API_KEY}"        # ${VAR} and ${VAR:-default} are expanded
    default_model = "openai/gpt-4o-mini"
    timeout = { connect = 5, read = 60 }

    [providers.local]                        # a second instance of one provider type
    type = "openai"
    base_url = "http://127.0.0.1:8000/v1"

    [plugins.cache]                          # each plugin's section; enabled = false turns it off
    enabled = true

Where a field is set in more than one place, the first of these wins:
keyword arguments, the config (dict or file), the environment
(``{ENV_PREFIX}{FIELD}``, e.g. ``OPENROUTER_API_KEY``), the default.
``LLMRELAY_CONFIG`` names a config file to read when none is passed.

Every mistake is a :class:`~llmrelay.core.errors.ConfigurationError` with one
readable message naming the file, the field, what was given and what was
expected. Secret values are never echoed.
"""

from __future__ import annotations

import inspect
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from .errors import ConfigurationError
from .provider import Provider
from .settings import validate_settings

if TYPE_CHECKING:
    from .http.transport import Transport
    from .pipeline import Layer

__all__ = [
    "CONFIG_ENV",
    "RelayConfig",
    "create_provider",
    "load_config",
    "settings_from_env",
    "validate_settings",
]

CONFIG_ENV = "LLMRELAY_CONFIG"

# A pattern source, compiled by re (and cached there) on first use: most
# programs never interpolate a file.
_VAR = r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}"


class RelayConfig:
    """A parsed config: provider sections and plugin sections."""

    def __init__(
        self,
        providers: Mapping[str, Mapping[str, Any]] | None = None,
        plugins: Mapping[str, Mapping[str, Any]] | None = None,
        default_provider: str | None = None,
        source: str = "config",
        gateway: Mapping[str, Any] | None = None,
    ) -> None:
        self.providers = {k: dict(v) for k, v in (providers or {}).items()}
        self.plugins = {k: dict(v) for k, v in (plugins or {}).items()}
        self.default_provider = default_provider
        self.source = source
        # The [gateway] section of `llmrelay serve` (validated by llmrelay.core.gateway.settings).
        self.gateway = dict(gateway or {})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "config dict") -> RelayConfig:
        if not isinstance(data, Mapping):
            raise ConfigurationError(f"{source}: expected a table of settings, got {type(data).__name__}")
        unknown = set(data) - {"providers", "plugins", "default_provider", "gateway"}
        if unknown:
            raise ConfigurationError(
                f"{source}: unknown top-level key(s) {sorted(unknown)}; "
                "expected [providers.<name>], [plugins.<name>] and default_provider"
            )
        gateway = data.get("gateway", {})
        if not isinstance(gateway, Mapping):
            raise ConfigurationError(f"{source}: [gateway] must be a table of settings")
        for section in ("providers", "plugins"):
            value = data.get(section, {})
            if not isinstance(value, Mapping) or not all(isinstance(v, Mapping) for v in value.values()):
                raise ConfigurationError(f"{source}: [{section}] must hold one table per name, like [{section}.<name>]")
        default = data.get("default_provider")
        if default is not None and not isinstance(default, str):
            raise ConfigurationError(f"{source}: default_provider must be a string, got {type(default).__name__}")
        return cls(data.get("providers"), data.get("plugins"), default, source, gateway)

    def provider_section(self, name: str) -> dict[str, Any]:
        return dict(self.providers.get(name, {}))

    def plugin_section(self, name: str) -> dict[str, Any]:
        return dict(self.plugins.get(name, {}))

    def __repr__(self) -> str:
        return f"<RelayConfig from {self.source}: providers={sorted(self.providers)} plugins={sorted(self.plugins)}>"


# --------------------------------------------------------------------------- files


def _interpolate(value: Any, path: str, source: str) -> Any:
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            found = os.environ.get(name)
            if found is None or found == "":
                if default is not None:
                    return default
                raise ConfigurationError(
                    f"{source}: {path} refers to ${{{name}}}, but the environment variable {name} "
                    f"is not set (set it, or write ${{{name}:-default}})"
                )
            return found

        return re.sub(_VAR, substitute, value)
    if isinstance(value, dict):
        return {k: _interpolate(v, f"{path}.{k}" if path else k, source) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, f"{path}[{i}]", source) for i, v in enumerate(value)]
    return value


def load_config(path: str | os.PathLike[str]) -> RelayConfig:
    """Read a TOML config file, expanding ``${VAR}`` from the environment."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.10 only
        import tomli as tomllib

    file = Path(path)
    source = str(file)
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        raise ConfigurationError(f"config file {source} does not exist") from None
    except OSError as exc:
        raise ConfigurationError(f"config file {source} cannot be read: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigurationError(f"config file {source} is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"config file {source} is not valid TOML: {exc}") from None
    return RelayConfig.from_dict(_interpolate(data, "", source), source)


def _coerce_config(config: RelayConfig | Mapping[str, Any] | str | os.PathLike[str] | None) -> RelayConfig:
    if config is None:
        env_path = os.environ.get(CONFIG_ENV)
        return load_config(env_path) if env_path else RelayConfig(source="defaults")
    if isinstance(config, RelayConfig):
        return config
    if isinstance(config, (str, os.PathLike)):
        return load_config(config)
    return RelayConfig.from_dict(config)


# --------------------------------------------------------------------------- the environment


def settings_from_env(model: type[BaseModel], prefix: str) -> dict[str, Any]:
    """Top-level fields of ``model`` set as ``{prefix}{FIELD}`` in the environment."""
    if not prefix:
        return {}
    found: dict[str, Any] = {}
    for field in model.model_fields:
        value = os.environ.get(f"{prefix}{field.upper()}")
        if value is not None and value != "":
            found[field] = value
    return found


# --------------------------------------------------------------------------- building providers


def _deep_merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def _check_plugin_sections(config: RelayConfig, registry: Any) -> None:
    """A ``[plugins.<name>]`` section must name an installed plugin: a typo is not silently ignored."""
    if not config.plugins:
        return
    known = {spec.name for spec in registry.layer_specs()}
    # Plugins that failed to load or were disabled keep their sections
    # quietly: the failure was already reported, the disabling was chosen.
    known |= {info.name for info in getattr(registry, "loaded", ())}
    known |= {failed.name for failed in getattr(registry, "failed", ())}
    known |= set(getattr(registry, "disabled", ()))
    for name in config.plugins:
        if name not in known:
            import difflib

            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f" Did you mean [plugins.{close[0]}]?" if close else ""
            listed = ", ".join(sorted(known)) or "none"
            raise ConfigurationError(
                f"{config.source}: [plugins.{name}] does not match any installed plugin.{hint} "
                f"Installed plugins: {listed}."
            )


def _construct(cls: Any, settings: Any, instance: str, transport: Transport | None) -> Any:
    """``cls(settings)``, given ``transport=`` when there is one (a class must name it to take it)."""
    if transport is None:
        return cls(settings)
    if "transport" not in inspect.signature(cls).parameters:
        raise ConfigurationError(
            f"provider {instance!r} ({cls.__module__}.{cls.__qualname__}) does not take a transport: "
            "only HTTP providers (those whose constructor has a transport argument) do"
        )
    return cls(settings, transport=transport)


def create_provider(
    name: str | None = None,
    *,
    config: RelayConfig | Mapping[str, Any] | str | os.PathLike[str] | None = None,
    plugins: bool | list[str] = True,
    registry: Any = None,
    transport: Transport | None = None,
    **settings: Any,
) -> Provider:
    """Build a provider by name, with the layers of the installed plugins around it.

    ``create_provider("openrouter")`` reads ``OPENROUTER_API_KEY`` from the
    environment. ``config`` is a dict, a TOML path or a :class:`RelayConfig`;
    ``plugins=False`` builds the bare provider, a list keeps only the named
    plugins' layers. Keyword arguments override every other source.

    ``transport`` replaces the provider's pooled HTTP transport, the seam for
    tests and for users who answer calls themselves::

        from llmrelay.core.http.transport import HTTPResponse, MockTransport

        mock = MockTransport(lambda request: HTTPResponse(200, {"content-type": "application/json"}, b"{...}"))
        provider = create_provider("openrouter", api_key="sk-or-v1-test", transport=mock)
        # mock.requests holds every HTTPRequest the provider sent

    The provider owns it from then on (``provider.close()`` closes it). Only a
    provider class whose constructor takes a ``transport`` argument (every
    HTTP provider) accepts one; any other raises :class:`ConfigurationError`.
    """
    from .pipeline import LayeredProvider
    from .plugins import get_registry

    registry = registry or get_registry()
    relay_config = _coerce_config(config)
    instance = name or relay_config.default_provider
    if instance is None:
        raise ConfigurationError(
            f"{relay_config.source}: no provider named; pass one (create_provider('openrouter')) "
            "or set default_provider in the config"
        )
    section = relay_config.provider_section(instance)
    type_name = section.pop("type", instance)
    if not isinstance(type_name, str):
        raise ConfigurationError(f"{relay_config.source}: providers.{instance}.type must be a provider name")
    cls = registry.provider_class(type_name)

    _check_plugin_sections(relay_config, registry)
    model = _provider_settings(cls, instance, relay_config.source, section, settings)
    provider: Provider = _construct(cls, model, instance, transport)
    provider.instance_name = instance
    if plugins is False:
        return provider
    try:
        layers = _build_layers(provider, instance, relay_config, registry, plugins)
    except BaseException:
        provider.close()
        raise
    return LayeredProvider(provider, layers)


def _provider_settings(
    cls: Any, instance: str, config_source: str, section: dict[str, Any], settings: dict[str, Any]
) -> Any:
    """The provider's validated settings: environment < config section < keyword arguments."""
    from_env = settings_from_env(cls.settings_model, cls.env_prefix)
    origins = {
        field: f"{cls.env_prefix}{field.upper()}"
        for field in from_env
        if field not in section and field not in settings
    }
    data = _deep_merge(_deep_merge(from_env, section), settings)
    source = config_source if section else f"settings for provider {instance!r}"
    model = validate_settings(cls.settings_model, data, source=source, prefix=f"providers.{instance}", origins=origins)
    if cls.requires_api_key and getattr(model, "api_key", None) is None:
        env_hint = f"set {cls.env_prefix}API_KEY, " if cls.env_prefix else ""
        raise ConfigurationError(
            f"{source}: providers.{instance}.api_key: required, but not set "
            f"({env_hint}pass api_key=..., or add api_key to [providers.{instance}])"
        )
    return model


def _build_layers(
    provider: Provider, instance: str, config: RelayConfig, registry: Any, plugins: bool | list[str]
) -> list[Layer]:
    """Each enabled plugin's layer for ``provider``; the ones built are closed if a later one fails."""
    from .pipeline import LayerContext

    chosen = plugins if isinstance(plugins, list) else None
    layers: list[Layer] = []
    try:
        for spec in registry.layer_specs():
            if chosen is not None and spec.name not in chosen:
                continue
            plugin_section = config.plugin_section(spec.name)
            enabled = plugin_section.pop("enabled", spec.enabled_by_default)
            if not isinstance(enabled, bool):
                raise ConfigurationError(
                    f"{config.source}: plugins.{spec.name}.enabled must be true or false, got {type(enabled).__name__}"
                )
            if not enabled and chosen is None:
                continue
            plugin_settings: Any = plugin_section
            if spec.settings_model is not None:
                plugin_settings = validate_settings(
                    spec.settings_model, plugin_section, source=config.source, prefix=f"plugins.{spec.name}"
                )
            layer = spec.factory(LayerContext(provider, plugin_settings, instance, provider.base_url))
            if layer is not None:
                layers.append(layer)
    except BaseException:
        for layer in layers:
            layer.close()
        raise
    return layers
