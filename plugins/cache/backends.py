"""L2 backends: the small interface, and the in-memory default.

A backend stores bytes under string keys with a TTL, and offers a lock for
fleet-wide single-flight. The in-memory backend needs nothing installed and
is shared by every provider instance of the process that uses the same
namespace; the Redis backend (:mod:`.redis_backend`, the ``redis`` extra)
shares entries across processes and machines.

A backend signals "I am not answering" with :class:`BackendUnavailable`;
the layer then carries on with L1 and the upstream (see :mod:`.l2`).
"""

from __future__ import annotations

import secrets
import threading
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable

__all__ = ["BackendUnavailable", "L2Backend", "MemoryBackend", "shared_memory_backend"]


class BackendUnavailable(Exception):
    """The L2 backend did not answer (down, slow, refused). Never leaves the cache layer."""


class L2Backend(ABC):
    """What the cache needs from a shared tier."""

    #: True when other processes see the same entries (locks then matter across processes).
    shared: bool = False

    @abstractmethod
    def get(self, key: str) -> bytes | None:
        """The stored bytes, or ``None``."""

    @abstractmethod
    def set(self, key: str, data: bytes, ttl: float) -> None:
        """Store ``data``; the backend forgets it after ``ttl`` seconds."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Forget one key."""

    @abstractmethod
    def delete_prefix(self, prefix: str) -> int:
        """Forget every key starting with ``prefix``; returns how many."""

    @abstractmethod
    def acquire_lock(self, name: str, ttl: float) -> str | None:
        """Take the lock ``name`` for at most ``ttl`` seconds: its token, or ``None`` if held."""

    @abstractmethod
    def release_lock(self, name: str, token: str) -> bool:
        """Release the lock if ``token`` still holds it (compare-and-delete)."""

    def close(self) -> None:  # noqa: B027  # optional: a backend without connections has nothing to release
        """Release connections."""

    def describe(self) -> str:
        """Where the backend stores entries, without credentials (for logs)."""
        return type(self).__name__


class MemoryBackend(L2Backend):
    """A bounded in-process store with expiry; thread-safe."""

    shared = False

    def __init__(self, max_entries: int = 10_000, *, clock: Callable[[], float] = time.time) -> None:
        self._data: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        self._locks: dict[str, tuple[str, float]] = {}
        self._max_entries = max_entries
        self._clock = clock
        self._mutex = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._mutex:
            found = self._data.get(key)
            if found is None:
                return None
            data, expires_at = found
            if self._clock() >= expires_at:
                del self._data[key]
                return None
            self._data.move_to_end(key)
            return data

    def set(self, key: str, data: bytes, ttl: float) -> None:
        with self._mutex:
            self._data[key] = (data, self._clock() + ttl)
            self._data.move_to_end(key)
            while len(self._data) > self._max_entries:
                self._data.popitem(last=False)

    def delete(self, key: str) -> None:
        with self._mutex:
            self._data.pop(key, None)

    def delete_prefix(self, prefix: str) -> int:
        with self._mutex:
            doomed = [key for key in self._data if key.startswith(prefix)]
            for key in doomed:
                del self._data[key]
            return len(doomed)

    def acquire_lock(self, name: str, ttl: float) -> str | None:
        now = self._clock()
        with self._mutex:
            held = self._locks.get(name)
            if held is not None and held[1] > now:
                return None
            token = secrets.token_hex(8)
            self._locks[name] = (token, now + ttl)
            return token

    def release_lock(self, name: str, token: str) -> bool:
        with self._mutex:
            held = self._locks.get(name)
            if held is None or held[0] != token:
                return False
            del self._locks[name]
            return True

    def __len__(self) -> int:
        with self._mutex:
            return len(self._data)


_shared: dict[tuple[str, int], MemoryBackend] = {}
_shared_lock = threading.Lock()


def shared_memory_backend(namespace: str, max_entries: int) -> MemoryBackend:
    """The process-wide in-memory L2 for a namespace (providers in one process share it)."""
    with _shared_lock:
        backend = _shared.get((namespace, max_entries))
        if backend is None:
            backend = _shared[(namespace, max_entries)] = MemoryBackend(max_entries)
        return backend
