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

The contract between layers is declared here, as typed fields of
:class:`Call`: ``call.cache`` (a ``CacheOutcome``, set by the cache
layer), ``call.breaker`` (a :class:`BreakerReport`, set by the breaker
layer) and ``call.attempts``; the upstream's own attempts are on the
result's ``meta.attempts`` or the error's ``attempts``. Plugins never import
each other. ``call.notes`` is left to third-party layers.

A ``Call[ChatResponse]`` is a call whose result is a ChatResponse: each
operation's result type is carried through the chain to the caller.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Literal, Protocol, TypeVar, Union, cast

from pydantic import BaseModel

from .provider import CallOptions, Operation, Provider, RequestLike
from .settings import default_settings

if TYPE_CHECKING:
    from .account import Credits, GenerationStats, ValidationReport
    from .catalog import ModelList
    from .embeddings import EmbeddingRequest, EmbeddingResponse
    from .models import ChatRequest, ChatResponse
    from .stream import ChatStream

__all__ = [
    "BreakerDecision",
    "BreakerReport",
    "CacheOutcome",
    "Call",
    "Handler",
    "Layer",
    "LayerContext",
    "LayerSpec",
    "LayeredProvider",
    "Operation",
    "Position",
    "Result",
]

R = TypeVar("R")
SettingsT = TypeVar("SettingsT", bound=BaseModel)

#: What an operation returns, one type per :class:`Operation`.
Result = Union[
    "ChatResponse", "ChatStream", "ModelList", "ValidationReport", "Credits", "GenerationStats", "EmbeddingResponse"
]


class Position:
    """Where a layer sits: smaller is further out (sees the call first)."""

    OUTERMOST = 0
    METRICS = 100
    CACHE = 200
    BREAKER = 300
    INNERMOST = 1000


# --------------------------------------------------------------------------- what layers tell each other


# Outcomes are plain strings checked by mypy, not enums: they are what the
# result's ``meta.cache``, the metrics and the log events carry anyway, and
# reading an enum member or its ``.value`` costs about 0.2 us on Python 3.11.

#: What the cache layer did with a call; also the result's ``meta.cache``.
#:
#: ``"hit"``: a fresh entry answered (or another instance's load, waited for);
#: ``"stale"``: an expired entry answered (stale_while_revalidate, stale_if_error);
#: ``"miss"``: the upstream answered and the result was stored; ``"bypass"``:
#: not cached (an uncached operation, caching off, ``options.cache=False``);
#: ``"coalesced"``: shared another caller's failed load, no upstream request of
#: its own; ``"refresh"``: the cache's own background call.
CacheOutcome = Literal["hit", "stale", "miss", "bypass", "coalesced", "refresh"]

#: What the breaker layer decided before the call: ``"admitted"``, ``"probe"``
#: (one of a half-open breaker's probe calls) or ``"rejected"`` (failed fast
#: with CircuitOpenError, no network).
BreakerDecision = Literal["admitted", "probe", "rejected"]


@dataclass(slots=True)
class BreakerReport:
    """What the breaker layer tells the layers outside it about one call.

    ``name`` and ``model`` say which breaker; ``state`` is its state once the
    call settled (``"closed"``, ``"open"`` or ``"half_open"``; a stream
    settles when it ends); ``events`` are the breakers' state changes since
    the last call carried them, as the plain dicts listeners get (each change
    is carried by exactly one call).
    """

    decision: BreakerDecision
    name: str
    model: str | None = None
    state: str = "closed"
    events: tuple[dict[str, Any], ...] = ()


@dataclass(slots=True)
class Call(Generic[R]):
    """One provider operation on its way through the layers; ``Call[R]`` ends in a result of type ``R``.

    ``request`` is a ChatRequest (``execute``, ``stream_execute``), an
    EmbeddingRequest (``embed``), a generation id (``get_generation_stats``)
    or ``None``.

    Set by llmrelay's layers for the layers outside them:

    * ``cache``: what the cache did (``None`` when no cache layer saw the call);
    * ``breaker``: what the breaker did (``None`` when no breaker guarded it);
    * ``attempts``: upstream attempts, when a layer knows them better than
      the result's ``meta.attempts`` or the error's ``attempts`` (``0`` for a
      caller that shared another caller's load).

    ``notes`` is scratch space for third-party layers; llmrelay's own layers
    never read or write it.
    """

    operation: Operation
    provider: str
    request: Any = None
    model: str | None = None
    options: CallOptions = field(default_factory=CallOptions)
    notes: dict[str, Any] = field(default_factory=dict)
    cache: CacheOutcome | None = None
    breaker: BreakerReport | None = None
    attempts: int | None = None


class Handler(Protocol):
    """The rest of the chain below a layer: ``proceed(call)`` returns the call's result."""

    def __call__(self, call: Call[R], /) -> R: ...


# --------------------------------------------------------------------------- layers


class Layer(ABC):
    """One cross-cutting concern around provider calls."""

    name: str = "layer"

    @abstractmethod
    def handle(self, call: Call[R], proceed: Handler) -> R:
        """Return the call's result, usually ``proceed(call)`` (possibly observed)."""

    def bind_downstream(self, proceed: Handler) -> None:  # noqa: B027  # optional: most layers make no calls of their own
        """Receive the handler for the rest of the chain below this layer.

        Called once when the chain is built. A layer that makes calls of its
        own (a cache refreshing in the background, warming up at start)
        keeps it, so those calls pass through the layers beneath it too.
        """

    def close(self) -> None:  # noqa: B027  # optional: most layers hold nothing
        """Stop background work and release resources (called by the provider's close)."""


