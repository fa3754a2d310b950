"""Counters per tier, and the typed snapshot the metrics plugin reads.

``layer.stats()`` returns a :class:`CacheStats`; the counters are cumulative
since the layer was built, so a metrics exporter reports them as counters.
"""

from __future__ import annotations

import threading
from typing import NamedTuple

__all__ = ["TierStats", "CacheStats", "Counters"]


class TierStats(NamedTuple):
    """What one tier answered."""

    hits: int = 0  # fresh entries served from this tier
    misses: int = 0  # lookups this tier could not answer with a fresh entry
    stale_served: int = 0  # stale entries from this tier served (revalidating or upstream failing)
    errors: int = 0  # the tier failed (L2: Redis down or slow; a corrupt entry)


class CacheStats(NamedTuple):
    """A snapshot of one cache layer's counters."""

    l1: TierStats
    l2: TierStats
    upstream_calls: int  # calls the cache let through to the upstream for a miss
    coalesced: int  # callers that waited for another caller's identical call instead of their own
    bypassed: int  # calls not looked up (opt-out, not cacheable, not enabled)
    refreshes: int  # background refreshes (revalidation, refresh-ahead, warm-up) that stored a result
    refresh_errors: int  # background refreshes that failed
    l2_available: bool  # False while L2 is considered down
    l1_entries: int

    @property
    def hits(self) -> int:
        return self.l1.hits + self.l2.hits

    @property
    def stale_served(self) -> int:
        return self.l1.stale_served + self.l2.stale_served


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
