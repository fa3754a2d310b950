"""Finding and loading plugins from the ``llmrelay`` entry-point group.

pluggy's ``load_setuptools_entrypoints`` stops at the first entry point
that fails to import, so one broken package would take every provider down
with it. :class:`PluginRegistry` loads entry points one at a time: a failure
is logged as a warning naming the package and the exception, recorded in
:attr:`PluginRegistry.failed`, and loading goes on. Strict mode (argument
``strict=True`` or ``LLMRELAY_STRICT_PLUGINS=1``) raises
:class:`~llmrelay.core.errors.PluginLoadError` instead.

Plugins are disabled by entry-point name with ``disabled=[...]`` or
``LLMRELAY_DISABLE_PLUGINS=cache,metrics``. Loading imports the plugin
modules only: no network, no disk beyond the imports.
"""

from __future__ import annotations

import functools
import importlib
import logging
import os
import threading
from dataclasses import dataclass, field
from importlib import metadata
from types import ModuleType
from typing import Any

import pluggy

from . import hookspecs
from .errors import ConfigurationError, PluginLoadError, UnknownProviderError
from .pipeline import LayerSpec
from .provider import Provider
from .secrets import redact

__all__ = [
    "DISABLE_ENV",
    "ENTRY_POINT_GROUP",
    "STRICT_ENV",
    "FailedPlugin",
    "PluginInfo",
    "PluginRegistry",
    "ProviderEntry",
    "get_registry",
    "reset_registry",
]

log = logging.getLogger("llmrelay.plugins")

ENTRY_POINT_GROUP = "llmrelay"
STRICT_ENV = "LLMRELAY_STRICT_PLUGINS"
DISABLE_ENV = "LLMRELAY_DISABLE_PLUGINS"

_TRUE = {"1", "true", "yes", "on"}


@functools.lru_cache(maxsize=128)
def _name_and_version(dist: metadata.Distribution) -> tuple[str | None, str | None]:
    """A distribution's name and version, read from its METADATA once.

    Only listings and error messages need them, and parsing METADATA (the
    long description included) is the slowest step of loading a plugin: a
    provider build never does it. Plugins of one distribution share the parse.
    """
    try:
        found = dist.metadata
        return found["Name"], found["Version"]
    except Exception:  # a damaged METADATA must not break a listing or an error message
        return None, None


@dataclass(slots=True)
class PluginInfo:
    """A loaded plugin: its entry-point name, its module, and the distribution that installed it (if any)."""

    name: str
    module: str
    dist: metadata.Distribution | None = field(default=None, repr=False, compare=False)

    @property
    def distribution(self) -> str | None:
        return _name_and_version(self.dist)[0] if self.dist is not None else None

    @property
    def version(self) -> str | None:
        return _name_and_version(self.dist)[1] if self.dist is not None else None


@dataclass(frozen=True, slots=True)
class FailedPlugin:
    """A plugin that failed to load or whose hook raised, and why."""

    name: str
    distribution: str | None
    target: str
    error: str


@dataclass(slots=True)
class ProviderEntry:
    """A registered provider: its class, or where to import it from when first built.

    A plugin that registers ``"package.module:ClassName"`` instead of the
    class keeps its module (and whatever SDK that imports) out of every
    program that never builds that provider. ``target`` names the class
    either way; :attr:`cls` imports it on first use.
    """

    name: str
    target: str
    plugin: str
    info: PluginInfo | None = field(default=None, repr=False)
    imported: type[Provider] | None = field(default=None, repr=False)

    @property
    def distribution(self) -> str | None:
        """The package the registering plugin came from (None when registered in code)."""
        return self.info.distribution if self.info else None

    @property
    def loaded(self) -> bool:
        return self.imported is not None

    @property
    def cls(self) -> type[Provider]:
        # Importing twice from two threads is harmless: the import system
        # serialises the module, and both threads then find the same class.
        if self.imported is None:
            self.imported = self._import()
        return self.imported

    def _import(self) -> type[Provider]:
        module_name, _, qualname = self.target.partition(":")
        try:
            found: Any = importlib.import_module(module_name)
            for part in qualname.split("."):
                found = getattr(found, part)
        except Exception as exc:
            raise PluginLoadError(
                f"{self._where()} failed to import: {redact(f'{type(exc).__name__}: {exc}')}"
            ) from exc
        if not (isinstance(found, type) and issubclass(found, Provider)):
            raise PluginLoadError(f"{self._where()} is {found!r}, not a Provider subclass")
        if getattr(found, "name", None) != self.name:
            raise PluginLoadError(
                f"{self._where()} has name = {getattr(found, 'name', None)!r}; a provider registered by path "
                "must be registered under its class's `name`"
            )
        return found

    def _where(self) -> str:
        # Only for errors: naming the distribution parses its METADATA.
        return (
            f"provider {self.name!r} of llmrelay plugin {self.plugin!r} "
            f"from package {self.distribution or 'unknown'!r} ({self.target})"
        )


