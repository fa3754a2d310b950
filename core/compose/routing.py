"""Routing one request to one of several providers, by model name or by content.

A :class:`Router` is a :class:`~llmrelay.core.provider.Provider` over named
providers. Its rules turn what a request holds into a :class:`Route`
(provider name + the model name the upstream must see)::

    router = Router(
        {"openai": create_provider("openai"), "anthropic": create_provider("anthropic")},
        rules=[
            ModelSuffixRule("-openai", provider="openai"),        # glm-4.5-openai    -> openai,    glm-4.5
            ModelSuffixRule("-anthropic", provider="anthropic"),  # glm-4.5-anthropic -> anthropic, glm-4.5
            ContentRule("images", model="glm-4.5v"),              # requests with images -> the vision model
        ],
        default_provider="openai",
    )
    router.execute({"model": "glm-4.5-anthropic", "messages": [...]})

Rules apply in order; every rule that matches rewrites the route (a suffix
rule picks the provider and strips the suffix, a later content rule swaps
the model), and a rule with ``stop=True`` ends the walk. Rules see only a
request's :class:`RequestFeatures` (model name, whether it has images or
tools), never the messages themselves, so a decision depends on those few
values alone and is cached by them: routing a request costs one dict lookup
once its shape has been seen.

Rules can also be written as config data (``rules_from_config``)::

    [{"suffix": "-openai", "provider": "openai"},
     {"prefix": "claude-", "provider": "anthropic", "strip": false},
     {"when": "images", "model": "glm-4.5v"}]
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from cachetools import LRUCache

from ..account import ValidationReport
from ..catalog import ModelInfo, ModelList
from ..errors import ConfigurationError, LLMRelayError
from ..models import ChatRequest, ChatResponse
from ..provider import CORE_OPERATIONS, CallOptions, Provider, RequestLike
from ..secrets import redact
from ..settings import ProviderSettings
from ..stream import ChatStream

__all__ = [
    "ContentRule",
    "ModelPrefixRule",
    "ModelSuffixRule",
    "RequestFeatures",
    "Route",
    "Router",
    "RoutingRule",
    "rules_from_config",
]

log = logging.getLogger("llmrelay.routing")


@dataclass(frozen=True, slots=True)
class RequestFeatures:
    """The parts of a request routing rules may look at (and the decision cache key)."""

    model: str | None
    has_images: bool
    has_tools: bool

    @classmethod
    def of(cls, request: ChatRequest) -> RequestFeatures:
        return cls(request.model, request.has_images, bool(request.tools))


@dataclass(frozen=True, slots=True)
class Route:
    """Where a request goes: the provider's name and the model it is sent with."""

    provider: str | None
    model: str | None
    rules: tuple[str, ...] = ()  # the rules that matched, in order, for logs and tests


class RoutingRule(ABC):
    """One routing rule. ``apply`` returns the rewritten route, or ``None`` if it does not match."""

    stop: bool = False

    @abstractmethod
    def apply(self, features: RequestFeatures, route: Route) -> Route | None:
        """Rewrite ``route`` for a request with these ``features``, or return ``None``."""

    @property
    @abstractmethod
    def label(self) -> str:
        """A short description for ``Route.rules`` and error messages."""


def _rewrite(route: Route, label: str, provider: str | None, model: str | None) -> Route:
    return Route(provider if provider is not None else route.provider, model, (*route.rules, label))


@dataclass(frozen=True)
class ModelSuffixRule(RoutingRule):
    """``<base><suffix>`` goes to ``provider`` as ``<base>`` (``strip=False`` keeps the name whole)."""

    suffix: str
    provider: str
    strip: bool = True
    stop: bool = False

    def __post_init__(self) -> None:
        if not self.suffix:
            raise ConfigurationError("ModelSuffixRule: suffix must not be empty")

    def apply(self, features: RequestFeatures, route: Route) -> Route | None:
        model = route.model
        if model is None or not model.endswith(self.suffix) or model == self.suffix:
            return None
        return _rewrite(route, self.label, self.provider, model[: -len(self.suffix)] if self.strip else model)

    @property
    def label(self) -> str:
        return f"suffix {self.suffix!r} -> {self.provider}"


