"""The :class:`Provider` interface every LLM service implements, and the names of its operations.

A provider is constructed from its settings (``OpenRouterProvider(api_key=...)``
or ``create_provider("openrouter")``) and offers the same operations whatever
the service behind it. Each operation has one name, an :class:`Operation`
(``Operation.EXECUTE == "execute"``, the name of the method); the pipeline,
the metrics, the cache settings and ``capabilities`` all use it. Optional
operations are listed in ``capabilities``; calling one a provider lacks
raises :class:`~llmrelay.core.errors.CapabilityNotSupportedError`.

Providers are thread-safe: agent backends share one instance across threads.

Each operation has an async twin (``aexecute``, ``astream_execute``,
``alist_models``, ``avalidate_config``, ``aget_credits``,
``aget_generation_stats``, ``aembed``) defined here once, for every
provider: it runs the sync method *of the same object* on llmrelay's
bounded thread pool (:mod:`llmrelay.core.aio`), so on the provider
``create_provider`` returns it passes through every layer, and an asyncio
program awaits it without blocking its event loop.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import Enum
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, Union

from .errors import CapabilityNotSupportedError, ConfigurationError
from .settings import ProviderSettings, validate_settings

if TYPE_CHECKING:
    # The chat model and the stream load with the first chat call, like the
    # other operations' result models: building a provider runs no chat.
    from .account import Credits, GenerationStats, ValidationReport
    from .async_stream import AsyncChatStream
    from .catalog import ModelList
    from .embeddings import EmbeddingRequest, EmbeddingResponse
    from .models import ChatRequest, ChatResponse
    from .stream import ChatStream

__all__ = ["CORE_OPERATIONS", "CallOptions", "Capability", "Operation", "Provider", "RequestLike"]

RequestLike = Union["ChatRequest", dict[str, Any]]


class Operation(str, Enum):
    """One operation of the :class:`Provider` interface; its value is the method's name.

    A ``str``: ``Operation.EXECUTE == "execute"``, so metrics labels, cache
    keys and config keys (``[plugins.cache.operations.list_models]``) read
    the same as before it was an enum. ``Operation("chat")`` also accepts the
    older capability names (:class:`Capability`).
    """

    EXECUTE = "execute"
    STREAM = "stream_execute"
    LIST_MODELS = "list_models"
    VALIDATE = "validate_config"
    CREDITS = "get_credits"
    GENERATION_STATS = "get_generation_stats"
    EMBED = "embed"

    def __str__(self) -> str:
        # The value, as a plain str prints, on every Python version (f-strings, %s, logs).
        return self.value

    @property
    def capability_name(self) -> str:
        """The older name of the operation as a capability ("chat", "embeddings"), as error messages say it."""
        return _CAPABILITY_NAMES[self]

    @classmethod
    def _missing_(cls, value: object) -> Operation | None:
        # Enum's documented hook for values that are not a member's: the older capability names.
        return _BY_CAPABILITY_NAME.get(value) if isinstance(value, str) else None


_CAPABILITY_NAMES: dict[Operation, str] = {
    Operation.EXECUTE: "chat",
    Operation.STREAM: "stream",
    Operation.LIST_MODELS: "models",
    Operation.VALIDATE: "validate",
    Operation.CREDITS: "credits",
    Operation.GENERATION_STATS: "generation_stats",
    Operation.EMBED: "embeddings",
}
_BY_CAPABILITY_NAME = {name: operation for operation, name in _CAPABILITY_NAMES.items()}

#: What every provider offers.
CORE_OPERATIONS: frozenset[Operation] = frozenset(
    {Operation.EXECUTE, Operation.STREAM, Operation.LIST_MODELS, Operation.VALIDATE}
)


class Capability:
    """The older names of the operations, kept so existing code reads on: each one *is* an :class:`Operation`.

    ``Capability.CHAT is Operation.EXECUTE``; ``provider.supports(Capability.CREDITS)``,
    ``supports(Operation.CREDITS)``, ``supports("get_credits")`` and
    ``supports("credits")`` are the same question.
    """

    CHAT = Operation.EXECUTE
    STREAM = Operation.STREAM
    MODELS = Operation.LIST_MODELS
    VALIDATE = Operation.VALIDATE
    CREDITS = Operation.CREDITS
    GENERATION_STATS = Operation.GENERATION_STATS
    EMBEDDINGS = Operation.EMBED

    CORE = CORE_OPERATIONS


@dataclass(slots=True)
class CallOptions:
    """Per-call switches read by the layers around a provider.

    ``cache``: ``True`` caches this chat call (chat is not cached unless
    asked), ``False`` neither reads nor writes the cache, ``None`` follows the
    config. ``extra`` carries options for third-party layers.
    """

    cache: bool | None = None
    cache_ttl: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Provider(ABC):
    """One LLM service. Subclasses set ``name`` and implement the abstract methods.

    Its identity — ``name``, ``instance_name``, ``capabilities``, ``settings``
    — is read from the instance, so a provider that wraps another (the
    :class:`~llmrelay.core.pipeline.LayeredProvider` ``create_provider``
    returns) carries the identity of the one it wraps.
    """

    #: The name the provider is registered and configured under ("openrouter").
    #: A subclass sets it as a class attribute.
    name: str
    #: The operations it offers; a subclass sets it as a class attribute.
    capabilities: frozenset[Operation] = CORE_OPERATIONS
    #: Its settings model; ``create_provider`` validates config against it.
    settings_model: ClassVar[type[ProviderSettings]] = ProviderSettings
    #: Environment variables ``{env_prefix}{FIELD}`` fill settings (``OPENROUTER_API_KEY``).
    env_prefix: ClassVar[str] = ""
    #: Whether the provider can run without an API key (a local server).
    requires_api_key: ClassVar[bool] = True

    settings: ProviderSettings
    #: The instance name, which differs from ``name`` when one provider type
    #: is configured twice (``[providers.groq] type = "openai"``).
    instance_name: str

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        declared = cls.__dict__.get("capabilities")
        if isinstance(declared, (set, frozenset, list, tuple)):
            # A provider written against the older names ({"chat", "credits"}) gets the same operations.
            cls.capabilities = frozenset(_operation(cls, item) for item in declared)

    def __init__(self, settings: ProviderSettings | None = None, **fields: Any) -> None:
        if settings is None:
            settings = validate_settings(self.settings_model, fields, source=f"{type(self).__name__}(...)")
        elif fields:
            raise ConfigurationError("pass either a settings object or keyword fields, not both")
        self.settings = settings
        self.instance_name = self.name

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
        raise CapabilityNotSupportedError(Operation.CREDITS.capability_name, provider=self.instance_name)

    def get_generation_stats(self, generation_id: str, *, options: CallOptions | None = None) -> GenerationStats:
        raise CapabilityNotSupportedError(Operation.GENERATION_STATS.capability_name, provider=self.instance_name)

    def embed(
        self, request: EmbeddingRequest | dict[str, Any], *, options: CallOptions | None = None
    ) -> EmbeddingResponse:
        raise CapabilityNotSupportedError(Operation.EMBED.capability_name, provider=self.instance_name)

    # ------------------------------------------------------------------ async twins
    #
    # Each runs the sync method of ``self`` on llmrelay's thread pool (aio is
    # imported on first use: a sync program never loads asyncio). Cancelling
    # the awaiting task returns at once; the sync call it started finishes on
    # its worker, bounded by the provider's timeouts, and its result is dropped
    # (README, "Async"). A cancelled stream closes its connection at once.

    async def aexecute(self, request: RequestLike, *, options: CallOptions | None = None) -> ChatResponse:
        """:meth:`execute`, awaited: runs on llmrelay's thread pool."""
        from .aio import run_sync

        return await run_sync(partial(self.execute, request, options=options))

    def astream_execute(self, request: RequestLike, *, options: CallOptions | None = None) -> AsyncChatStream:
        """:meth:`stream_execute` for asyncio: ``async with`` / ``async for`` / ``await`` the stream it returns.

        Nothing is sent until the stream is awaited, entered or iterated
        (:class:`~llmrelay.core.async_stream.AsyncChatStream`); HTTP errors
        raise there, errors after the first chunk from ``async for``.
        """
        from .async_stream import AsyncChatStream

        return AsyncChatStream(partial(self.stream_execute, request, options=options))

    async def alist_models(self, *, options: CallOptions | None = None) -> ModelList:
        """:meth:`list_models`, awaited."""
        from .aio import run_sync

        return await run_sync(partial(self.list_models, options=options))

    async def avalidate_config(self) -> ValidationReport:
        """:meth:`validate_config`, awaited."""
        from .aio import run_sync

        return await run_sync(self.validate_config)

    async def aget_credits(self, *, options: CallOptions | None = None) -> Credits:
        """:meth:`get_credits`, awaited."""
        from .aio import run_sync

        return await run_sync(partial(self.get_credits, options=options))

    async def aget_generation_stats(self, generation_id: str, *, options: CallOptions | None = None) -> GenerationStats:
        """:meth:`get_generation_stats`, awaited."""
        from .aio import run_sync

        return await run_sync(partial(self.get_generation_stats, generation_id, options=options))

    async def aembed(
        self, request: EmbeddingRequest | dict[str, Any], *, options: CallOptions | None = None
    ) -> EmbeddingResponse:
        """:meth:`embed`, awaited."""
        from .aio import run_sync

        return await run_sync(partial(self.embed, request, options=options))

    def supports(self, operation: Operation | str) -> bool:
        """Whether the provider offers ``operation`` (an :class:`Operation`, its value, or its older name)."""
        try:
            return Operation(operation) in self.capabilities
        except ValueError:
            return False

    # ------------------------------------------------------------------ identity and lifecycle

    @property
    def base_url(self) -> str:
        return self.settings.base_url or ""

    def close(self) -> None:  # noqa: B027  # optional: most providers have nothing to release
        """Release connections and threads. The provider cannot be used afterwards."""

    def __enter__(self) -> Provider:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    async def aclose(self) -> None:
        """:meth:`close`, awaited (closing may join a layer's background thread)."""
        from .aio import run_sync

        await run_sync(self.close)

    async def __aenter__(self) -> Provider:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        # Never the settings: they hold the key.
        return f"<{type(self).__name__} {self.instance_name!r} base_url={self.base_url!r}>"


def _operation(cls: type, item: object) -> Operation:
    try:
        return Operation(item)
    except ValueError:
        known = ", ".join(op.value for op in Operation)
        raise TypeError(f"{cls.__name__}.capabilities: {item!r} is not an operation (one of {known})") from None
