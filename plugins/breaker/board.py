"""The breakers of one provider: one per provider, or one per model with ``per_model``.

The board also collects state-change events as plain dicts so the breaker
layer can hand them to whoever sits outside it through ``call.notes``
(the metrics plugin counts them without importing this package), and
forwards them to process-wide listeners registered with :func:`listen`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from .circuit import BreakerListener, CircuitBreaker, SharedState
from .settings import BreakerSettings

__all__ = ["BreakerBoard", "listen", "unlisten"]

log = logging.getLogger("llmrelay.breaker")

_global_listeners: list[BreakerListener] = []
_global_lock = threading.Lock()

# Events waiting for a call to carry them out; bounded so a provider nobody
# calls any more cannot grow it without limit.
_MAX_PENDING = 1000


def listen(listener: BreakerListener) -> None:
    """Call ``listener(event_dict)`` for every state change of every breaker in this process."""
    global _global_listeners
    with _global_lock:
        _global_listeners = [*_global_listeners, listener]


def unlisten(listener: BreakerListener) -> None:
    global _global_listeners
    with _global_lock:
        _global_listeners = [fn for fn in _global_listeners if fn is not listener]


class BreakerBoard:
    """Finds (or makes) the breaker for a call and gathers their events."""

    def __init__(
        self,
        provider: str,
        settings: BreakerSettings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        shared: SharedState | None = None,
    ) -> None:
        self.provider = provider
        self.settings = settings or BreakerSettings()
        self.shared = shared
        self._clock = clock
        self._lock = threading.Lock()
        self._breakers: dict[str | None, CircuitBreaker] = {}
        self._listeners: list[BreakerListener] = []
        self.pending: deque[dict[str, Any]] = deque(maxlen=_MAX_PENDING)

    def get(self, model: str | None = None) -> CircuitBreaker:
        """The breaker guarding calls to ``model`` (the provider's one unless ``per_model``)."""
        key = model if self.settings.per_model else None
        breaker = self._breakers.get(key)
        if breaker is not None:
            return breaker
        with self._lock:
            breaker = self._breakers.get(key)
            if breaker is None:
                name = self.provider if key is None else f"{self.provider}/{key}"
                breaker = CircuitBreaker(
                    name,
                    self.settings,
                    provider=self.provider,
                    model=key,
                    clock=self._clock,
                    shared=self.shared,
                    listeners=[self._on_event],
                )
                self._breakers[key] = breaker
            return breaker

    def breakers(self) -> list[CircuitBreaker]:
        with self._lock:
            return list(self._breakers.values())

    def set_clock(self, clock: Callable[[], float]) -> None:
        """Use ``clock`` (seconds, monotonic) for every breaker, present and future (tests)."""
        with self._lock:
            self._clock = clock
            for breaker in self._breakers.values():
                breaker._clock = clock

    def add_listener(self, listener: BreakerListener) -> None:
        """Call ``listener(event_dict)`` on every state change of this board's breakers."""
        with self._lock:
            self._listeners = [*self._listeners, listener]

    def drain_events(self) -> list[dict[str, Any]]:
        """State changes not yet handed out, oldest first; each is handed out once."""
        events = []
        pending = self.pending
        while pending:
            try:
                events.append(pending.popleft())
            except IndexError:  # another thread took the last one
                break
        return events

    def _on_event(self, event: Mapping[str, Any]) -> None:
        self.pending.append(dict(event))
        for listener in (*self._listeners, *_global_listeners):
            try:
                listener(event)
            except Exception:
                log.exception("circuit breaker listener %r failed", listener)

    def snapshot(self) -> list[dict[str, Any]]:
        return [breaker.snapshot() for breaker in self.breakers()]

    def close(self) -> None:
        close = getattr(self.shared, "close", None)
        if close is not None:
            close()
