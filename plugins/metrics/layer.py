"""The metrics layer (position ``Position.METRICS``: outermost).

Sitting outside the cache and the breaker, it counts every call once,
including those the cache answered and those the breaker rejected; it
learns what they did from ``call.notes`` ("cache", "breaker",
"breaker_state", "breaker_name", "breaker_events", "attempts"). A stream is
counted when it ends, from its done-callback: time to first token and
tokens per second come from the stream's own timestamps, so the layer adds
nothing per chunk.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from llmrelay.core.pipeline import Call, Handler, Layer, Operation

from .collector import CallRecord, MetricsCollector
from .registry import SnapshotWriter

__all__ = ["MetricsLayer"]

log = logging.getLogger("llmrelay.metrics")

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

    def handle(self, call: Call, proceed: Handler) -> Any:
        clock = self.collector.clock
        start = clock()
        try:
            result = proceed(call)
        except BaseException as exc:
            self._finish(call, clock() - start, None, exc)
            raise
        if call.operation == Operation.STREAM and hasattr(result, "add_done_callback"):
            setup = clock() - start
            result.add_done_callback(lambda stream: self._stream_done(call, setup, stream))
        else:
            self._finish(call, clock() - start, result, None)
        return result

    # ------------------------------------------------------------------ recording

    def _finish(self, call: Call, latency: float, result: Any, error: BaseException | None) -> None:
        notes = call.notes
        meta = getattr(result, "meta", None)
        usage = getattr(result, "usage", None)
        record = CallRecord(
            call.provider,
            call.model,
            call.operation,
            latency,
            error_type=None if error is None else type(error).__name__,
            attempts=_attempts(notes, meta, error),
            prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
            completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
            cost=_cost(usage),
            cache=notes.get("cache") or getattr(meta, "cache", None),
            breaker=_breaker(notes, error),
        )
        self._commit(call, record)

    def _stream_done(self, call: Call, setup: float, stream: Any) -> None:
        started = stream.started_at
        ended = stream.ended_at if stream.ended_at is not None else started
        first = stream.first_chunk_at
        usage = stream.usage
        tokens_per_second = None
        completion = getattr(usage, "completion_tokens", 0) or 0
        if first is not None and completion and ended > first:
            tokens_per_second = completion / (ended - first)
        error = stream.error
        record = CallRecord(
            call.provider,
            call.model,
            call.operation,
            setup + (ended - started),
            error_type=None if error is None else type(error).__name__,
            cancelled=stream.outcome == "cancelled",
            attempts=_attempts(call.notes, stream.meta, error),
            ttft=None if first is None else setup + (first - started),
            tokens_per_second=tokens_per_second,
            prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
            completion_tokens=completion,
            cost=_cost(usage),
            cache=call.notes.get("cache") or getattr(stream.meta, "cache", None),
            breaker=_breaker(call.notes, error),
        )
        self._commit(call, record)

    def _commit(self, call: Call, record: CallRecord) -> None:
        collector = self.collector
        collector.record(record)
        notes = call.notes
        events = notes.get("breaker_events")
        if events:
            for event in events:
                collector.observe_breaker_event(event)
        state = notes.get("breaker_state")
        if state is not None:
            name = notes.get("breaker_name") or call.provider
            collector.observe_breaker_state(name, call.provider, notes.get("breaker_model"), state)
        level = self._level
        if level is not None and log.isEnabledFor(level):
            event = record.as_event()
            log.log(
                level,
                "%s %s %s %s in %.1f ms",
                record.provider, record.model or "-", record.operation, event["outcome"], event["latency_ms"],
                extra={"llmrelay_event": event},
            )

    def close(self) -> None:
        if self.writer is not None:
            self.writer.write()

    def __repr__(self) -> str:
        return f"<MetricsLayer {self.provider!r}>"


def _attempts(notes: dict[str, Any], meta: Any, error: BaseException | None) -> int:
    attempts = notes.get("attempts")
    if attempts is None and meta is not None:
        attempts = getattr(meta, "attempts", None)
    if attempts is None and error is not None:
        attempts = getattr(error, "attempts", None)
    return attempts if isinstance(attempts, int) and attempts > 0 else 1


def _cost(usage: Any) -> Decimal | None:
    cost = getattr(usage, "cost", None)
    if cost is None:
        return None
    return cost if isinstance(cost, Decimal) else Decimal(str(cost))


def _breaker(notes: dict[str, Any], error: BaseException | None) -> str | None:
    status = notes.get("breaker")
    if status is None and error is not None and type(error).__name__ == "CircuitOpenError":
        return "rejected"  # a breaker that does not write notes (a third party's)
    return status  # type: ignore[no-any-return]
