"""L1: the in-process tier, a thread-safe, bounded, expiring LRU map.

Bounded by entry count and by time: an item is dropped when its entry's
last stale window ends (so stale-while-revalidate and stale-if-error still
find it after it stopped being fresh). When the map is full, expired items
go first, then the least recently used. Each item also carries
``l1_fresh_until``: past it, the layer asks L2 again so that a process
picks up what another instance of the fleet refreshed.

Every cache miss stores an item while holding the lock, so a store is kept
to a few C-level operations (an ``OrderedDict`` for recency, a heap of
expiry times, one row shared by both): cachetools' ``TLRUCache`` cost about
20 µs of Python per store, all of it under the lock.
"""

from __future__ import annotations

import heapq
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from .codec import Entry

__all__ = ["L1Cache", "L1Item"]


@dataclass(slots=True)
class L1Item:
    """An entry and when this process must ask L2 again."""

    entry: Entry
    l1_fresh_until: float


# (keep_until, sequence, key, item): the value in the map and a row of the expiry heap.
_Row = tuple[float, int, str, L1Item]


class L1Cache:
    """A bounded, expiring, thread-safe map of cache key to :class:`L1Item`."""

    def __init__(self, max_entries: int, *, clock: Callable[[], float]) -> None:
        self._max_entries = max_entries
        self._clock = clock
        self._items: OrderedDict[str, _Row] = OrderedDict()  # least recently used first
        # A heap row no longer in the map (replaced, removed, evicted) is
        # skipped when it surfaces; the heap is rebuilt when such rows
        # outnumber the live ones.
        self._expiry: list[_Row] = []
        self._sequence = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> L1Item | None:
        now = self._clock()
        with self._lock:
            row = self._items.get(key)
            if row is None:
                return None
            if now >= row[0]:
                del self._items[key]
                return None
            self._items.move_to_end(key)
            return row[3]

    def put(self, key: str, item: L1Item) -> None:
        now = self._clock()
        keep_until = item.entry.header.keep_until
        with self._lock:
            items = self._items
            if now >= keep_until:
                # Replacing an item with one already expired forgets the key.
                items.pop(key, None)
                return
            if self._expiry and self._expiry[0][0] <= now:
                self._expire(now)
            self._sequence += 1
            row = (keep_until, self._sequence, key, item)
            items[key] = row
            items.move_to_end(key)
            heapq.heappush(self._expiry, row)
            while len(items) > self._max_entries:
                items.popitem(last=False)
            if len(self._expiry) > 2 * len(items) + 16:
                self._expiry = [row for row in self._expiry if items.get(row[2]) is row]
                heapq.heapify(self._expiry)

    def _expire(self, now: float) -> None:
        # Under the lock. Usually one comparison: nothing has expired.
        expiry, items = self._expiry, self._items
        while expiry and expiry[0][0] <= now:
            row = heapq.heappop(expiry)
            if items.get(row[2]) is row:
                del items[row[2]]

    def delete(self, key: str) -> None:
        with self._lock:
            self._items.pop(key, None)

    def delete_prefix(self, prefix: str) -> int:
        now = self._clock()
        with self._lock:
            self._expire(now)
            doomed = [key for key in self._items if key.startswith(prefix)]
            for key in doomed:
                del self._items[key]
            return len(doomed)

    def __len__(self) -> int:
        now = self._clock()
        with self._lock:
            self._expire(now)
            return len(self._items)
