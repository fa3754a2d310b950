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

import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, SecretStr, ValidationError

from .errors import ConfigurationError
from .settings import default_settings

__all__ = [
    "CONFIG_ENV",
    "RelayConfig",
    "create_provider",
    "load_config",
    "settings_from_env",
    "validate_settings",
]

CONFIG_ENV = "LLMRELAY_CONFIG"

M = TypeVar("M", bound=BaseModel)

# Pattern sources, compiled by re (and cached there) on first use: most
# programs never interpolate a file or print a bad value.
_SECRET_NAMES = r"(?i)(key|secret|token|password)"
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


# --------------------------------------------------------------------------- validation


def _describe(value: Any, field: str) -> str:
    kind = type(value).__name__
    if re.search(_SECRET_NAMES, field) or isinstance(value, SecretStr):
        return kind
    text = repr(value)
    return f"{kind} {text}" if len(text) <= 60 else kind


def _field_model(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The nested settings model a location points into (``("timeout",)`` -> TimeoutSettings)."""
    for part in loc:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field is not None else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


def _did_you_mean(model: type[BaseModel] | None, loc: tuple[Any, ...]) -> str:
    import difflib

    if model is None or not loc:
        return ""
    parent = _field_model(model, loc[:-1])
    if parent is None:
        return ""
    close = difflib.get_close_matches(str(loc[-1]), list(parent.model_fields), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _format_errors(
    exc: ValidationError,
    source: str,
    prefix: str,
    model: type[BaseModel] | None = None,
    origins: Mapping[str, str] | None = None,
) -> str:
    lines = []
    for error in exc.errors(include_url=False):
        loc = ".".join(str(part) for part in error["loc"])
        field = f"{prefix}.{loc}" if prefix and loc else (prefix or loc)
        if origins and error["loc"] and str(error["loc"][0]) in origins:
            field += f" (from environment variable {origins[str(error['loc'][0])]})"
        kind = error["type"]
        if kind == "extra_forbidden":
            lines.append(f"{field}: unknown setting{_did_you_mean(model, tuple(error['loc']))}")
            continue
        if kind == "missing":
            lines.append(f"{field}: required, but not set")
            continue
        given = _describe(error.get("input"), loc)
        message = error["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        lines.append(f"{field}: {message} (got {given})")
    head = f"{source}: " if source else ""
    return head + "; ".join(lines)


def validate_settings(
    model: type[M],
    data: Mapping[str, Any],
    *,
    source: str,
    prefix: str = "",
    origins: Mapping[str, str] | None = None,
) -> M:
    """Validate settings, turning pydantic's error into one readable ConfigurationError.

    ``origins`` maps top-level fields to the environment variable they were
    read from, so the message names the variable to fix.
    """
    if not data:
        return default_settings(model)
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigurationError(_format_errors(exc, source, prefix, model, origins)) from None


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


def create_provider(
    name: str | None = None,
    *,
    config: RelayConfig | Mapping[str, Any] | str | os.PathLike[str] | None = None,
    plugins: bool | list[str] = True,
    registry: Any = None,
    **settings: Any,
) -> Any:
    """Build a provider by name, with the layers of the installed plugins around it.

    ``create_provider("openrouter")`` reads ``OPENROUTER_API_KEY`` from the
    environment. ``config`` is a dict, a TOML path or a :class:`RelayConfig`;
    ``plugins=False`` builds the bare provider, a list keeps only the named
    plugins' layers. Keyword arguments override every other source.
    """
    from .pipeline import LayerContext, LayeredProvider
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
    from_env = settings_from_env(cls.settings_model, cls.env_prefix)
    origins = {
        field: f"{cls.env_prefix}{field.upper()}"
        for field in from_env
        if field not in section and field not in settings
    }
    data = _deep_merge(from_env, section)
    data = _deep_merge(data, settings)
    source = relay_config.source if section else f"settings for provider {instance!r}"
    model = validate_settings(cls.settings_model, data, source=source, prefix=f"providers.{instance}", origins=origins)
    if cls.requires_api_key and getattr(model, "api_key", None) is None:
        env_hint = f"set {cls.env_prefix}API_KEY, " if cls.env_prefix else ""
        raise ConfigurationError(
            f"{source}: providers.{instance}.api_key: required, but not set "
            f"({env_hint}pass api_key=..., or add api_key to [providers.{instance}])"
        )
    provider = cls(model)
    provider.instance_name = instance
    if plugins is False:
        return provider

    layers = []
    try:
        for spec in registry.layer_specs():
            if isinstance(plugins, list) and spec.name not in plugins:
                continue
            plugin_section = relay_config.plugin_section(spec.name)
            enabled = plugin_section.pop("enabled", spec.enabled_by_default)
            if not isinstance(enabled, bool):
                raise ConfigurationError(
                    f"{relay_config.source}: plugins.{spec.name}.enabled must be true or false, "
                    f"got {type(enabled).__name__}"
                )
            if not enabled and not (isinstance(plugins, list) and spec.name in plugins):
                continue
            plugin_settings: Any = plugin_section
            if spec.settings_model is not None:
                plugin_settings = validate_settings(
                    spec.settings_model, plugin_section, source=relay_config.source, prefix=f"plugins.{spec.name}"
                )
            layer = spec.factory(LayerContext(provider, plugin_settings, instance, provider.base_url))
            if layer is not None:
                layers.append(layer)
    except BaseException:
        for layer in layers:
            layer.close()
        provider.close()
        raise
    return LayeredProvider(provider, layers)
