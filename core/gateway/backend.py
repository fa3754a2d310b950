"""The providers the gateway serves: built with ``create_provider``, routed by a :class:`Router`.

Every call goes through the same layered providers a library caller gets
(metrics, cache, breaker, retries), so nothing of the pipeline is
re-implemented here. With one provider and no routing rules the gateway calls
it directly; otherwise a :class:`~llmrelay.core.compose.routing.Router` over
the named instances picks one per request by the ``[gateway] routing`` rules,
falling back to the default provider.
"""

from __future__ import annotations

from typing import Any

from ..compose.routing import Router, rules_from_config
from ..config import RelayConfig, create_provider, effective_plugin_settings
from ..errors import ConfigurationError
from ..provider import Provider
from .settings import GatewaySettings

__all__ = ["Backend"]


class Backend:
    """The served providers, by instance name, and the one provider calls go to."""

    def __init__(self, members: dict[str, Provider], provider: Provider, default: str) -> None:
        self.members = members
        self.provider = provider
        self.default = default

    @classmethod
    def build(cls, config: RelayConfig, settings: GatewaySettings, **create_kwargs: Any) -> Backend:
        default = settings.default_provider or config.default_provider
        names = list(settings.providers or config.providers or ([default] if default else []))
        if not names:
            raise ConfigurationError(
                f"{config.source}: the gateway serves no provider: add a [providers.<name>] section, "
                "default_provider, or [gateway] providers = [...]"
            )
        if default is None:
            default = names[0]
        if default not in names:
            names.append(default)
        rules = rules_from_config(settings.routing)
        members: dict[str, Provider] = {}
        try:
            for name in names:
                members[name] = create_provider(name, config=config, **create_kwargs)
            provider: Provider
            if len(members) == 1 and not rules:
                provider = members[default]
            else:
                provider = Router(members, rules, default_provider=default)
        except BaseException:
            for member in members.values():
                member.close()
            raise
        return cls(members, provider, default)

    @classmethod
    def check(cls, config: RelayConfig, settings: GatewaySettings) -> None:
        """Raise, before any worker starts, the ``ConfigurationError`` a worker would raise building the backend.

        Each worker builds its backend after the fork, where a mistake (a missing key, a bad variable, a typo'd
        section) would take gunicorn down with a traceback; checked in the master it is the CLI's one-line error.
        The providers are built bare (no layers: no warm-up call or thread before the fork), then closed.
        """
        effective_plugin_settings(config=config)
        cls.build(config, settings, plugins=False).close()

    def for_model(self, model: str | None) -> tuple[Provider, str | None]:
        """The member and upstream model for an operation that is not a chat (embeddings)."""
        if isinstance(self.provider, Router):
            route = self.provider.route({"model": model, "messages": [{"role": "user", "content": ""}]})
            return self.members[route.provider or self.default], route.model
        return self.provider, model

    def layers(self, name: str) -> list[Any]:
        """Each member's layer of that name (``"metrics"``, ``"cache"``), where it has one."""
        found = []
        for member in self.members.values():
            layer = getattr(member, "layer", None)
            value = layer(name) if layer is not None else None
            if value is not None:
                found.append(value)
        return found

    def close(self) -> None:
        # A Router closes every member; a lone provider is the only member.
        self.provider.close()
