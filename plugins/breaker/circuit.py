"""One circuit breaker: closed -> open -> half-open -> closed, with a permit / record API.

Use it around any call, with or without the provider pipeline::

    breaker = CircuitBreaker("openrouter")
    permit = breaker.acquire()          # raises CircuitOpenError when open: no call is made
    try:
        result = call_upstream()
    except BaseException as exc:
        permit.record(exc)              # counts only availability failures
        raise
    permit.record()

or ``breaker.call(fn, *args)``. Unlike pybreaker, no lock is held while the
call runs: the lock guards state changes only, and a closed breaker hands
out permits without taking it at all, so calls through one breaker never
queue behind each other.

Each permit carries the *generation* of the state it was issued in. A
transition starts a new generation, so a slow call admitted before the
circuit opened cannot close it again, and only probes admitted while
half-open decide whether it closes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from enum import Enum
from typing import Any, Protocol, TypeVar

from llmrelay.core.errors import CircuitOpenError

from .outcome import Outcome, classify
from .settings import BreakerSettings

__all__ = [
    "BreakerListener",
    "CircuitBreaker",
    "CircuitState",
    "Outcome",
    "Permit",
    "RemoteView",
    "SharedState",
    "classify",
]

log = logging.getLogger("llmrelay.breaker")

T = TypeVar("T")

#: Listeners get one plain dict per state change, so a consumer (the metrics
#: plugin, a log shipper) needs nothing from this package to read it:
#: ``{"event": "breaker.state_change", "breaker": name, "provider": ...,
#: "model": ..., "from": "closed", "to": "open", "reason": "...",
#: "retry_after": 60.0, "at": <clock>, "generation": 1}``.
BreakerListener = Callable[[Mapping[str, Any]], None]


class CircuitState(str, Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class RemoteView(Protocol):
    """What a :class:`SharedState` read found. Read-only: a frozen record satisfies it."""

    @property
    def state(self) -> str | None: ...  # "open", "closed", or None when nothing is shared yet

    @property
    def remaining(self) -> float | None: ...  # seconds left open


class SharedState(Protocol):
    """Where a fleet's breakers publish and read state (see :mod:`.shared`).

    Every method returns ``None`` when the store is unreachable; the breaker
    then carries on with its local state alone.
    """

    def read(self, name: str) -> RemoteView | None: ...

    def publish_open(self, name: str, seconds: float) -> bool | None: ...

    def publish_closed(self, name: str) -> bool | None: ...

    def try_probe_lease(self, name: str, seconds: float) -> bool | None: ...

    def release_probe_lease(self, name: str) -> bool | None: ...


class Permit:
    """Leave to make one call; record how it ended exactly once."""

    __slots__ = ("breaker", "generation", "probe", "done")

    def __init__(self, breaker: CircuitBreaker, generation: int, probe: bool) -> None:
        self.breaker = breaker
        self.generation = generation
        self.probe = probe
        self.done = False

    def record(self, error: BaseException | None = None) -> str:
        """Record the call's ending (``None`` = success); returns the :class:`Outcome` counted."""
        if error is None:
            outcome = Outcome.SUCCESS
        else:
            outcome = classify(error, count_rate_limits=self.breaker.settings.count_rate_limits)
        self.breaker._record(self, outcome)
        return outcome

    def success(self) -> None:
        self.breaker._record(self, Outcome.SUCCESS)

    def failure(self) -> None:
        self.breaker._record(self, Outcome.FAILURE)

    def release(self) -> None:
        """Give the permit back without counting the call either way."""
        self.breaker._record(self, Outcome.IGNORED)

    def __repr__(self) -> str:
        kind = "probe" if self.probe else "call"
        return f"<Permit {kind} of {self.breaker.name!r} gen={self.generation} {'done' if self.done else 'open'}>"


