"""Per-key single-flight inside one process.

N threads asking for the same key at once make one call: the first runs it,
the others wait for it and get its result, or its error (a copy of it, so
each caller's traceback is its own).
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["SingleFlight"]

T = TypeVar("T")


class _Flight(Generic[T]):
    __slots__ = ("done", "result", "error")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: T | None = None
        self.error: BaseException | None = None


class SingleFlight(Generic[T]):
    """Coalesces concurrent calls with the same key."""

    def __init__(self) -> None:
        self._flights: dict[str, _Flight[T]] = {}
        self._lock = threading.Lock()

    def do(self, key: str, fn: Callable[[], T]) -> tuple[T, bool]:
        """``(result, leader)``: ``leader`` is False for callers that waited for another's call."""
        with self._lock:
            flight = self._flights.get(key)
            leader = flight is None
            if flight is None:
                flight = self._flights[key] = _Flight()
        if not leader:
            flight.done.wait()
            if flight.error is not None:
                raise _copy_error(flight.error)
            return flight.result, False  # type: ignore[return-value]
        try:
            flight.result = fn()
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            with self._lock:
                del self._flights[key]
            flight.done.set()
        return flight.result, True


def _copy_error(error: BaseException) -> BaseException:
    try:
        return copy.copy(error)
    except Exception:  # an exception type that cannot be copied: share it
        return error
