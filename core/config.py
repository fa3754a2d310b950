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
keyword arguments, the config (dict or file), the environment, the default;
nested tables merge field by field, so a file's ``timeout.connect`` and the
environment's ``timeout.read`` both apply. The environment's names are
``{ENV_PREFIX}{FIELD}`` (``OPENROUTER_API_KEY``), ``{ENV_PREFIX}{FIELD}__{FIELD}``
(``OPENROUTER_TIMEOUT__READ``) and ``LLMRELAY_{PLUGIN}__{FIELD}``
(``LLMRELAY_CACHE__BACKEND``), plus the legacy names settings models declare
(:mod:`llmrelay.core.envsettings`). ``LLMRELAY_CONFIG`` names a config file
to read when none is passed. :func:`effective_provider_settings` and
:func:`effective_plugin_settings` tell where each value came from (what
``llmrelay config`` prints).

Every mistake is a :class:`~llmrelay.core.errors.ConfigurationError` with one
readable message naming the file, the field, what was given and what was
expected. Secret values are never echoed.
"""

from __future__ import annotations

import inspect
import os
import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from .envsettings import (
    DELIMITER,
    PLUGIN_ENV_PREFIX,
    EnvAlias,
    EnvReading,
    plugin_env_name,
    plugin_env_prefix,
    read_environment,
)
from .errors import ConfigurationError
from .provider import Provider
from .settings import validate_settings
from .sources import Layered, Origin

if TYPE_CHECKING:
    from .http.transport import Transport
    from .pipeline import Layer

__all__ = [
    "CONFIG_ENV",
    "EffectiveSettings",
    "Origin",
    "RelayConfig",
    "create_provider",
    "effective_plugin_settings",
    "effective_provider_settings",
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
    """What the environment sets for ``model`` under ``prefix``, nested names and aliases included.

    See :mod:`llmrelay.core.envsettings` for the names (``OPENROUTER_TIMEOUT__READ``).
    """
    if not prefix:
        return {}
    return read_environment(model, prefix, os.environ, scope=prefix.rstrip("_").lower(), aliases=_aliases(model)).data


def _aliases(model: type[BaseModel] | None) -> tuple[EnvAlias, ...]:
    aliases: tuple[EnvAlias, ...] = getattr(model, "env_aliases", ())
    return aliases


def _environment(prefixes: tuple[str, ...], models: Iterable[type[BaseModel] | None]) -> dict[str, str]:
    """The variables one build may read, in one pass over ``os.environ``.

    Names under ``prefixes`` and the legacy names ``models`` declare: every
    reader of this build sees the same environment, and each scans this
    small dict instead of all of it.
    """
    starts = tuple(prefix for prefix in prefixes if prefix)
    legacy = {alias.variable for model in models for alias in _aliases(model)}
    return {name: os.environ.get(name, "") for name in os.environ if name.startswith(starts) or name in legacy}


def _plugin_models(registry: Any) -> list[type[BaseModel] | None]:
    return [spec.settings_model for spec in registry.layer_specs()]


# --------------------------------------------------------------------------- building providers


def _known_plugins(registry: Any) -> set[str]:
    """Names a plugin section or variable may use: plugins with layers, and those that failed or were disabled."""
    known = {spec.name for spec in registry.layer_specs()}
    # Plugins that failed to load or were disabled keep their sections and
    # variables quietly: the failure was already reported, the disabling was chosen.
    known |= {failed.name for failed in getattr(registry, "failed", ())}
    known |= set(getattr(registry, "disabled", ()))
    return known


def _check_plugin_sections(config: RelayConfig, registry: Any) -> None:
    """A ``[plugins.<name>]`` section must name an installed plugin: a typo is not silently ignored."""
    if not config.plugins:
        return
    known = _known_plugins(registry) | {info.name for info in getattr(registry, "loaded", ())}
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


def _check_plugin_variables(registry: Any, environ: Mapping[str, str]) -> None:
    """``LLMRELAY_{PLUGIN}__...`` must name a plugin with settings (``LLMRELAY_CAHCE__BACKEND`` is a typo)."""
    named = {v.split(DELIMITER, 1)[0] for v in environ if v.startswith(PLUGIN_ENV_PREFIX) and DELIMITER in v}
    if not named:
        return
    known = {plugin_env_name(name): name for name in _known_plugins(registry)}
    for head in sorted(named):
        plugin = head[len(PLUGIN_ENV_PREFIX) :]
        if plugin in known:
            continue
        import difflib

        variable = next(v for v in sorted(environ) if v.startswith(head + DELIMITER))
        close = difflib.get_close_matches(plugin, sorted(known), n=1)
        hint = f" Did you mean {PLUGIN_ENV_PREFIX}{close[0]}{DELIMITER}...?" if close else ""
        if plugin.lower() in registry.providers():
            hint = (
                f" {plugin.lower()} is a provider, not a plugin: a provider's settings are read under its own "
                f"prefix ({plugin}_TIMEOUT__READ, for example)."
            )
        raise ConfigurationError(
            f"environment variable {variable}: {PLUGIN_ENV_PREFIX}{plugin}{DELIMITER}... names no plugin with "
            f"settings.{hint} Plugins: {', '.join(sorted(known.values())) or 'none'}."
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
    instance, cls, section = _provider_entry(relay_config, registry, name)
    _check_plugin_sections(relay_config, registry)
    models = [cls.settings_model, *(_plugin_models(registry) if plugins is not False else ())]
    environ = _environment((cls.env_prefix, PLUGIN_ENV_PREFIX), models)
    model, _ = _provider_settings(cls, instance, relay_config.source, section, settings, environ)
    provider: Provider = _construct(cls, model, instance, transport)
    provider.instance_name = instance
    if plugins is False:
        return provider
    try:
        layers = _build_layers(provider, instance, relay_config, registry, plugins, environ)
    except BaseException:
        provider.close()
        raise
    return LayeredProvider(provider, layers)


def _provider_entry(relay_config: RelayConfig, registry: Any, name: str | None) -> tuple[str, Any, dict[str, Any]]:
    """The instance name, its provider class and its config section (``type`` taken out)."""
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
    return instance, registry.provider_class(type_name), section


def _provider_settings(
    cls: Any,
    instance: str,
    config_source: str,
    section: dict[str, Any],
    settings: dict[str, Any],
    environ: Mapping[str, str],
    *,
    key: bool = True,
) -> tuple[Any, Layered]:
    """The provider's validated settings (environment < config section < keyword arguments) and their origins.

    ``key=False`` leaves out the check that a key is set (``llmrelay config`` shows a missing one).
    """
    scope = f"providers.{instance}"
    env = EnvReading()
    if cls.env_prefix:
        model_cls = cls.settings_model
        env = read_environment(model_cls, cls.env_prefix, environ, scope=scope, aliases=_aliases(model_cls))
    layered = Layered.merge(env, section, Origin("config", config_source), settings)
    source = config_source if section else f"settings for provider {instance!r}"
    model = validate_settings(
        cls.settings_model, layered.data, source=source, prefix=scope, origins=layered.env_origins()
    )
    if key and cls.requires_api_key and getattr(model, "api_key", None) is None:
        env_hint = f"set {cls.env_prefix}API_KEY, " if cls.env_prefix else ""
        raise ConfigurationError(
            f"{source}: providers.{instance}.api_key: required, but not set "
            f"({env_hint}pass api_key=..., or add api_key to [providers.{instance}])"
        )
    return model, layered


def _plugin_settings(spec: Any, config: RelayConfig, environ: Mapping[str, str]) -> tuple[bool, Any, Layered]:
    """One plugin's settings: ``LLMRELAY_{PLUGIN}__*`` and its aliases < its ``[plugins.<name>]`` section.

    Returns whether it is enabled, its validated settings (a dict for a
    plugin without a settings model) and their origins.
    """
    scope = f"plugins.{spec.name}"
    section = config.plugin_section(spec.name)
    model_cls = spec.settings_model
    env = read_environment(
        model_cls,
        plugin_env_prefix(spec.name),
        environ,
        scope=scope,
        switches=("enabled",),
        aliases=_aliases(model_cls),
    )
    layered = Layered.merge(env, section, Origin("config", config.source), {})
    data = dict(layered.data)
    enabled = data.pop("enabled", spec.enabled_by_default)
    if not isinstance(enabled, bool):
        raise ConfigurationError(
            f"{config.source}: plugins.{spec.name}.enabled must be true or false, got {type(enabled).__name__}"
        )
    settings: Any = data
    if model_cls is not None:
        source = config.source if section else f"settings for plugin {spec.name!r}"
        origins = {path: var for path, var in layered.env_origins().items() if path != "enabled"}
        settings = validate_settings(model_cls, data, source=source, prefix=scope, origins=origins)
    return enabled, settings, layered


def _build_layers(
    provider: Provider,
    instance: str,
    config: RelayConfig,
    registry: Any,
    plugins: bool | list[str],
    environ: Mapping[str, str],
) -> list[Layer]:
    """Each enabled plugin's layer for ``provider``; the ones built are closed if a later one fails."""
    from .pipeline import LayerContext

    _check_plugin_variables(registry, environ)
    chosen = plugins if isinstance(plugins, list) else None
    layers: list[Layer] = []
    try:
        for spec in registry.layer_specs():
            if chosen is not None and spec.name not in chosen:
                continue
            enabled, settings, _ = _plugin_settings(spec, config, environ)
            if not enabled and chosen is None:
                continue
            layer = spec.factory(LayerContext(provider, settings, instance, provider.base_url))
            if layer is not None:
                layers.append(layer)
    except BaseException:
        for layer in layers:
            layer.close()
        raise
    return layers