def _env_list(name: str) -> list[str]:
    return [part.strip() for part in os.environ.get(name, "").split(",") if part.strip()]


class PluginRegistry:
    """The installed providers and layers, loaded once and then read-only."""

    def __init__(
        self,
        *,
        strict: bool | None = None,
        disabled: list[str] | None = None,
        load_entry_points: bool = True,
    ) -> None:
        self.strict = strict if strict is not None else os.environ.get(STRICT_ENV, "").lower() in _TRUE
        self.disabled = set(disabled if disabled is not None else _env_list(DISABLE_ENV))
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self.loaded: list[PluginInfo] = []
        self.failed: list[FailedPlugin] = []
        self._providers: dict[str, ProviderEntry] | None = None
        self._layers: list[LayerSpec] | None = None
        self._lock = threading.Lock()
        if load_entry_points:
            self.load_entry_points()

    # ------------------------------------------------------------------ loading

    def load_entry_points(self) -> None:
        # One error per entry point: a package that fails to import is skipped
        # (or, strict, raised) and the others still load, where pluggy's
        # load_setuptools_entrypoints would stop at the first failure.
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in self.disabled or self.pm.has_plugin(ep.name):
                continue
            try:
                plugin = ep.load()
                self.pm.register(plugin, name=ep.name)
            except Exception as exc:
                dist_name = _name_and_version(ep.dist)[0] if ep.dist is not None else None
                reason = redact(f"{type(exc).__name__}: {exc}")
                self.failed.append(FailedPlugin(ep.name, dist_name, ep.value, reason))
                message = (
                    f"llmrelay plugin {ep.name!r} from package {dist_name or 'unknown'!r} "
                    f"failed to load ({ep.value}): {reason}"
                )
                if self.strict:
                    raise PluginLoadError(message + f" [strict mode: unset {STRICT_ENV} to skip it]") from exc
                log.warning("%s; skipping it", message)
                continue
            module = (
                plugin.__name__
                if isinstance(plugin, ModuleType)
                else f"{type(plugin).__module__}.{type(plugin).__qualname__}"
            )
            self.loaded.append(PluginInfo(ep.name, module, ep.dist))
        self._invalidate()

    def register(self, plugin: Any, name: str | None = None) -> None:
        """Register a plugin object or module directly (applications, tests)."""
        registered = self.pm.register(plugin, name=name)
        module = getattr(plugin, "__name__", type(plugin).__name__)
        self.loaded.append(PluginInfo(registered or module, module))
        self._invalidate()

    def unregister(self, name: str) -> None:
        self.pm.unregister(name=name)
        self.loaded = [p for p in self.loaded if p.name != name]
        self._invalidate()

    def _invalidate(self) -> None:
        with self._lock:
            self._providers = None
            self._layers = None

    # ------------------------------------------------------------------ what plugins offer

    def providers(self) -> dict[str, ProviderEntry]:
        with self._lock:
            if self._providers is None:
                self._providers = self._collect_providers()
            return dict(self._providers)

    def _collect_providers(self) -> dict[str, ProviderEntry]:
        found: dict[str, ProviderEntry] = {}
        for impl in self.pm.hook.llmrelay_register_providers.get_hookimpls():
            plugin_name = impl.plugin_name
            for entry in self._registered_providers(impl):
                earlier = found.get(entry.name)
                if earlier is not None and earlier.target != entry.target:
                    log.warning(
                        "provider %r from plugin %r replaces the one from plugin %r",
                        entry.name,
                        plugin_name,
                        earlier.plugin,
                    )
                found[entry.name] = entry
        return found

    def _registered_providers(self, impl: Any) -> list[ProviderEntry]:
        """What one plugin's ``llmrelay_register_providers`` registers.

        A plugin whose hook raises is skipped like one that fails to import:
        its providers are dropped, the others' stay.
        """
        plugin_name = impl.plugin_name
        info = next((p for p in self.loaded if p.name == plugin_name), None)
        entries: list[ProviderEntry] = []

        def register(provider: type[Provider] | str, name: str | None = None) -> None:
            entries.append(_entry(provider, name, plugin_name, info))

        return entries if self._run_hook(impl, register) else []

    def layer_specs(self) -> list[LayerSpec]:
        with self._lock:
            if self._layers is None:
                specs: dict[str, LayerSpec] = {}
                for impl in self.pm.hook.llmrelay_register_layers.get_hookimpls():
                    contributed: list[LayerSpec] = []
                    if self._run_hook(impl, contributed.append):
                        specs.update((spec.name, spec) for spec in contributed)
                self._layers = sorted(specs.values(), key=lambda s: (s.position, s.name))
            return list(self._layers)

    def _run_hook(self, impl: Any, register: Any) -> bool:
        """Call one plugin's hook; on failure warn (or raise in strict mode) and return False."""
        try:
            impl.function(register=register)
            return True
        except Exception as exc:
            plugin_name = impl.plugin_name
            info = next((p for p in self.loaded if p.name == plugin_name), None)
            dist_name = info.distribution if info else None
            hook = getattr(impl.function, "__name__", "hook")
            reason = redact(f"{type(exc).__name__}: {exc}")
            if not any(f.name == plugin_name and f.target == hook for f in self.failed):
                self.failed.append(FailedPlugin(plugin_name, dist_name, hook, reason))
            message = (
                f"llmrelay plugin {plugin_name!r} from package {dist_name or 'unknown'!r} failed in {hook}: {reason}"
            )
            if self.strict:
                raise PluginLoadError(message + f" [strict mode: unset {STRICT_ENV} to skip it]") from exc
            log.warning("%s; skipping it", message)
            return False

    def provider_class(self, name: str) -> type[Provider]:
        providers = self.providers()
        entry = providers.get(name)
        if entry is None:
            import difflib  # only to suggest a name for a typo

            close = difflib.get_close_matches(name, list(providers), n=1, cutoff=0.6)
            raise UnknownProviderError(name, list(providers), close[0] if close else None)
        try:
            return entry.cls
        except PluginLoadError as exc:
            with self._lock:
                if not any(f.name == entry.plugin and f.target == entry.target for f in self.failed):
                    self.failed.append(FailedPlugin(entry.plugin, entry.distribution, entry.target, str(exc)))
            raise


