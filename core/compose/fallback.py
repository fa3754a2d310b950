"""Fallback chains: try (provider, model) pairs in order until one answers.

::

    chain = FallbackProvider([
        (create_provider("openrouter"), "anthropic/claude-3.5-sonnet"),
        (create_provider("anthropic"), "claude-3-5-sonnet-latest"),
        (create_provider("local"), None),          # None: keep the request's model
    ])
    reply = chain.execute({"messages": [...]})
    reply.meta.answered_by      # "anthropic/claude-3-5-sonnet-latest"
    reply.meta.fallback         # one record per attempt, failures included

The chain moves on only for errors whose ``availability`` flag is set (open
breaker, timeout, connection failure, 5xx, 429, a stream that broke): the
next service may well answer those. A client error (bad request, bad key,
unknown model) is raised at once, because every other member would refuse
it too and hiding it would hide a bug.

Streams are committed once their first chunk with content reaches the
caller (see DESIGN.md, "streaming rule"). Until then a failure, including a
429 or an ``error`` event the service sends inside an HTTP 200 stream,
moves on to the next member; LiteLLM cannot fall back on a streamed 429
(its issue #20870). Chunks that carry nothing (a role-only first delta) are
held back while the chain waits for a real one, so they commit nothing.

Each member is called through its own provider object: pass the layered
providers ``create_provider`` returns and every attempt goes through that
member's breaker and is counted by its metrics. The attempts are also
listed on the result (``meta.fallback``) and passed to ``on_attempt``.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from ..account import ValidationReport
from ..catalog import ModelList
from ..errors import ConfigurationError, LLMRelayError
from ..models import ChatRequest, ChatResponse
from ..provider import CORE_OPERATIONS, CallOptions, Provider, RequestLike
from ..settings import ProviderSettings
from ..stream import ChatStream, StreamChunk

__all__ = ["FallbackAttempt", "FallbackProvider", "FallbackTarget", "is_availability_error"]

log = logging.getLogger("llmrelay.fallback")


def is_availability_error(error: BaseException) -> bool:
    """The default rule: fall back when the service is not answering, never for client errors."""
    return isinstance(error, LLMRelayError) and error.availability


@dataclass(frozen=True, slots=True)
class FallbackTarget:
    """One member of a chain; ``model=None`` sends the request's own model."""

    provider: Provider
    model: str | None = None

    @property
    def label(self) -> str:
        return f"{self.provider.instance_name}/{self.model}" if self.model else self.provider.instance_name


@dataclass(frozen=True, slots=True)
class FallbackAttempt:
    """What happened when one member was tried."""

    index: int
    provider: str
    model: str | None
    outcome: str  # "answered", "failed" (moved on), "raised" (client error, not moved on)
    error_type: str | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


AttemptCallback = Callable[[FallbackAttempt], None]


def _has_content(chunk: StreamChunk) -> bool:
    return bool(chunk.text or chunk.reasoning or chunk.tool_calls or chunk.finish_reason or chunk.usage)


