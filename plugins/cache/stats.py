"""Counters per tier, and the typed snapshot the metrics plugin reads.

``layer.stats()`` returns a :class:`CacheStats`; the counters are cumulative
since the layer was built, so a metrics exporter reports them as counters.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CacheStats", "TierStats"]


@dataclass(frozen=True, slots=True)
class TierStats:
    """What one tier answered."""

    hits: int = 0  # fresh entries served from this tier
    misses: int = 0  # lookups this tier could not answer with a fresh entry
    stale_served: int = 0  # stale entries from this tier served (revalidating or upstream failing)
    errors: int = 0  # the tier failed (L2: Redis down or slow; a corrupt entry)


@dataclass(frozen=True, slots=True)
class CacheStats:
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
