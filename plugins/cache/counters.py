"""The layer's thread-safe counters, read out as a :class:`~.stats.CacheStats`."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .stats import CacheStats

__all__ = ["Counters"]

_FIELDS = (
    "l1_hits", "l1_misses", "l1_stale", "l1_errors",
    "l2_hits", "l2_misses", "l2_stale", "l2_errors",
    "upstream_calls", "coalesced", "bypassed", "refreshes", "refresh_errors",
)  # fmt: skip


class Counters:
    """Thread-safe counters behind :class:`CacheStats`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values = dict.fromkeys(_FIELDS, 0)

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._values[name] += amount

    def bump(self, *names: str) -> None:
        """Add one to each of ``names``, under one acquisition of the lock."""
        with self._lock:
            values = self._values
            for name in names:
                values[name] += 1

    def snapshot(self, *, l2_available: bool, l1_entries: int) -> CacheStats:
        from .stats import CacheStats, TierStats  # the first stats() call loads them

        with self._lock:
            v = dict(self._values)
        return CacheStats(
            l1=TierStats(v["l1_hits"], v["l1_misses"], v["l1_stale"], v["l1_errors"]),
            l2=TierStats(v["l2_hits"], v["l2_misses"], v["l2_stale"], v["l2_errors"]),
            upstream_calls=v["upstream_calls"],
            coalesced=v["coalesced"],
            bypassed=v["bypassed"],
            refreshes=v["refreshes"],
            refresh_errors=v["refresh_errors"],
            l2_available=l2_available,
            l1_entries=l1_entries,
        )