@dataclass(slots=True)
class LayerContext:
    """What a layer factory gets to build the layer for one provider.

    ``settings`` is an instance of the spec's ``settings_model``, or a dict
    when it has none.
    """

    provider: Provider = field(repr=False)
    settings: Any
    provider_name: str
    base_url: str

    def settings_as(self, model: type[SettingsT]) -> SettingsT:
        """The settings as ``model``: already validated by ``create_provider``, or
        validated here when a layer factory is called directly with a dict."""
        if isinstance(self.settings, model):
            return self.settings
        if not self.settings:
            return default_settings(model)
        return model.model_validate(self.settings)


@dataclass(frozen=True, slots=True)
class LayerSpec:
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


# --------------------------------------------------------------------------- the layered provider


class LayeredProvider(Provider):
    """A provider with its layers around it: what ``create_provider`` returns.

    It composes the provider it wraps (``inner``): it carries the inner's
    identity (name, instance name, capabilities, settings), and each
    operation builds a :class:`Call` and runs it through the chain, whose
    end calls the inner provider's method.
    """

    def __init__(self, inner: Provider, layers: Sequence[Layer]) -> None:
        self.inner = inner
        self.name = inner.name  # before Provider.__init__, which reads it
        self.capabilities = inner.capabilities
        super().__init__(inner.settings)
        self.instance_name = inner.instance_name
        self.layers = list(layers)
        self._chain = self._build_chain()

    def _build_chain(self) -> Handler:
        inner = self.inner

        def terminal(call: Call[R]) -> R:
            method = _TERMINALS.get(call.operation)
            if method is None:
                raise ValueError(f"unknown operation {call.operation!r}")
            # The one place the operation stands for its result type: each
            # operation's method below builds a Call of that type.
            return cast(R, method(inner, call))

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

    def _call(self, operation: Operation, request: Any, model: str | None, options: CallOptions | None) -> Call[Any]:
        return Call(operation, self.instance_name, request, model, options or CallOptions())

    def _chat_request(self, request: RequestLike) -> ChatRequest:
        return _chat_request_model().coerce(
            request, default_model=self.settings.default_model, provider=self.instance_name
        )

    def execute(self, request: RequestLike, *, options: CallOptions | None = None) -> ChatResponse:
        chat = self._chat_request(request)
        call: Call[ChatResponse] = self._call(Operation.EXECUTE, chat, chat.model, options)
        return self._chain(call)

    def stream_execute(self, request: RequestLike, *, options: CallOptions | None = None) -> ChatStream:
        chat = self._chat_request(request)
        call: Call[ChatStream] = self._call(Operation.STREAM, chat, chat.model, options)
        return self._chain(call)

    def list_models(self, *, options: CallOptions | None = None) -> ModelList:
        call: Call[ModelList] = self._call(Operation.LIST_MODELS, None, None, options)
        return self._chain(call)

    def validate_config(self) -> ValidationReport:
        call: Call[ValidationReport] = self._call(Operation.VALIDATE, None, None, None)
        return self._chain(call)

    def get_credits(self, *, options: CallOptions | None = None) -> Credits:
        call: Call[Credits] = self._call(Operation.CREDITS, None, None, options)
        return self._chain(call)

    def get_generation_stats(self, generation_id: str, *, options: CallOptions | None = None) -> GenerationStats:
        call: Call[GenerationStats] = self._call(Operation.GENERATION_STATS, generation_id, None, options)
        return self._chain(call)

    def embed(
        self, request: EmbeddingRequest | dict[str, Any], *, options: CallOptions | None = None
    ) -> EmbeddingResponse:
        model = _embedding_request_model()
        embedding = request if isinstance(request, model) else model.model_validate(request)
        call: Call[EmbeddingResponse] = self._call(Operation.EMBED, embedding, embedding.model, options)
        return self._chain(call)

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


def _bind(layer: Layer, proceed: Handler) -> Handler:
    handle = layer.handle

    def run(call: Call[R]) -> R:
        return handle(call, proceed)

    return run


# The end of every chain: the inner provider's method for the call's operation.
_TERMINALS: dict[Operation, Callable[[Provider, Call[Any]], Result]] = {
    Operation.EXECUTE: lambda provider, call: provider.execute(call.request, options=call.options),
    Operation.STREAM: lambda provider, call: provider.stream_execute(call.request, options=call.options),
    Operation.LIST_MODELS: lambda provider, call: provider.list_models(options=call.options),
    Operation.VALIDATE: lambda provider, call: provider.validate_config(),
    Operation.CREDITS: lambda provider, call: provider.get_credits(options=call.options),
    Operation.GENERATION_STATS: lambda provider, call: provider.get_generation_stats(
        call.request, options=call.options
    ),
    Operation.EMBED: lambda provider, call: provider.embed(call.request, options=call.options),
}


# Building a provider runs no chat: the request models load with the first
# call that needs them (each function's body runs once).
@functools.cache
def _chat_request_model() -> type[ChatRequest]:
    from .models import ChatRequest

    return ChatRequest


@functools.cache
def _embedding_request_model() -> type[EmbeddingRequest]:
    from .embeddings import EmbeddingRequest

    return EmbeddingRequest