# --------------------------------------------------------------------------- effective settings


class EffectiveSettings:
    """A provider's or plugin's validated settings and where each value came from (``llmrelay config``).

    ``kind`` is "provider" or "plugin"; ``type_name`` the provider type an
    instance is built from; ``env_prefix`` what its variables start with;
    ``enabled`` whether a plugin's layer is built.
    """

    # A plain class: this module loads with every provider build, and making
    # a dataclass (or a NamedTuple) would cost each build for what only `llmrelay config` uses.
    __slots__ = ("enabled", "env_prefix", "kind", "layered", "name", "settings", "type_name")

    def __init__(
        self,
        kind: Literal["provider", "plugin"],
        name: str,
        settings: Any,
        layered: Layered,
        env_prefix: str = "",
        type_name: str | None = None,
        enabled: bool = True,
    ) -> None:
        self.kind = kind
        self.name = name
        self.settings = settings
        self.layered = layered
        self.env_prefix = env_prefix
        self.type_name = type_name
        self.enabled = enabled

    def origin(self, path: tuple[str, ...]) -> Origin:
        """Where the value at ``path`` (``("timeout", "read")``) came from."""
        return self.layered.origin(path)

    def __repr__(self) -> str:
        return f"<EffectiveSettings {self.kind} {self.name!r}>"


