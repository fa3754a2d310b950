"""The layers wrapped around every provider call, and the provider that runs them.

A pluggy ``wrapper`` hookimpl cannot return a value instead of the inner
call, so a cache hit could not skip the upstream request that way. Plugins
instead contribute :class:`LayerSpec` objects (through the
``llmrelay_register_layers`` hook); :class:`LayeredProvider` builds one
chain of :class:`Layer` objects per provider, once, and every call then
costs a plain method call per layer::

    caller
      -> metrics   (position 100: outermost, so it counts cache hits and breaker rejections)
      -> cache     (position 200: a hit returns here, no upstream call)
      -> breaker   (position 300: open = fail fast, no network)
      -> provider  (HTTP, retries, timeouts)

A layer sees a :class:`Call` and a ``proceed`` function for the rest of the
chain. It may return without calling ``proceed`` (cache hit), raise before
it (open breaker), or call it and look at the result. For
``stream_execute`` the result is a :class:`~llmrelay.core.stream.ChatStream`;
a layer observes it with ``stream.add_done_callback`` rather than wrapping
its iterator, so streams pay nothing per chunk per layer.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from pydantic import BaseModel

from .deferred import Deferred
from .provider import CallOptions, Provider, RequestLike
from .records import Record
from .settings import default_settings

if TYPE_CHECKING:
    from .account import Credits, GenerationStats, ValidationReport
    from .catalog import ModelList
    from .embeddings import EmbeddingRequest, EmbeddingResponse
    from .models import ChatRequest, ChatResponse
    from .stream import ChatStream

__all__ = [
    "Call",
    "Handler",
    "Layer",
    "LayerContext",
    "LayerSpec",
    "LayeredProvider",
    "Operation",
    "Position",
]


class Operation:
    EXECUTE = "execute"
    STREAM = "stream_execute"
    LIST_MODELS = "list_models"
    VALIDATE = "validate_config"
    CREDITS = "get_credits"
    GENERATION_STATS = "get_generation_stats"
    EMBED = "embed"

    ALL = (EXECUTE, STREAM, LIST_MODELS, VALIDATE, CREDITS, GENERATION_STATS, EMBED)


class Position:
    """Where a layer sits: smaller is further out (sees the call first)."""

    OUTERMOST = 0
    METRICS = 100
    CACHE = 200
    BREAKER = 300
    INNERMOST = 1000


class Call(Record):
    """One provider operation on its way through the layers.

    ``request`` is a ChatRequest, an EmbeddingRequest, a generation id or
    ``None``. ``notes`` is scratch space layers use to talk to each other about
    this call ("cache" -> "hit", "breaker" -> "rejected", "attempts" -> 2, ...).
    """

    __slots__ = ("operation", "provider", "request", "model", "options", "notes")

    def __init__(
        self,
        operation: str,
        provider: str,
        request: Any = None,
        model: str | None = None,
        options: CallOptions | None = None,
        notes: dict[str, Any] | None = None,
    ) -> None:
        self.operation = operation
        self.provider = provider
        self.request = request
        self.model = model
        self.options = CallOptions() if options is None else options
        self.notes: dict[str, Any] = {} if notes is None else notes


Handler = Callable[[Call], Any]
SettingsT = TypeVar("SettingsT", bound=BaseModel)


class Layer(ABC):
    """One cross-cutting concern around provider calls."""

    name: str = "layer"

    @abstractmethod
    def handle(self, call: Call, proceed: Handler) -> Any:
        """Return the call's result, usually ``proceed(call)`` (possibly observed)."""

    def bind_downstream(self, proceed: Handler) -> None:
        """Receive the handler for the rest of the chain below this layer.

        Called once when the chain is built. A layer that makes calls of its
        own (a cache refreshing in the background, warming up at start)
        keeps it, so those calls pass through the layers beneath it too.
        """

    def close(self) -> None:
        """Stop background work and release resources (called by the provider's close)."""


class LayerContext(Record):
    """What a layer factory gets to build the layer for one provider.

    ``settings`` is an instance of the spec's ``settings_model``, or a dict
    when it has none.
    """

    __slots__ = ("provider", "settings", "provider_name", "base_url")
    _repr_fields = ("provider_name", "base_url", "settings")

    def __init__(self, provider: Provider, settings: Any, provider_name: str, base_url: str) -> None:
        self.provider = provider
        self.settings = settings
        self.provider_name = provider_name
        self.base_url = base_url

    def settings_as(self, model: type[SettingsT]) -> SettingsT:
        """The settings as ``model``: already validated by ``create_provider``, or
        validated here when a layer factory is called directly with a dict."""
        if isinstance(self.settings, model):
            return self.settings
        if not self.settings:
            return default_settings(model)
        return model.model_validate(self.settings)


# Immutable records are NamedTuples, not frozen dataclasses: a frozen
# dataclass compiles five generated methods when its module is imported
# (about 4.7M instructions against 1M), on the path of every provider build.
class LayerSpec(NamedTuple):
    """A plugin's contribution to the pipeline.

    ``factory(context)`` builds the layer for one provider, or returns
    ``None`` to stay out of that provider's chain. ``settings_model``
    validates the plugin's section of the config file (``[plugins.<name>]``).
    """

    name: str
    position: int
    factory: Callable[[LayerContext], Layer | None]
    settings_model: type[BaseModel] | None = None
    enabled_by_default: bool = True
    description: str = ""