def _entry(provider: Any, name: str | None, plugin: str, info: PluginInfo | None) -> ProviderEntry:
    """Check one ``register(...)`` call of a plugin's ``llmrelay_register_providers``."""
    if isinstance(provider, str):
        module_name, colon, qualname = provider.partition(":")
        if not (colon and module_name and qualname):
            raise ConfigurationError(
                f"plugin {plugin!r} registered {provider!r}; a provider path is 'package.module:ClassName'"
            )
        if not isinstance(name, str) or not name:
            raise ConfigurationError(
                f"plugin {plugin!r} registered {provider!r} without a name; "
                f"call register({provider!r}, name='...') with the class's `name`"
            )
        return ProviderEntry(name, provider, plugin, info)
    cls_name = getattr(provider, "name", None)
    if not isinstance(cls_name, str) or not cls_name:
        raise ConfigurationError(f"plugin {plugin!r} registered {provider!r}, which has no `name`")
    if name is not None and name != cls_name:
        raise ConfigurationError(
            f"plugin {plugin!r} registered {provider!r} as {name!r}, but its `name` is {cls_name!r}"
        )
    target = f"{provider.__module__}:{provider.__qualname__}"
    return ProviderEntry(cls_name, target, plugin, info, imported=provider)


_default: PluginRegistry | None = None
_default_lock = threading.Lock()


def get_registry() -> PluginRegistry:
    """The process-wide registry, built on first use from the installed entry points."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = PluginRegistry()
    return _default


def reset_registry() -> None:
    """Forget the process-wide registry (after installing a package, in tests)."""
    global _default
    with _default_lock:
        _default = None
