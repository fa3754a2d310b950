"""L2 behind a guard: a failing backend never fails a call.

When the backend raises :class:`~.backends.BackendUnavailable` the guard
logs one warning (when L2 goes down, not per call), counts an L2 error, and
skips L2 for ``retry_interval`` seconds so that a slow Redis does not add
its timeout to every call. The first call after that interval tries again;
when it succeeds the guard logs that L2 is back. Meanwhile calls are served
by L1 and the upstream.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from .backends import BackendUnavailable, L2Backend
from .counters import Counters

__all__ = ["LOCAL_LOCK", "GuardedL2"]

log = logging.getLogger("llmrelay.plugins.cache")

#: The lock token handed out while L2 is down: go ahead, locally.
LOCAL_LOCK = "local"

P = ParamSpec("P")
R = TypeVar("R")  # what the backend method returns
D = TypeVar("D")  # what the guard answers instead while L2 is down


class GuardedL2:
    """The L2 backend as the layer uses it: failures become "no answer"."""

    def __init__(
        self,
        backend: L2Backend,
        *,
        retry_interval: float,
        clock: Callable[[], float],
        counters: Counters,
    ) -> None:
        self.backend = backend
        self.shared = backend.shared
        self._retry_interval = retry_interval
        self._clock = clock
        self._counters = counters
        self._down_until: float | None = None
        self._state_lock = threading.Lock()

    @property
    def available(self) -> bool:
        return self._down_until is None

    def _call(self, default: D, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R | D:
        down_until = self._down_until
        if down_until is not None and self._clock() < down_until:
            return default
        try:
            result = fn(*args, **kwargs)
        except BackendUnavailable as exc:
            self._counters.add("l2_errors")
            with self._state_lock:
                first = self._down_until is None
                self._down_until = self._clock() + self._retry_interval
            if first:
                log.warning(
                    "cache L2 (%s) is unavailable (%s); serving from L1 and the upstream, retrying L2 every %gs",
                    self.backend.describe(),
                    exc,
                    self._retry_interval,
                )
            else:
                log.debug("cache L2 still unavailable: %s", exc)
            return default
        if down_until is not None:
            with self._state_lock:
                recovered = self._down_until is not None
                self._down_until = None
            if recovered:
                log.warning("cache L2 (%s) is available again", self.backend.describe())
        return result

    def get(self, key: str) -> bytes | None:
        return self._call(None, self.backend.get, key)

    def set(self, key: str, data: bytes, ttl: float) -> None:
        self._call(None, self.backend.set, key, data, ttl)

    def delete(self, key: str) -> None:
        self._call(None, self.backend.delete, key)

    def delete_prefix(self, prefix: str) -> int:
        return self._call(0, self.backend.delete_prefix, prefix)

    def acquire_lock(self, name: str, ttl: float) -> str | None:
        """A token, ``None`` when another instance holds the lock, :data:`LOCAL_LOCK` when L2 is down."""
        down: str | None = LOCAL_LOCK
        return self._call(down, self.backend.acquire_lock, name, ttl)

    def release_lock(self, name: str, token: str) -> None:
        if token != LOCAL_LOCK:
            self._call(False, self.backend.release_lock, name, token)
