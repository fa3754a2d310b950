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
from typing import Any

from llmrelay.core.models import Usage
from llmrelay.core.pipeline import Call, Handler, Layer, Operation

from .collector import CallRecord, MetricsCollector
from .registry import SnapshotWriter

__all__ = ["MetricsLayer"]

log = logging.getLogger("llmrelay.metrics")

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

    def handle(self, call: Call, proceed: Handler) -> Any:
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

    def _finish(self, call: Call, now: float, latency: float, result: Any, error: BaseException | None) -> None:
        notes = call.notes
        meta = getattr(result, "meta", None)
        usage = getattr(result, "usage", None)
        # Only token usage counts: ValidationReport.usage is the key's spend in USD.
        if usage is not None and isinstance(usage, Usage):
            prompt, completion, cost = usage.prompt_tokens or 0, usage.completion_tokens or 0, usage.cost
        else:
            prompt = completion = 0
            cost = None
        error_type = None if error is None else type(error).__name__
        attempts = notes.get("attempts")
        if attempts is None:
            attempts = _attempts(meta, error)
        cache = notes.get("cache")
        if cache is None and meta is not None:
            cache = getattr(meta, "cache", None)
        breaker = notes.get("breaker")
        if breaker is None and error_type == "CircuitOpenError":
            breaker = "rejected"  # a breaker that does not write notes (a third party's)
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
        if "breaker_events" in notes or notes.get("breaker_name") is not self._last_breaker:
            self._after(call, notes)
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

    def _stream_done(self, call: Call, setup: float, stream: Any) -> None:
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
        record = CallRecord(
            call.provider,
            call.model,
            call.operation,
            setup + (ended - started),
            error_type=error_type,
            cancelled=stream.outcome == "cancelled",
            attempts=call.notes.get("attempts") or _attempts(stream.meta, error),
            ttft=None if first is None else setup + (first - started),
            tokens_per_second=tokens_per_second,
            prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
            completion_tokens=completion,
            cost=getattr(usage, "cost", None),
            cache=call.notes.get("cache") or getattr(stream.meta, "cache", None),
            breaker=call.notes.get("breaker") or ("rejected" if error_type == "CircuitOpenError" else None),
        )
        self.collector.record(record)
        self._after(call, call.notes)
        if self._level is not None and log.isEnabledFor(self._level):
            self._log(record)

    def _after(self, call: Call, notes: dict[str, Any]) -> None:
        """Breakers and state changes the breaker layer left in the notes."""
        name = notes.get("breaker_name")
        if name is None:
            return
        collector = self.collector
        events = notes.get("breaker_events")
        if events:
            for event in events:
                collector.observe_breaker_event(event)
        collector.observe_breaker(
            name, call.provider, notes.get("breaker_model"), notes.get("breaker_state") or "closed"
        )
        # Later calls through the same breaker need this only when they
        # carry state changes (the breaker writes the same name object).
        self._last_breaker = name

    def _log(self, record: CallRecord) -> None:
        event = record.as_event()
        log.log(
            self._level,  # type: ignore[arg-type]
            "%s %s %s %s in %.1f ms",
            record.provider,
            record.model or "-",
            record.operation,
            event["outcome"],
            event["latency_ms"],
            extra={"llmrelay_event": event},
        )

    def close(self) -> None:
        if self.writer is not None:
            self.writer.write()

    def __repr__(self) -> str:
        return f"<MetricsLayer {self.provider!r}>"


def _attempts(meta: Any, error: BaseException | None) -> int:
    """Attempts made, from the result's meta or the error (when the notes had none)."""
    attempts = getattr(meta, "attempts", None) if meta is not None else getattr(error, "attempts", None)
    return attempts if isinstance(attempts, int) and attempts > 0 else 1
