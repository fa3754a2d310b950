"""The :class:`Provider` interface every LLM service implements.

A provider is constructed from its settings (``OpenRouterProvider(api_key=...)``
or ``create_provider("openrouter")``) and offers the same operations whatever
the service behind it. Optional operations are declared in
``capabilities``; calling one a provider lacks raises
:class:`~llmrelay.core.errors.CapabilityNotSupportedError`.

Providers are thread-safe: agent backends share one instance across threads.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar, Union

from .errors import CapabilityNotSupportedError, ConfigurationError
from .records import Record
from .settings import ProviderSettings

if TYPE_CHECKING:
    # The chat model and the stream load with the first chat call, like the
    # other operations' result models: building a provider runs no chat.
    from .account import Credits, GenerationStats, ValidationReport
    from .catalog import ModelList
    from .embeddings import EmbeddingRequest, EmbeddingResponse
    from .models import ChatRequest, ChatResponse
    from .stream import ChatStream

__all__ = ["CallOptions", "Capability", "Provider", "RequestLike"]

RequestLike = Union["ChatRequest", dict[str, Any]]


class Capability:
    """Names of operations, for ``provider.supports(...)`` and ``capabilities``."""

    CHAT = "chat"
    STREAM = "stream"
    MODELS = "models"
    VALIDATE = "validate"
    CREDITS = "credits"
    GENERATION_STATS = "generation_stats"
    EMBEDDINGS = "embeddings"

    CORE = frozenset({CHAT, STREAM, MODELS, VALIDATE})


class CallOptions(Record):
    """Per-call switches read by the layers around a provider.

    ``cache``: ``True`` caches this chat call (chat is not cached unless
    asked), ``False`` neither reads nor writes the cache, ``None`` follows the
    config. ``extra`` carries options for third-party layers.
    """

    __slots__ = ("cache", "cache_ttl", "extra")

    def __init__(
        self, cache: bool | None = None, cache_ttl: float | None = None, extra: dict[str, Any] | None = None
    ) -> None:
        self.cache = cache
        self.cache_ttl = cache_ttl
        self.extra: dict[str, Any] = {} if extra is None else extra


class Provider(ABC):
    """One LLM service. Subclasses set ``name`` and implement the abstract methods."""

    #: The name the provider is registered and configured under ("openrouter").
    name: ClassVar[str]
    #: Its settings model; ``create_provider`` validates config against it.
    settings_model: ClassVar[type[ProviderSettings]] = ProviderSettings
    #: Environment variables ``{env_prefix}{FIELD}`` fill settings (``OPENROUTER_API_KEY``).
    env_prefix: ClassVar[str] = ""
    capabilities: ClassVar[frozenset[str]] = Capability.CORE
    #: Whether the provider can run without an API key (a local server).
    requires_api_key: ClassVar[bool] = True

    settings: ProviderSettings

    def __init__(self, settings: ProviderSettings | None = None, **fields: Any) -> None:
        if settings is None:
            from .config import validate_settings

            settings = validate_settings(self.settings_model, fields, source=f"{type(self).__name__}(...)")
        elif fields:
            raise ConfigurationError("pass either a settings object or keyword fields, not both")
        self.settings = settings
        #: The instance name, which differs from ``name`` when one provider
        #: type is configured twice (``[providers.groq] type = "openai"``).
        self.instance_name: str = self.name

    # ------------------------------------------------------------------ core operations

    @abstractmethod
    def execute(self, request: RequestLike, *, options: CallOptions | None = None) -> ChatResponse:
        """Send a chat request and return the whole response."""

    @abstractmethod
    def stream_execute(self, request: RequestLike, *, options: CallOptions | None = None) -> ChatStream:
        """Send a chat request and stream the response.

        The request is sent (and retried) before this returns, so HTTP errors
        raise here; errors after the first chunk raise from iteration.
        """

    @abstractmethod
    def list_models(self, *, options: CallOptions | None = None) -> ModelList:
        """The models the service offers, with pricing."""

    @abstractmethod
    def validate_config(self) -> ValidationReport:
        """Check the settings, then the key against the service. Never raises for a bad key."""

    # ------------------------------------------------------------------ optional operations

    def get_credits(self, *, options: CallOptions | None = None) -> Credits:
        raise CapabilityNotSupportedError(Capability.CREDITS, provider=self.instance_name)

    def get_generation_stats(self, generation_id: str, *, options: CallOptions | None = None) -> GenerationStats:
        raise CapabilityNotSupportedError(Capability.GENERATION_STATS, provider=self.instance_name)

    def embed(
        self, request: EmbeddingRequest | dict[str, Any], *, options: CallOptions | None = None
    ) -> EmbeddingResponse:
        raise CapabilityNotSupportedError(Capability.EMBEDDINGS, provider=self.instance_name)

    def supports(self, capability: str) -> bool:
        return capability in self.capabilities

    # ------------------------------------------------------------------ identity and lifecycle

    @property
    def base_url(self) -> str:
        return self.settings.base_url or ""

    def close(self) -> None:
        """Release connections and threads. The provider cannot be used afterwards."""

    def __enter__(self) -> Provider:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        # Never the settings: they hold the key.
        return f"<{type(self).__name__} {self.instance_name!r} base_url={self.base_url!r}>"