class LayeredProvider(Provider):
    """A provider with its layers: what ``create_provider`` returns.

    It has the inner provider's name, settings and capabilities; every
    operation builds a :class:`Call` and runs it through the chain.
    """

    def __init__(self, inner: Provider, layers: list[Layer]) -> None:
        # Deliberately not calling Provider.__init__: settings are the inner's.
        self.inner = inner
        self.settings = inner.settings
        self.instance_name = inner.instance_name
        self.layers = list(layers)
        self._chain = self._build_chain()

    # Identity is the inner provider's; read per instance, not per class.
    @property  # type: ignore[override]
    def name(self) -> str:  # type: ignore[override]
        return self.inner.name

    @property  # type: ignore[override]
    def capabilities(self) -> frozenset[str]:  # type: ignore[override]
        return self.inner.capabilities

    def _build_chain(self) -> Handler:
        inner = self.inner

        def terminal(call: Call) -> Any:
            op = call.operation
            if op == Operation.EXECUTE:
                return inner.execute(call.request, options=call.options)
            if op == Operation.STREAM:
                return inner.stream_execute(call.request, options=call.options)
            if op == Operation.LIST_MODELS:
                return inner.list_models(options=call.options)
            if op == Operation.VALIDATE:
                return inner.validate_config()
            if op == Operation.CREDITS:
                return inner.get_credits(options=call.options)
            if op == Operation.GENERATION_STATS:
                return inner.get_generation_stats(call.request, options=call.options)
            if op == Operation.EMBED:
                return inner.embed(call.request, options=call.options)
            raise ValueError(f"unknown operation {op!r}")

        handler: Handler = terminal
        for layer in reversed(self.layers):
            layer.bind_downstream(handler)
            handler = _bind(layer, handler)
        return handler

    def layer(self, name: str) -> Layer | None:
        """The layer a plugin contributed, by name (``provider.layer("metrics")``)."""
        for layer in self.layers:
            if layer.name == name:
                return layer
        return None

    def _run(self, operation: str, request: Any, model: str | None, options: CallOptions | None) -> Any:
        call = Call(operation, self.instance_name, request, model, options or CallOptions())
        return self._chain(call)

    def _chat_request(self, request: RequestLike) -> ChatRequest:
        return _CHAT_REQUEST.get().coerce(
            request, default_model=self.settings.default_model, provider=self.instance_name
        )

    def execute(self, request: RequestLike, *, options: CallOptions | None = None) -> ChatResponse:
        chat = self._chat_request(request)
        return self._run(Operation.EXECUTE, chat, chat.model, options)  # type: ignore[no-any-return]

    def stream_execute(self, request: RequestLike, *, options: CallOptions | None = None) -> ChatStream:
        chat = self._chat_request(request)
        return self._run(Operation.STREAM, chat, chat.model, options)  # type: ignore[no-any-return]

    def list_models(self, *, options: CallOptions | None = None) -> ModelList:
        return self._run(Operation.LIST_MODELS, None, None, options)  # type: ignore[no-any-return]

    def validate_config(self) -> ValidationReport:
        return self._run(Operation.VALIDATE, None, None, None)  # type: ignore[no-any-return]

    def get_credits(self, *, options: CallOptions | None = None) -> Credits:
        return self._run(Operation.CREDITS, None, None, options)  # type: ignore[no-any-return]

    def get_generation_stats(self, generation_id: str, *, options: CallOptions | None = None) -> GenerationStats:
        return self._run(Operation.GENERATION_STATS, generation_id, None, options)  # type: ignore[no-any-return]

    def embed(
        self, request: EmbeddingRequest | dict[str, Any], *, options: CallOptions | None = None
    ) -> EmbeddingResponse:
        from .embeddings import EmbeddingRequest  # kept out of the provider-build path

        embedding = request if isinstance(request, EmbeddingRequest) else EmbeddingRequest.model_validate(request)
        return self._run(Operation.EMBED, embedding, embedding.model, options)  # type: ignore[no-any-return]

    def close(self) -> None:
        errors: list[BaseException] = []
        for layer in self.layers:
            try:
                layer.close()
            except Exception as exc:  # close every layer even if one fails
                errors.append(exc)
        self.inner.close()
        if errors:
            raise errors[0]

    def __repr__(self) -> str:
        names = ", ".join(layer.name for layer in self.layers) or "no layers"
        return f"<LayeredProvider {self.instance_name!r} [{names}] -> {self.inner!r}>"


# The chat model loads with the first chat call, not with the build (deferred.py).
_CHAT_REQUEST: Deferred[type[ChatRequest]] = Deferred("llmrelay.core.models:ChatRequest")


def _bind(layer: Layer, proceed: Handler) -> Handler:
    handle = layer.handle

    def run(call: Call) -> Any:
        return handle(call, proceed)

    return run
