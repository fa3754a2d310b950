"""llmrelay's own providers, registered by path through its own entry points.

Each entry point (``openrouter``, ``openai``, ``anthropic`` in
``pyproject.toml``) names one object of this module. Registering the
class by ``"module:Class"`` rather than importing it keeps a provider's
module out of every program that never builds that provider: listing
plugins or building OpenRouter does not import the Anthropic provider.
A third-party plugin can do the same with ``register("pkg.mod:Class",
name="...")``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from llmrelay.core.hookspecs import hookimpl

__all__ = ["BuiltinProvider", "anthropic", "openai", "openrouter"]


@dataclass(frozen=True, slots=True)
class BuiltinProvider:
    """A pluggy plugin object registering one provider class by path."""

    name: str
    target: str

    @hookimpl
    def llmrelay_register_providers(self, register: Callable[..., Any]) -> None:
        register(self.target, name=self.name)


openrouter = BuiltinProvider("openrouter", "llmrelay.providers.openrouter:OpenRouterProvider")
openai = BuiltinProvider("openai", "llmrelay.providers.openai_compat:OpenAICompatibleProvider")
anthropic = BuiltinProvider("anthropic", "llmrelay.providers.anthropic:AnthropicProvider")
