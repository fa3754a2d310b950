"""The metrics layer (position ``Position.METRICS``: outermost).

Sitting outside the cache and the breaker, it counts every call once,
including those the cache answered and those the breaker rejected; it
learns what they did from the typed fields of the call (``call.cache``,
``call.breaker``, ``call.attempts``), and the upstream's attempts from the
result's ``meta.attempts`` or the error's ``attempts``. A stream is
counted when it ends, from its done-callback: time to first token and
tokens per second come from the stream's own timestamps, so the layer adds
nothing per chunk.
"""

from __future__ import annotations

import logging
from typing import Any, TypeVar

from llmrelay.core.errors import LLMRelayError
from llmrelay.core.models import Usage
from llmrelay.core.pipeline import BreakerReport, Call, Handler, Layer, Operation

from .collector import CallRecord, MetricsCollector
from .events import EVENT_ATTRIBUTE, log
from .registry import SnapshotWriter

__all__ = ["MetricsLayer"]

R = TypeVar("R")

_STREAM = Operation.STREAM
_LEVELS = {"DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARNING": logging.WARNING}


class MetricsLayer(Layer):
    name = "metrics"

    def __init__(
        self,
        provider: str,
        collector: MetricsCollector,
        *,
        log_level: str = "DEBUG",
        writer: SnapshotWriter | None = None,
    ) -> None:
        self.provider = provider
        self.collector = collector
        self.writer = writer
        self._level = _LEVELS.get(log_level)
        self._last_breaker: str | None = None

    def handle(self, call: Call[R], proceed: Handler) -> R:
        clock = self.collector.clock
        start = clock()
        try:
            result = proceed(call)
        except BaseException as exc:
            end = clock()
            self._finish(call, end, end - start, None, exc)
            raise
        end = clock()
        if call.operation == _STREAM and hasattr(result, "add_done_callback"):
            setup = end - start
            result.add_done_callback(lambda stream: self._stream_done(call, setup, stream))
        else:
            self._finish(call, end, end - start, result, None)
        return result

    # ------------------------------------------------------------------ recording

    def _finish(self, call: Call[Any], now: float, latency: float, result: object, error: BaseException | None) -> None:
        meta = getattr(result, "meta", None)
        usage = getattr(result, "usage", None)
        # Only token usage counts: ValidationReport.usage is the key's spend in USD.
        if usage is not None and isinstance(usage, Usage):
            prompt, completion, cost = usage.prompt_tokens or 0, usage.completion_tokens or 0, usage.cost
        else:
            prompt = completion = 0
            cost = None
        error_type = None if error is None else type(error).__name__
        attempts = call.attempts
        if attempts is None:
            attempts = _attempts(meta, error)
        cache = call.cache
        if cache is None and meta is not None:
            cache = getattr(meta, "cache", None)
        report = call.breaker
        breaker = _decision(report, error_type)
        self.collector.count(
            call.provider,
            call.model,
            call.operation,
            latency,
            error_type,
            attempts,
            prompt,
            completion,
            cost,
            cache,
            breaker,
            None,
            None,
            False,
            now,
        )
        if report is not None and (report.events or report.name is not self._last_breaker):
            self._after(call, report)
        if self._level is not None and log.isEnabledFor(self._level):
            self._log(
                CallRecord(
                    call.provider,
                    call.model,
                    call.operation,
                    latency,
                    error_type=error_type,
                    attempts=attempts,
                    prompt_tokens=prompt,
                    completion_tokens=completion,
                    cost=cost,
                    cache=cache,
                    breaker=breaker,
                )
            )

    def _stream_done(self, call: Call[Any], setup: float, stream: Any) -> None:
        started = stream.started_at
        ended = stream.ended_at if stream.ended_at is not None else started
        first = stream.first_chunk_at
        usage = stream.usage if isinstance(stream.usage, Usage) else None
        tokens_per_second = None
        completion = getattr(usage, "completion_tokens", 0) or 0
        if first is not None and completion and ended > first:
            tokens_per_second = completion / (ended - first)
        error = stream.error
        error_type = None if error is None else type(error).__name__
        report = call.breaker
        record = CallRecord(
            call.provider,
            call.model,
            call.operation,
            setup + (ended - started),
            error_type=error_type,
            cancelled=stream.outcome == "cancelled",
            attempts=call.attempts or _attempts(stream.meta, error),
            ttft=None if first is None else setup + (first - started),
            tokens_per_second=tokens_per_second,
            prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
            completion_tokens=completion,
            cost=getattr(usage, "cost", None),
            cache=call.cache or getattr(stream.meta, "cache", None),
            breaker=_decision(report, error_type),
        )
        self.collector.record(record)
        if report is not None:
            self._after(call, report)
        if self._level is not None and log.isEnabledFor(self._level):
            self._log(record)

    def _after(self, call: Call[Any], report: BreakerReport) -> None:
        """The breaker and the state changes the breaker layer reported on the call."""
        collector = self.collector
        for event in report.events:
            collector.observe_breaker_event(event)
        collector.observe_breaker(report.name, call.provider, report.model, report.state)
        # Later calls through the same breaker need this only when they
        # carry state changes (the breaker writes the same name object).
        self._last_breaker = report.name

    def _log(self, record: CallRecord) -> None:
        event = record.as_event()
        log.log(
            self._level,  # type: ignore[arg-type]  # not None: checked before the record was made
            "%s %s %s %s in %.1f ms",
            record.provider,
            record.model or "-",
            record.operation,
            event["outcome"],
            event["latency_ms"],
            extra={EVENT_ATTRIBUTE: event},
        )

    def close(self) -> None:
        if self.writer is not None:
            self.writer.write()

    def __repr__(self) -> str:
        return f"<MetricsLayer {self.provider!r}>"


def _decision(report: BreakerReport | None, error_type: str | None) -> str | None:
    """What the breaker decided; a rejection by a breaker that does not report (a third party's) too."""
    if report is not None:
        return report.decision
    return "rejected" if error_type == "CircuitOpenError" else None


def _attempts(meta: Any, error: BaseException | None) -> int:
    """Attempts made, from the result's meta or the error (when the call did not say)."""
    if meta is not None:
        attempts = getattr(meta, "attempts", None)
    else:
        attempts = error.attempts if isinstance(error, LLMRelayError) else None
    return attempts if isinstance(attempts, int) and attempts > 0 else 1