class CircuitBreaker:
    """A circuit breaker for one upstream (a provider, or one model of it)."""

    def __init__(
        self,
        name: str,
        settings: BreakerSettings | None = None,
        *,
        provider: str | None = None,
        model: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        shared: SharedState | None = None,
        listeners: list[BreakerListener] | None = None,
    ) -> None:
        self.name = name
        self.settings = settings or BreakerSettings()
        self.provider = provider if provider is not None else name
        self.model = model
        self._clock = clock
        self._shared = shared
        self._listeners: list[BreakerListener] = list(listeners or [])
        self._lock = threading.Lock()
        self._state = CircuitState.CLOSED
        self._generation = 0
        self._opened_at = 0.0
        self._open_for = self.settings.reset_timeout
        self._consecutive = 0
        self._window: deque[bool] = deque(maxlen=self.settings.window_size)
        self._window_full = False
        self._window_failures = 0
        self._probes_in_flight = 0
        self._probe_successes = 0
        self._next_sync = float("-inf")
        self.rejections = 0

    # ------------------------------------------------------------------ reading

    @property
    def state(self) -> CircuitState:
        """The state now; an open breaker whose timeout passed reads as half-open."""
        state = self._state
        if state is CircuitState.OPEN and self._clock() >= self._opened_at + self._open_for:
            return CircuitState.HALF_OPEN
        return state

    def retry_after(self) -> float | None:
        """Seconds until probes are admitted, or ``None`` when not open."""
        if self._state is not CircuitState.OPEN:
            return None
        return max(0.0, self._opened_at + self._open_for - self._clock())

    def snapshot(self) -> dict[str, Any]:
        """The breaker's state and counters as plain data."""
        with self._lock:
            window = len(self._window)
            return {
                "breaker": self.name,
                "provider": self.provider,
                "model": self.model,
                "state": self.state.value,
                "retry_after": self.retry_after(),
                "consecutive_failures": self._consecutive,
                "window_calls": window,
                "window_failure_rate": (self._window_failures / window) if window else 0.0,
                "rejections": self.rejections,
            }

    def add_listener(self, listener: BreakerListener) -> None:
        """Call ``listener(event_dict)`` on every state change (outside the lock)."""
        with self._lock:
            self._listeners = [*self._listeners, listener]

    def remove_listener(self, listener: BreakerListener) -> None:
        with self._lock:
            self._listeners = [fn for fn in self._listeners if fn is not listener]

    # ------------------------------------------------------------------ permits

    def acquire(self) -> Permit:
        """A permit to make one call, or :class:`CircuitOpenError` (no call must be made)."""
        # Fast path: closed, and no shared state due for a read. Reading two
        # attributes without the lock is safe: a permit from a generation
        # that ended a moment ago is recognised as stale when recorded.
        if self._state is CircuitState.CLOSED and (self._shared is None or self._clock() < self._next_sync):
            return Permit(self, self._generation, False)
        return self._acquire_slow()

    def _acquire_slow(self) -> Permit:
        now = self._clock()
        remote = None
        if self._shared is not None and self._claim_sync(now):
            remote = self._shared.read(self.name)  # network I/O, outside the lock
        events: list[dict[str, Any]] = []
        need_lease = False
        try:
            with self._lock:
                if remote is not None:
                    self._apply_remote(remote, now, events)
                permit = self._admit(now, events)
                if permit is None:
                    need_lease = True
                    generation = self._generation
        finally:
            self._notify(events)
        if not need_lease:
            return permit  # type: ignore[return-value]  # admitted (a refusal raised above)
        return self._acquire_with_lease(now, generation)

    def _admit(self, now: float, events: list[dict[str, Any]]) -> Permit | None:
        """Under the lock: a permit, ``None`` when a shared probe lease is needed, or raise."""
        if self._state is CircuitState.CLOSED:
            return Permit(self, self._generation, False)
        if self._state is CircuitState.OPEN:
            remaining = self._opened_at + self._open_for - now
            if remaining > 0:
                self._reject(remaining)
            if self._shared is not None and self._shared_usable():
                return None
            self._transition(CircuitState.HALF_OPEN, now, "reset timeout passed", events)
        if self._probes_in_flight >= self.settings.half_open_probes and now - self._opened_at >= self._open_for:
            # Probes admitted a whole reset timeout ago never reported back
            # (a permit dropped without record): start a fresh set of probes.
            self._transition(CircuitState.HALF_OPEN, now, "probe calls did not report back", events)
        if self._probes_in_flight < self.settings.half_open_probes:
            self._probes_in_flight += 1
            return Permit(self, self._generation, True)
        # Probes are in flight: their result decides, shortly.
        self._reject(min(1.0, self.settings.reset_timeout), "half-open, a probe call is in flight")
        raise AssertionError("unreachable")  # pragma: no cover

    def _acquire_with_lease(self, now: float, generation: int) -> Permit:
        assert self._shared is not None
        # One instance of the fleet probes; the others keep failing fast.
        leased = self._shared.try_probe_lease(self.name, self.settings.reset_timeout)
        events: list[dict[str, Any]] = []
        try:
            with self._lock:
                if self._generation == generation and self._state is CircuitState.OPEN:
                    if leased is False:
                        self._reject(self.settings.redis_sync_interval, "another instance is probing")
                    self._transition(CircuitState.HALF_OPEN, now, "reset timeout passed", events)
                permit = self._admit(now, events)
                if permit is None:  # re-opened meanwhile and timed out again: rare, fail fast
                    self._reject(self.settings.redis_sync_interval)
                return permit  # type: ignore[return-value]  # _reject raised when it was None
        finally:
            self._notify(events)

    def _reject(self, retry_after: float, why: str | None = None) -> None:
        self.rejections += 1
        reason = why or f"circuit open after upstream failures; retry in {retry_after:.1f}s"
        raise CircuitOpenError(
            f"circuit breaker {self.name!r} is {self._state.value}: {reason}",
            retry_after=max(0.0, retry_after),
            provider=self.provider,
        )

    # ------------------------------------------------------------------ recording

    def _record(self, permit: Permit, outcome: str) -> None:
        # Steady state: closed, a window full of successes, and one more
        # success. Counting it would change nothing, so it needs no lock;
        # it is ordered as if recorded when these fields were read.
        if (
            outcome is Outcome.SUCCESS
            and not permit.probe
            and not permit.done
            and self._consecutive == 0
            and self._window_failures == 0
            and self._window_full
            and permit.generation == self._generation
            and self._state is CircuitState.CLOSED
        ):
            permit.done = True
            return
        events: list[dict[str, Any]] = []
        publish: str | None = None
        try:
            with self._lock:
                if permit.done:
                    return
                permit.done = True
                current = permit.generation == self._generation
                if permit.probe and current:
                    self._probes_in_flight -= 1
                if not current or outcome == Outcome.IGNORED:
                    return
                if self._state is CircuitState.CLOSED:
                    if self._count(outcome == Outcome.FAILURE):
                        self._transition(CircuitState.OPEN, self._clock(), self._trip_reason(), events)
                        publish = "open"
                elif self._state is CircuitState.HALF_OPEN and permit.probe:
                    now = self._clock()
                    if outcome == Outcome.FAILURE:
                        self._transition(CircuitState.OPEN, now, "probe call failed", events)
                        publish = "reopen"
                    else:
                        self._probe_successes += 1
                        if self._probe_successes >= self.settings.half_open_probes:
                            self._transition(CircuitState.CLOSED, now, "probe calls succeeded", events)
                            publish = "closed"
        finally:
            self._publish(publish)
            self._notify(events)

    def _count(self, failed: bool) -> bool:
        """Add one call to the counters; True when the breaker must open."""
        window = self._window
        if self._window_full:
            if window[0]:
                self._window_failures -= 1
        elif len(window) + 1 == window.maxlen:
            self._window_full = True
        window.append(failed)
        if not failed:
            self._consecutive = 0
            return False
        self._window_failures += 1
        self._consecutive += 1
        if self._consecutive >= self.settings.failure_threshold:
            return True
        rate = self.settings.failure_rate_threshold
        return (
            rate is not None
            and len(window) >= self.settings.minimum_calls
            and self._window_failures / len(window) >= rate
        )

    def _trip_reason(self) -> str:
        if self._consecutive >= self.settings.failure_threshold:
            return f"{self._consecutive} consecutive failures"
        return f"failure rate {self._window_failures}/{len(self._window)} over the window"

    # ------------------------------------------------------------------ transitions

    def _transition(
        self,
        state: CircuitState,
        now: float,
        reason: str,
        events: list[dict[str, Any]],
        open_for: float | None = None,
    ) -> None:
        previous = self._state
        self._state = state
        self._generation += 1
        self._probes_in_flight = 0
        self._probe_successes = 0
        if state is CircuitState.OPEN:
            self._opened_at = now
            self._open_for = open_for if open_for is not None else self.settings.reset_timeout
        elif state is CircuitState.HALF_OPEN:
            self._opened_at = now  # when the probes were let through
            self._open_for = self.settings.reset_timeout
        if state is CircuitState.CLOSED:
            self._consecutive = 0
            self._window.clear()
            self._window_full = False
            self._window_failures = 0
        events.append(
            {
                "event": "breaker.state_change",
                "breaker": self.name,
                "provider": self.provider,
                "model": self.model,
                "from": previous.value,
                "to": state.value,
                "reason": reason,
                "retry_after": self._open_for if state is CircuitState.OPEN else None,
                "at": now,
                # Increases by one per transition of this breaker: consumers
                # receiving events out of order keep the latest state.
                "generation": self._generation,
            }
        )

    def _notify(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            level = logging.WARNING if event["to"] == CircuitState.OPEN.value else logging.INFO
            log.log(
                level,
                "circuit breaker %s: %s -> %s (%s)",
                self.name,
                event["from"],
                event["to"],
                event["reason"],
                extra={"llmrelay_event": dict(event)},
            )
            for listener in self._listeners:
                try:
                    listener(event)
                except Exception:  # a broken listener must not break calls
                    log.exception("circuit breaker %s: listener %r failed", self.name, listener)

    def reset(self) -> None:
        """Close the breaker and forget its counts (an operator's override)."""
        events: list[dict[str, Any]] = []
        with self._lock:
            if self._state is not CircuitState.CLOSED:
                self._transition(CircuitState.CLOSED, self._clock(), "reset by hand", events)
            self._consecutive = 0
            self._window.clear()
            self._window_full = False
            self._window_failures = 0
        self._publish("closed" if events else None)
        self._notify(events)

    def trip(self, seconds: float | None = None) -> None:
        """Open the breaker now, for ``seconds`` (default ``reset_timeout``)."""
        events: list[dict[str, Any]] = []
        with self._lock:
            self._transition(CircuitState.OPEN, self._clock(), "opened by hand", events, open_for=seconds)
        self._publish("open")
        self._notify(events)

    # ------------------------------------------------------------------ shared state

    def _shared_usable(self) -> bool:
        available = getattr(self._shared, "available", True)
        return bool(available)

    def _claim_sync(self, now: float) -> bool:
        with self._lock:
            if now < self._next_sync:
                return False
            self._next_sync = now + self.settings.redis_sync_interval
            return True

    def _apply_remote(self, remote: RemoteView, now: float, events: list[dict[str, Any]]) -> None:
        if remote.state == "open" and remote.remaining is not None and remote.remaining > 0:
            if self._state is CircuitState.OPEN:
                self._opened_at, self._open_for = now, remote.remaining  # follow the fleet's clock
            elif self._state is CircuitState.CLOSED:
                self._transition(
                    CircuitState.OPEN, now, "opened by another instance", events, open_for=remote.remaining
                )
        elif remote.state == "closed" and self._state is CircuitState.OPEN:
            self._transition(CircuitState.CLOSED, now, "closed by another instance", events)

    def _publish(self, what: str | None) -> None:
        shared = self._shared
        if shared is None or what is None:
            return
        if what in ("open", "reopen"):
            shared.publish_open(self.name, self._open_for)
        else:
            shared.publish_closed(self.name)
        if what != "open":
            shared.release_probe_lease(self.name)

    # ------------------------------------------------------------------ convenience

    def call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` under a permit."""
        permit = self.acquire()
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            permit.record(exc)
            raise
        permit.record()
        return result

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self.name!r} {self.state.value}>"
