"""The breaker as a pipeline layer (position ``Position.BREAKER``, inside the cache).

What it tells the layers outside it is ``call.breaker``, a
:class:`~llmrelay.core.pipeline.BreakerReport`:

- ``decision``: ``"rejected"`` when it failed the call fast, ``"admitted"``
  or ``"probe"`` otherwise;
- ``state``: the breaker's state once the call is settled
  (``"closed"`` / ``"open"`` / ``"half_open"``), with ``name`` and
  ``model`` saying which breaker;
- ``events``: state changes since the last call carried them, as the plain
  dicts listeners get (each change is carried by exactly one call).

For a stream the permit is settled in the stream's done-callback, which
fires exactly once whether the stream completed, failed or was closed
early by the caller, so no permit leaks. A failure after the first chunk
counts; a stream closed early counts as a success when chunks had arrived,
and as nothing when none had.
"""

from __future__ import annotations

from typing import Any, TypeVar

from llmrelay.core.errors import CircuitOpenError
from llmrelay.core.pipeline import BreakerReport, Call, Handler, Layer, Operation

from .board import BreakerBoard
from .circuit import CircuitBreaker, CircuitState, Outcome, Permit

__all__ = ["BreakerLayer"]

R = TypeVar("R")

# validate_config reports reachability itself and never raises for an
# unreachable service: it must reach the service even with the circuit open.
_UNGUARDED = frozenset({Operation.VALIDATE})
_STREAM, _LIST_MODELS = Operation.STREAM, Operation.LIST_MODELS


class BreakerLayer(Layer):
    name = "breaker"

    def __init__(self, board: BreakerBoard) -> None:
        self.board = board
        # One breaker for the whole provider unless per_model: skip the lookup.
        self._single: CircuitBreaker | None = None if board.settings.per_model else board.get(None)

    def handle(self, call: Call[R], proceed: Handler) -> R:
        operation = call.operation
        if operation in _UNGUARDED:
            return proceed(call)
        breaker = self._single or self.board.get(call.model)
        try:
            permit = breaker.acquire()
        except CircuitOpenError:
            report = call.breaker = BreakerReport("rejected", breaker.name, breaker.model)
            self._settle(report, breaker)
            raise
        report = call.breaker = BreakerReport("probe" if permit.probe else "admitted", breaker.name, breaker.model)
        try:
            result = proceed(call)
        except BaseException as exc:
            permit.record(exc)
            self._settle(report, breaker)
            raise
        if operation == _STREAM and hasattr(result, "add_done_callback"):
            result.add_done_callback(lambda stream: self._stream_done(stream, permit, report, breaker))
        else:
            # A provider's built-in model list stands in for an unreachable
            # service: no evidence of health, yet no error to count either.
            fallback = operation == _LIST_MODELS and getattr(result, "fallback", False) is True
            breaker._record(permit, Outcome.IGNORED if fallback else Outcome.SUCCESS)
            self._settle(report, breaker)
        return result

    def _stream_done(self, stream: Any, permit: Permit, report: BreakerReport, breaker: CircuitBreaker) -> None:
        if stream.outcome == "cancelled":
            if stream.first_chunk_at is not None:
                permit.success()
            else:
                permit.release()
        else:
            permit.record(stream.error)  # None when completed
        self._settle(report, breaker)

    def _settle(self, report: BreakerReport, breaker: CircuitBreaker) -> None:
        """The breaker's state once the call settled, and the state changes waiting to be carried out."""
        state = breaker._state
        report.state = "closed" if state is CircuitState.CLOSED else breaker.state.value
        if self.board.pending:
            report.events = (*report.events, *self.board.drain_events())

    def close(self) -> None:
        self.board.close()

    def __repr__(self) -> str:
        return f"<BreakerLayer {self.board.provider!r} breakers={len(self.board.breakers())}>"
