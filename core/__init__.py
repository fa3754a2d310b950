"""llmrelay: one typed interface to many LLM services.

Quick start::

    from llmrelay.core import create_provider

    with create_provider("openrouter") as provider:      # reads OPENROUTER_API_KEY
        reply = provider.execute({"model": "openai/gpt-4o-mini",
                                  "messages": [{"role": "user", "content": "Hi"}]})
        print(reply.text, reply.usage.cost)

The names below are imported on first use (PEP 562), so ``import
llmrelay.core`` stays cheap: pydantic model classes are built only when a
program first touches them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    # config
    "create_provider": "config",
    "load_config": "config",
    "RelayConfig": "config",
    # provider interface
    "Provider": "provider",
    "Capability": "provider",
    "CallOptions": "provider",
    "ProviderSettings": "settings",
    "TimeoutSettings": "settings",
    "RetrySettings": "settings",
    "PoolSettings": "settings",
    # pipeline and plugins
    "Call": "pipeline",
    "Layer": "pipeline",
    "LayerContext": "pipeline",
    "LayerSpec": "pipeline",
    "LayeredProvider": "pipeline",
    "Operation": "pipeline",
    "Position": "pipeline",
    "hookimpl": "hookspecs",
    "hookspec": "hookspecs",
    "PluginRegistry": "plugins",
    "get_registry": "plugins",
    "reset_registry": "plugins",
    "ENTRY_POINT_GROUP": "plugins",
    # routing, fallback, tools
    "Router": "compose.routing",
    "ModelSuffixRule": "compose.routing",
    "ModelPrefixRule": "compose.routing",
    "ContentRule": "compose.routing",
    "FallbackProvider": "compose.fallback",
    "ToolRegistry": "compose.tools",
    "run_agent": "compose.agent",
    "iter_agent": "compose.agent",
    # domain model
    "ChatRequest": "models",
    "ChatResponse": "models",
    "Message": "models",
    "TextPart": "models",
    "ImagePart": "models",
    "ImageURL": "models",
    "Tool": "models",
    "ToolCall": "models",
    "FunctionCall": "models",
    "FunctionDefinition": "models",
    "Usage": "models",
    "ResponseMeta": "models",
    "Pricing": "catalog",
    "ModelInfo": "catalog",
    "ModelList": "catalog",
    "Credits": "account",
    "GenerationStats": "account",
    "ValidationReport": "account",
    "EmbeddingRequest": "embeddings",
    "EmbeddingResponse": "embeddings",
    "ChatStream": "stream",
    "StreamChunk": "stream",
    "ToolCallDelta": "stream",
    # errors
    "LLMRelayError": "errors",
    "ConfigurationError": "errors",
    "UnknownProviderError": "errors",
    "PluginLoadError": "errors",
    "CapabilityNotSupportedError": "errors",
    "CircuitOpenError": "errors",
    "ProviderError": "errors",
    "APIConnectionError": "errors",
    "APITimeoutError": "errors",
    "StreamInterruptedError": "errors",
    "InvalidResponseError": "errors",
    "APIStatusError": "errors",
    "BadRequestError": "errors",
    "AuthenticationError": "errors",
    "PaymentRequiredError": "errors",
    "PermissionDeniedError": "errors",
    "NotFoundError": "errors",
    "ModelNotFoundError": "errors",
    "RateLimitError": "errors",
    "ServerError": "errors",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'llmrelay.core' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module_name}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from .account import Credits, GenerationStats, ValidationReport
    from .catalog import ModelInfo, ModelList, Pricing
    from .compose.agent import iter_agent, run_agent
    from .compose.fallback import FallbackProvider
    from .compose.routing import ContentRule, ModelPrefixRule, ModelSuffixRule, Router
    from .compose.tools import ToolRegistry
    from .config import RelayConfig, create_provider, load_config
    from .embeddings import EmbeddingRequest, EmbeddingResponse
    from .errors import (
        APIConnectionError,
        APIStatusError,
        APITimeoutError,
        AuthenticationError,
        BadRequestError,
        CapabilityNotSupportedError,
        CircuitOpenError,
        ConfigurationError,
        InvalidResponseError,
        LLMRelayError,
        ModelNotFoundError,
        NotFoundError,
        PaymentRequiredError,
        PermissionDeniedError,
        PluginLoadError,
        ProviderError,
        RateLimitError,
        ServerError,
        StreamInterruptedError,
        UnknownProviderError,
    )
    from .hookspecs import hookimpl, hookspec
    from .models import (
        ChatRequest,
        ChatResponse,
        FunctionCall,
        FunctionDefinition,
        ImagePart,
        ImageURL,
        Message,
        ResponseMeta,
        TextPart,
        Tool,
        ToolCall,
        Usage,
    )
    from .pipeline import Call, Layer, LayerContext, LayeredProvider, LayerSpec, Operation, Position
    from .plugins import ENTRY_POINT_GROUP, PluginRegistry, get_registry, reset_registry
    from .provider import CallOptions, Capability, Provider
    from .settings import PoolSettings, ProviderSettings, RetrySettings, TimeoutSettings
    from .stream import ChatStream, StreamChunk, ToolCallDelta