@dataclass(frozen=True)
class ModelPrefixRule(RoutingRule):
    """``<prefix><base>`` goes to ``provider`` as ``<base>`` (``strip=False`` keeps the name whole)."""

    prefix: str
    provider: str
    strip: bool = True
    stop: bool = False

    def __post_init__(self) -> None:
        if not self.prefix:
            raise ConfigurationError("ModelPrefixRule: prefix must not be empty")

    def apply(self, features: RequestFeatures, route: Route) -> Route | None:
        model = route.model
        if model is None or not model.startswith(self.prefix) or model == self.prefix:
            return None
        return _rewrite(route, self.label, self.provider, model[len(self.prefix) :] if self.strip else model)

    @property
    def label(self) -> str:
        return f"prefix {self.prefix!r} -> {self.provider}"


Predicate = Callable[[RequestFeatures], bool]

_NAMED_CONDITIONS: dict[str, Predicate] = {
    "images": lambda f: f.has_images,
    "text": lambda f: not f.has_images,
    "tools": lambda f: f.has_tools,
    "always": lambda f: True,
}


@dataclass(frozen=True)
class ContentRule(RoutingRule):
    """Choose a model and/or provider by what the request holds.

    ``when`` is ``"images"``, ``"text"`` (no images), ``"tools"``, ``"always"``
    or a function of :class:`RequestFeatures`. A function must depend on the
    features only, since decisions are cached by them.
    """

    when: str | Predicate
    model: str | None = None
    provider: str | None = None
    stop: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.when, str) and self.when not in _NAMED_CONDITIONS:
            raise ConfigurationError(
                f"ContentRule: unknown condition {self.when!r}; use one of {sorted(_NAMED_CONDITIONS)} "
                "or a function of RequestFeatures"
            )
        if self.model is None and self.provider is None:
            raise ConfigurationError("ContentRule: give a model, a provider or both to route to")

    def apply(self, features: RequestFeatures, route: Route) -> Route | None:
        check = _NAMED_CONDITIONS[self.when] if isinstance(self.when, str) else self.when
        if not check(features):
            return None
        return _rewrite(route, self.label, self.provider, self.model if self.model is not None else route.model)

    @property
    def label(self) -> str:
        when = self.when if isinstance(self.when, str) else getattr(self.when, "__name__", "predicate")
        target = "/".join(part for part in (self.provider, self.model) if part)
        return f"{when} -> {target}"


def rules_from_config(items: Iterable[Mapping[str, Any]]) -> list[RoutingRule]:
    """Build rules from config data: ``{"suffix"|"prefix": ..., "provider": ...}`` or ``{"when": ...}``."""
    rules: list[RoutingRule] = []
    for position, item in enumerate(items):
        where = f"routing rule #{position + 1}"
        if not isinstance(item, Mapping):
            raise ConfigurationError(f"{where}: expected a table, got {type(item).__name__}")
        data = dict(item)
        kinds = [k for k in ("suffix", "prefix", "when") if k in data]
        if len(kinds) != 1:
            raise ConfigurationError(f"{where}: give exactly one of 'suffix', 'prefix' or 'when' (got {sorted(data)})")
        kind = kinds[0]
        allowed = {
            "suffix": {"suffix", "provider", "strip", "stop"},
            "prefix": {"prefix", "provider", "strip", "stop"},
            "when": {"when", "model", "provider", "stop"},
        }[kind]
        unknown = set(data) - allowed
        if unknown:
            raise ConfigurationError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
        if kind != "when" and not isinstance(data.get("provider"), str):
            raise ConfigurationError(f'{where}: a {kind} rule needs provider = "<provider name>"')
        if kind == "suffix":
            rules.append(ModelSuffixRule(**data))
        elif kind == "prefix":
            rules.append(ModelPrefixRule(**data))
        else:
            rules.append(ContentRule(**data))
    return rules


