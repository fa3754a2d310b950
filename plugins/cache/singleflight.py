"""Per-key single-flight inside one process.

N threads asking for the same key at once make one call: the first runs it,
the others wait for it and get its result, or its error (a copy of it, so
each caller's traceback is its own).

Every cache miss goes through here, almost always without company, so the
uncontended path takes no lock of its own: ``dict.setdefault`` decides the
leader atomically, and a flight's "done" signal is a plain lock the leader
holds while it loads (a ``threading.Event`` costs a condition and a lock to
build, and a lock round trip to set).
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

__all__ = ["SingleFlight"]

T = TypeVar("T")


class _Flight(Generic[T]):
    __slots__ = ("running", "result", "error")

    def __init__(self) -> None:
        # Held while the load runs; a follower waits by taking it and handing it on.
        self.running = threading.Lock()
        self.running.acquire()
        self.result: T | None = None
        self.error: BaseException | None = None

    def wait(self) -> None:
        self.running.acquire()
        self.running.release()


class SingleFlight(Generic[T]):
    """Coalesces concurrent calls with the same key."""

    def __init__(self) -> None:
        self._flights: dict[str, _Flight[T]] = {}

    def do(self, key: str, fn: Callable[..., T], *args: Any) -> tuple[T, bool]:
        """``(fn(*args), leader)``: ``leader`` is False for callers that waited for another's call."""
        mine: _Flight[T] = _Flight()
        # Atomic for str keys (their hash and equality run no Python code): of
        # callers racing on one key, exactly one finds its own flight stored.
        flight = self._flights.setdefault(key, mine)
        if flight is not mine:
            flight.wait()
            if flight.error is not None:
                raise _copy_error(flight.error)
            return flight.result, False  # type: ignore[return-value]  # set: its flight ended without an error
        try:
            mine.result = fn(*args)
        except BaseException as exc:
            mine.error = exc
            raise
        finally:
            # Unregister before signalling: a caller arriving after this starts
            # a fresh load rather than reusing a finished one.
            del self._flights[key]
            mine.running.release()
        return mine.result, True


def _copy_error(error: BaseException) -> BaseException:
    try:
        return copy.copy(error)
    except Exception:  # an exception type that cannot be copied: share it
        return error
