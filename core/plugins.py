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

import logging
import os
import threading
from dataclasses import dataclass
from importlib import metadata
from types import ModuleType
from typing import Any

import pluggy

from . import hookspecs
from .errors import ConfigurationError, PluginLoadError
from .pipeline import LayerSpec
from .provider import Provider
from .secrets import redact

__all__ = [
    "ENTRY_POINT_GROUP",
    "STRICT_ENV",
    "DISABLE_ENV",
    "PluginInfo",
    "FailedPlugin",
    "ProviderEntry",
    "PluginRegistry",
    "get_registry",
    "reset_registry",
]

log = logging.getLogger("llmrelay.plugins")

ENTRY_POINT_GROUP = "llmrelay"
STRICT_ENV = "LLMRELAY_STRICT_PLUGINS"
DISABLE_ENV = "LLMRELAY_DISABLE_PLUGINS"

_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True, slots=True)
class PluginInfo:
    name: str
    distribution: str | None
    version: str | None
    module: str


@dataclass(frozen=True, slots=True)
class FailedPlugin:
    name: str
    distribution: str | None
    target: str
    error: str


@dataclass(frozen=True, slots=True)
class ProviderEntry:
    cls: type[Provider]
    plugin: str
    distribution: str | None


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
        # Reading a distribution's name and version parses its METADATA file
        # (``dist.version`` parses it again): done once per distribution, not
        # twice per entry point. The entry points of one distribution share
        # its ``Distribution`` object.
        identities: dict[metadata.Distribution, tuple[str | None, str | None]] = {}
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in self.disabled or self.pm.has_plugin(ep.name):
                continue
            dist = getattr(ep, "dist", None)
            if dist is None:
                dist_name, version = None, None
            else:
                if dist not in identities:
                    fields = dist.metadata
                    identities[dist] = (fields["Name"], fields["Version"])
                dist_name, version = identities[dist]
            try:
                plugin = ep.load()
                self.pm.register(plugin, name=ep.name)
            except Exception as exc:
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
            module = plugin.__name__ if isinstance(plugin, ModuleType) else type(plugin).__name__
            self.loaded.append(PluginInfo(ep.name, dist_name, version, module))
        self._invalidate()

    def register(self, plugin: Any, name: str | None = None) -> None:
        """Register a plugin object or module directly (applications, tests)."""
        registered = self.pm.register(plugin, name=name)
        module = getattr(plugin, "__name__", type(plugin).__name__)
        self.loaded.append(PluginInfo(registered or module, None, None, module))
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
            info = next((p for p in self.loaded if p.name == plugin_name), None)
            classes: list[type[Provider]] = []

            def register(cls: type[Provider], _plugin: str = plugin_name) -> None:
                name = getattr(cls, "name", None)
                if not isinstance(name, str) or not name:
                    raise ConfigurationError(f"plugin {_plugin!r} registered {cls!r}, which has no `name`")
                classes.append(cls)

            # A plugin whose hook raises is skipped like one that fails to
            # import: its providers are dropped, the others' stay.
            if not self._run_hook(impl, register):
                continue
            for cls in classes:
                if cls.name in found and found[cls.name].cls is not cls:
                    log.warning(
                        "provider %r from plugin %r replaces the one from plugin %r",
                        cls.name, plugin_name, found[cls.name].plugin,
                    )
                found[cls.name] = ProviderEntry(cls, plugin_name, info.distribution if info else None)
        return found

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
            message = f"llmrelay plugin {plugin_name!r} from package {dist_name or 'unknown'!r} failed in {hook}: {reason}"
            if self.strict:
                raise PluginLoadError(message + f" [strict mode: unset {STRICT_ENV} to skip it]") from exc
            log.warning("%s; skipping it", message)
            return False

    def provider_class(self, name: str) -> type[Provider]:
        from .errors import UnknownProviderError

        providers = self.providers()
        entry = providers.get(name)
        if entry is None:
            import difflib

            close = difflib.get_close_matches(name, list(providers), n=1, cutoff=0.6)
            raise UnknownProviderError(name, list(providers), close[0] if close else None)
        return entry.cls


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