class Router(Provider):
    """A provider that sends each request to one of several providers, by rules.

    ``providers`` maps names (as rules use them) to providers, usually the
    layered ones ``create_provider`` returns, so each routed call passes
    through that provider's own cache, breaker and metrics. Thread-safe.
    """

    name = "router"
    requires_api_key: ClassVar[bool] = False
    capabilities = CORE_OPERATIONS

    def __init__(
        self,
        providers: Mapping[str, Provider],
        rules: Iterable[RoutingRule] = (),
        *,
        default_provider: str | None = None,
        cache_size: int = 1024,
    ) -> None:
        super().__init__(ProviderSettings())
        if not providers:
            raise ConfigurationError("Router needs at least one provider")
        self.providers = dict(providers)
        self.rules = list(rules)
        self.default_provider = default_provider
        for rule in self.rules:
            target = getattr(rule, "provider", None)
            if target is not None and target not in self.providers:
                raise ConfigurationError(
                    f"routing rule {rule.label!r} names provider {target!r}, which the router does not have "
                    f"(it has {sorted(self.providers)})"
                )
        if default_provider is not None and default_provider not in self.providers:
            raise ConfigurationError(
                f"Router: default_provider {default_provider!r} is not one of {sorted(self.providers)}"
            )
        self._cache: LRUCache[RequestFeatures, Route] = LRUCache(maxsize=cache_size)
        self._lock = threading.Lock()
        self.cache_hits = 0
        self.cache_misses = 0

    # ------------------------------------------------------------------ deciding

    def route(self, request: RequestLike) -> Route:
        """Where this request would go, without sending it."""
        return self._decide(RequestFeatures.of(ChatRequest.coerce(request)))

    def _decide(self, features: RequestFeatures) -> Route:
        with self._lock:
            cached = self._cache.get(features)
            if cached is not None:
                self.cache_hits += 1
                return cached
            self.cache_misses += 1
        route = Route(self.default_provider, features.model)
        for rule in self.rules:
            rewritten = rule.apply(features, route)
            if rewritten is not None:
                route = rewritten
                if rule.stop:
                    break
        if route.provider is None:
            raise ConfigurationError(
                f"no routing rule matched model {features.model!r} and the router has no default_provider "
                f"(add a rule for it, or pass default_provider=one of {sorted(self.providers)})"
            )
        with self._lock:
            self._cache[features] = route
        return route

    def _dispatch(self, request: RequestLike) -> tuple[Provider, ChatRequest, Route]:
        chat = ChatRequest.coerce(request)
        route = self._decide(RequestFeatures.of(chat))
        if route.model != chat.model:
            chat = chat.model_copy(update={"model": route.model})
        return self.providers[route.provider], chat, route  # type: ignore[index]  # _decide never returns a route without one

    # ------------------------------------------------------------------ operations

    def execute(self, request: RequestLike, *, options: CallOptions | None = None) -> ChatResponse:
        provider, chat, route = self._dispatch(request)
        response = provider.execute(chat, options=options)
        response.meta.answered_by = f"{route.provider}/{route.model}"
        return response

    def stream_execute(self, request: RequestLike, *, options: CallOptions | None = None) -> ChatStream:
        provider, chat, route = self._dispatch(request)
        stream = provider.stream_execute(chat, options=options)
        stream.meta.answered_by = f"{route.provider}/{route.model}"
        return stream

    def list_models(self, *, options: CallOptions | None = None) -> ModelList:
        """Every provider's models, each tagged with the router's name for its provider.

        A provider that cannot list its models (down, or a bad key) leaves its
        models out rather than failing the whole list: it is named in
        ``unavailable`` with the error's message, and logged. Only when no
        provider answers is the first one's error raised.
        """
        models: list[ModelInfo] = []
        unavailable: dict[str, str] = {}
        first_error: LLMRelayError | None = None
        for name, provider in self.providers.items():
            try:
                listed = provider.list_models(options=options)
            except LLMRelayError as error:
                first_error = first_error or error
                unavailable[name] = redact(str(error))
                log.warning("router %s: %s could not list its models: %s", self.instance_name, name, unavailable[name])
                continue
            models.extend(model.model_copy(update={"provider": name}) for model in listed)
        if first_error is not None and len(unavailable) == len(self.providers):
            raise first_error
        return ModelList(models=models, provider=self.instance_name, unavailable=unavailable)

    def validate_config(self) -> ValidationReport:
        """Valid when every provider is; otherwise the first problem found, naming its provider."""
        problems: list[str] = []
        first_failure: ValidationReport | None = None
        for name, provider in self.providers.items():
            report = provider.validate_config()
            if not report.ok:
                problems.append(f"{name}: {report.message}")
                first_failure = first_failure or report
        if first_failure is None:
            return ValidationReport(
                provider=self.instance_name, outcome="valid", message=f"all {len(self.providers)} providers are valid"
            )
        return ValidationReport(
            provider=self.instance_name, outcome=first_failure.outcome, message="; ".join(problems), problems=problems
        )

    def cache_info(self) -> dict[str, int]:
        with self._lock:
            return {"hits": self.cache_hits, "misses": self.cache_misses, "size": len(self._cache)}

    def close(self) -> None:
        for provider in self.providers.values():
            provider.close()

    def __repr__(self) -> str:
        return f"<Router {self.instance_name!r} providers={sorted(self.providers)} rules={len(self.rules)}>"