class FallbackProvider(Provider):
    """A provider over an ordered list of (provider, model) that falls back on availability errors.

    Thread-safe if its members are; it keeps no per-call state of its own.
    """

    name = "fallback"
    requires_api_key: ClassVar[bool] = False
    capabilities = CORE_OPERATIONS

    def __init__(
        self,
        chain: Sequence[FallbackTarget | tuple[Provider, str | None] | Provider],
        *,
        should_fallback: Callable[[BaseException], bool] = is_availability_error,
        on_attempt: AttemptCallback | None = None,
    ) -> None:
        super().__init__(ProviderSettings())
        targets = []
        for position, member in enumerate(chain):
            if isinstance(member, FallbackTarget):
                targets.append(member)
            elif isinstance(member, Provider):
                targets.append(FallbackTarget(member))
            elif isinstance(member, tuple) and len(member) == 2 and isinstance(member[0], Provider):
                targets.append(FallbackTarget(member[0], member[1]))
            else:
                raise ConfigurationError(
                    f"fallback chain member #{position + 1} must be a provider or a (provider, model) pair, "
                    f"got {type(member).__name__}"
                )
        if not targets:
            raise ConfigurationError("a fallback chain needs at least one (provider, model)")
        self.targets: list[FallbackTarget] = targets
        self.should_fallback = should_fallback
        self.on_attempt = on_attempt

    # ------------------------------------------------------------------ bookkeeping

    def _request_for(self, target: FallbackTarget, request: ChatRequest) -> ChatRequest:
        if target.model is None or target.model == request.model:
            return request
        return request.model_copy(update={"model": target.model})

    def _note(self, attempts: list[FallbackAttempt], attempt: FallbackAttempt) -> None:
        attempts.append(attempt)
        if attempt.outcome != "answered":
            log.info(
                "fallback: %s failed (%s); %s",
                attempt.provider,
                attempt.error_type,
                "trying the next one" if attempt.outcome == "failed" else "not retrying a client error",
            )
        if self.on_attempt is not None:
            self.on_attempt(attempt)

    def _failure(
        self,
        index: int,
        target: FallbackTarget,
        model: str | None,
        error: BaseException,
        attempts: list[FallbackAttempt],
    ) -> None:
        """Record a failed attempt; re-raise unless the chain should move on."""
        moving_on = self.should_fallback(error)
        self._note(
            attempts,
            FallbackAttempt(
                index,
                target.provider.instance_name,
                model,
                "failed" if moving_on else "raised",
                type(error).__name__,
                str(error),
            ),
        )
        if not moving_on:
            _attach(error, attempts)
            raise error

    # ------------------------------------------------------------------ operations

    def execute(self, request: RequestLike, *, options: CallOptions | None = None) -> ChatResponse:
        chat = ChatRequest.coerce(request)
        attempts: list[FallbackAttempt] = []
        last_error: BaseException | None = None
        for index, target in enumerate(self.targets):
            sent = self._request_for(target, chat)
            try:
                response = target.provider.execute(sent, options=options)
            except Exception as error:
                self._failure(index, target, sent.model, error, attempts)
                last_error = error
                continue
            self._note(attempts, FallbackAttempt(index, target.provider.instance_name, sent.model, "answered"))
            _mark(response.meta, target, sent.model, attempts)
            return response
        assert last_error is not None
        _attach(last_error, attempts)
        raise last_error

    def stream_execute(self, request: RequestLike, *, options: CallOptions | None = None) -> ChatStream:
        chat = ChatRequest.coerce(request)
        attempts: list[FallbackAttempt] = []
        last_error: BaseException | None = None
        for index, target in enumerate(self.targets):
            sent = self._request_for(target, chat)
            held: list[StreamChunk] = []
            inner: ChatStream | None = None
            try:
                inner = target.provider.stream_execute(sent, options=options)
                # Read until a chunk with content: nothing has reached the caller yet,
                # so a failure here can still move on to the next member.
                for chunk in inner:
                    held.append(chunk)
                    if _has_content(chunk):
                        break
            except Exception as error:
                if inner is not None:
                    inner.close()
                self._failure(index, target, sent.model, error, attempts)
                last_error = error
                continue
            self._note(attempts, FallbackAttempt(index, target.provider.instance_name, sent.model, "answered"))
            outer = ChatStream(
                _chain(held, inner), provider=inner.provider, model=inner.model or sent.model, close=inner.close
            )
            outer.meta = inner.meta
            _mark(outer.meta, target, sent.model, attempts)
            return outer
        assert last_error is not None
        _attach(last_error, attempts)
        raise last_error

    def list_models(self, *, options: CallOptions | None = None) -> ModelList:
        """The first member's models that can be listed (the chain falls back here too)."""
        last_error: BaseException | None = None
        for target in self.targets:
            try:
                return target.provider.list_models(options=options)
            except Exception as error:
                if not self.should_fallback(error):
                    raise
                last_error = error
        assert last_error is not None
        raise last_error

    def validate_config(self) -> ValidationReport:
        """Valid when every member is: a chain with a broken member fails only when it is needed."""
        problems = []
        reports = [t.provider.validate_config() for t in self.targets]
        for target, report in zip(self.targets, reports, strict=True):
            if not report.ok:
                problems.append(f"{target.label}: {report.message}")
        failing = next((r for r in reports if not r.ok), None)
        if failing is None:
            return ValidationReport(
                provider=self.instance_name,
                outcome="valid",
                message=f"all {len(self.targets)} members of the chain are valid",
            )
        return ValidationReport(
            provider=self.instance_name, outcome=failing.outcome, message="; ".join(problems), problems=problems
        )

    def close(self) -> None:
        closed: set[int] = set()
        for target in self.targets:
            if id(target.provider) not in closed:
                closed.add(id(target.provider))
                target.provider.close()

    def __repr__(self) -> str:
        return f"<FallbackProvider {self.instance_name!r} [{' -> '.join(t.label for t in self.targets)}]>"


def _chain(held: list[StreamChunk], inner: ChatStream) -> Iterator[StreamChunk]:
    # Iterating ``inner`` (not its raw chunks) keeps the member's own stream
    # bookkeeping and its layers' done-callbacks working.
    return itertools.chain(held, inner)


def _mark(meta: Any, target: FallbackTarget, model: str | None, attempts: list[FallbackAttempt]) -> None:
    meta.answered_by = f"{target.provider.instance_name}/{model}" if model else target.provider.instance_name
    # ResponseMeta allows extra fields: the attempt log rides along with the result.
    meta.fallback = [a.as_dict() for a in attempts]


def _attach(error: BaseException, attempts: list[FallbackAttempt]) -> None:
    log = [a.as_dict() for a in attempts]
    # Whatever the chain re-raises carries the log, an error of llmrelay's or not.
    error.fallback_attempts = log  # type: ignore[attr-defined]  # set on any exception type
    if len(attempts) > 1 and hasattr(error, "add_note"):
        tried = ", ".join(f"{a['provider']} ({a['error_type']})" for a in log)
        error.add_note(f"fallback chain tried: {tried}")
