"""llmrelay: one typed interface to many LLM services.

Quick start::

    from llmrelay.core import create_provider

    with create_provider("openrouter") as provider:      # reads OPENROUTER_API_KEY
        reply = provider.execute({"model": "openai/gpt-4o-mini",
                                  "messages": [{"role": "user", "content": "Hi"}]})
        print(reply.text, reply.usage.cost)

``import llmrelay.core`` imports none of llmrelay's dependencies: each
public name is imported from its module when a program first uses it
(PEP 562), so a program that only catches ``LLMRelayError`` never loads
pydantic or requests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmrelay.core.lazy import lazy_exports

__version__ = "0.1.0"

# The public names, each with the module it is imported from on first use:
# the one list. ``__all__`` and ``__getattr__`` are made from it. Type
# checkers see a module ``__getattr__`` as returning ``Any``, so the
# TYPE_CHECKING imports at the end name the same things for them, as explicit
# re-exports (``X as X``: mypy --strict cannot read a computed ``__all__``);
# a test keeps the two equal.
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
    "rechunk_words": "rechunk",
    "arechunk_words": "rechunk",
    # async: the thread pool the a* methods run on, and the async stream
    "AsyncChatStream": "async_stream",
    "run_sync": "aio",
    "async_workers": "aio",
    "set_async_workers": "aio",
    "shutdown_async_pool": "aio",
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

__all__ = [*_EXPORTS, "__version__"]


__getattr__ = lazy_exports(__name__, _EXPORTS, globals())


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # pragma: no cover - the names of _EXPORTS, for type checkers and IDEs
    from .account import Credits as Credits
    from .account import GenerationStats as GenerationStats
    from .account import ValidationReport as ValidationReport
    from .aio import async_workers as async_workers
    from .aio import run_sync as run_sync
    from .aio import set_async_workers as set_async_workers
    from .aio import shutdown_async_pool as shutdown_async_pool
    from .async_stream import AsyncChatStream as AsyncChatStream
    from .catalog import ModelInfo as ModelInfo
    from .catalog import ModelList as ModelList
    from .catalog import Pricing as Pricing
    from .compose.agent import iter_agent as iter_agent
    from .compose.agent import run_agent as run_agent
    from .compose.fallback import FallbackProvider as FallbackProvider
    from .compose.routing import ContentRule as ContentRule
    from .compose.routing import ModelPrefixRule as ModelPrefixRule
    from .compose.routing import ModelSuffixRule as ModelSuffixRule
    from .compose.routing import Router as Router
    from .compose.tools import ToolRegistry as ToolRegistry
    from .config import RelayConfig as RelayConfig
    from .config import create_provider as create_provider
    from .config import load_config as load_config
    from .embeddings import EmbeddingRequest as EmbeddingRequest
    from .embeddings import EmbeddingResponse as EmbeddingResponse
    from .errors import APIConnectionError as APIConnectionError
    from .errors import APIStatusError as APIStatusError
    from .errors import APITimeoutError as APITimeoutError
    from .errors import AuthenticationError as AuthenticationError
    from .errors import BadRequestError as BadRequestError
    from .errors import CapabilityNotSupportedError as CapabilityNotSupportedError
    from .errors import CircuitOpenError as CircuitOpenError
    from .errors import ConfigurationError as ConfigurationError
    from .errors import InvalidResponseError as InvalidResponseError
    from .errors import LLMRelayError as LLMRelayError
    from .errors import ModelNotFoundError as ModelNotFoundError
    from .errors import NotFoundError as NotFoundError
    from .errors import PaymentRequiredError as PaymentRequiredError
    from .errors import PermissionDeniedError as PermissionDeniedError
    from .errors import PluginLoadError as PluginLoadError
    from .errors import ProviderError as ProviderError
    from .errors import RateLimitError as RateLimitError
    from .errors import ServerError as ServerError
    from .errors import StreamInterruptedError as StreamInterruptedError
    from .errors import UnknownProviderError as UnknownProviderError
    from .hookspecs import hookimpl as hookimpl
    from .hookspecs import hookspec as hookspec
    from .models import ChatRequest as ChatRequest
    from .models import ChatResponse as ChatResponse
    from .models import FunctionCall as FunctionCall
    from .models import FunctionDefinition as FunctionDefinition
    from .models import ImagePart as ImagePart
    from .models import ImageURL as ImageURL
    from .models import Message as Message
    from .models import ResponseMeta as ResponseMeta
    from .models import TextPart as TextPart
    from .models import Tool as Tool
    from .models import ToolCall as ToolCall
    from .models import Usage as Usage
    from .pipeline import Call as Call
    from .pipeline import Layer as Layer
    from .pipeline import LayerContext as LayerContext
    from .pipeline import LayeredProvider as LayeredProvider
    from .pipeline import LayerSpec as LayerSpec
    from .pipeline import Operation as Operation
    from .pipeline import Position as Position
    from .plugins import ENTRY_POINT_GROUP as ENTRY_POINT_GROUP
    from .plugins import PluginRegistry as PluginRegistry
    from .plugins import get_registry as get_registry
    from .plugins import reset_registry as reset_registry
    from .provider import CallOptions as CallOptions
    from .provider import Capability as Capability
    from .provider import Provider as Provider
    from .rechunk import arechunk_words as arechunk_words
    from .rechunk import rechunk_words as rechunk_words
    from .settings import PoolSettings as PoolSettings
    from .settings import ProviderSettings as ProviderSettings
    from .settings import RetrySettings as RetrySettings
    from .settings import TimeoutSettings as TimeoutSettings
    from .stream import ChatStream as ChatStream
    from .stream import StreamChunk as StreamChunk
    from .stream import ToolCallDelta as ToolCallDelta
