"""L1: the in-process tier, a thread-safe cachetools ``TLRUCache``.

Bounded by entry count (least recently used go first) and by time: an item
is dropped when its entry's last stale window ends, so stale-while-revalidate
and stale-if-error still find it after it stopped being fresh (cachetools
evicts expired items, hence the envelope with its own freshness). Each item
also carries ``l1_fresh_until``: past it, the layer asks L2 again so that a
process picks up what another instance of the fleet refreshed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from cachetools import TLRUCache

from .codec import Entry

__all__ = ["L1Item", "L1Cache"]


@dataclass(frozen=True, slots=True)
class L1Item:
    entry: Entry
    l1_fresh_until: float


def _time_to_use(_key: str, item: L1Item, _now: float) -> float:
    return item.entry.header.keep_until


class L1Cache:
    """A bounded, expiring, thread-safe map of cache key to :class:`L1Item`."""

    def __init__(self, max_entries: int, *, clock: Callable[[], float]) -> None:
        self._items: TLRUCache[str, L1Item] = TLRUCache(max_entries, ttu=_time_to_use, timer=clock)
        # cachetools caches are not thread-safe: every access holds the lock.
        self._lock = threading.Lock()

    def get(self, key: str) -> L1Item | None:
        with self._lock:
            return self._items.get(key)

    def put(self, key: str, item: L1Item) -> None:
        with self._lock:
            self._items[key] = item

    def delete(self, key: str) -> None:
        with self._lock:
            self._items.pop(key, None)

    def delete_prefix(self, prefix: str) -> int:
        with self._lock:
            doomed = [key for key in self._items if key.startswith(prefix)]
            for key in doomed:
                self._items.pop(key, None)
            return len(doomed)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