def effective_provider_settings(
    name: str | None = None,
    *,
    config: RelayConfig | Mapping[str, Any] | str | os.PathLike[str] | None = None,
    registry: Any = None,
    **settings: Any,
) -> EffectiveSettings:
    """The settings ``create_provider(name, config=..., **settings)`` would build with, and their origins.

    Nothing is built and no key is required: a missing key shows as unset.
    """
    from .plugins import get_registry

    registry = registry or get_registry()
    relay_config = _coerce_config(config)
    instance, cls, section = _provider_entry(relay_config, registry, name)
    environ = _environment((cls.env_prefix,), [cls.settings_model])
    model, layered = _provider_settings(cls, instance, relay_config.source, section, settings, environ, key=False)
    return EffectiveSettings("provider", instance, model, layered, cls.env_prefix, type_name=cls.name)


def effective_plugin_settings(
    *, config: RelayConfig | Mapping[str, Any] | str | os.PathLike[str] | None = None, registry: Any = None
) -> list[EffectiveSettings]:
    """Every plugin layer's settings, outermost first, as a provider built now would get them."""
    from .plugins import get_registry

    registry = registry or get_registry()
    relay_config = _coerce_config(config)
    _check_plugin_sections(relay_config, registry)
    environ = _environment((PLUGIN_ENV_PREFIX,), _plugin_models(registry))
    _check_plugin_variables(registry, environ)
    found = []
    for spec in registry.layer_specs():
        enabled, settings, layered = _plugin_settings(spec, relay_config, environ)
        prefix = plugin_env_prefix(spec.name)
        found.append(EffectiveSettings("plugin", spec.name, settings, layered, prefix, enabled=enabled))
    return found
