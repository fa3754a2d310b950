"""The model limits the tokens layer clamps to: one provider's model list, fetched lazily and kept for a TTL.

* Fetched on first need, never when the provider is built (building makes no
  network call), and again once ``ttl`` seconds have passed.
* One fetch at a time: callers that find no list wait for the one fetch in
  flight; callers that find an expired list keep using it while one of
  them fetches the next.
* A failed fetch never fails the caller's request: the last list fetched
  stays in use (limits rarely change), or with none the request passes
  through unclamped. The next try comes ``retry_interval`` seconds later,
  so a service whose ``/models`` is down is not asked on every call. The
  failure is logged once at WARNING (then at DEBUG until a fetch succeeds).

The clock is injectable (``catalog.clock``): tests move time by hand.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from llmrelay.core.errors import LLMRelayError
from llmrelay.core.secrets import redact

from .budget import ModelLimits

if TYPE_CHECKING:
    from llmrelay.core.catalog import ModelList

__all__ = ["ModelCatalog"]

log = logging.getLogger("llmrelay.plugins.tokens")

Fetch = Callable[[], "ModelList"]


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """One fetched list, read without a lock: replaced whole, never changed."""

    limits: dict[str, ModelLimits]
    fresh_until: float


class ModelCatalog:
    """The limits of one provider's models by id. Thread-safe."""

    def __init__(
        self,
        provider: str,
        *,
        ttl: float,
        retry_interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.provider = provider
        self.ttl = ttl
        self.retry_interval = retry_interval
        self.clock = clock
        self.fetches = 0  # fetches tried, failed ones included
        self._snapshot: _Snapshot | None = None
        self._retry_at = float("-inf")
        self._failing = False
        self._lock = threading.Lock()

    def limits(self, model: str, fetch: Fetch) -> ModelLimits | None:
        """``model``'s limits; ``None`` when it is not in the list or no list could be fetched.

        ``fetch`` returns the provider's model list; it is called only when
        the list is missing or expired, and by one caller at a time.
        """
        snapshot = self._current(fetch)
        return None if snapshot is None else snapshot.limits.get(model)

    def _current(self, fetch: Fetch) -> _Snapshot | None:
        snapshot = self._snapshot
        now = self.clock()
        if (snapshot is not None and now < snapshot.fresh_until) or now < self._retry_at:
            return snapshot
        if snapshot is not None:
            # Expired: one caller fetches, the others go on with the old list.
            if not self._lock.acquire(blocking=False):
                return snapshot
        else:
            self._lock.acquire()
        try:
            # Another caller may have fetched (or failed) while this one waited.
            snapshot = self._snapshot
            now = self.clock()
            if (snapshot is not None and now < snapshot.fresh_until) or now < self._retry_at:
                return snapshot
            return self._fetch(fetch)
        finally:
            self._lock.release()

    def _fetch(self, fetch: Fetch) -> _Snapshot | None:
        self.fetches += 1
        try:
            models = fetch()
        except Exception as exc:  # any failure: the caller's request goes on without a clamp
            self._retry_at = self.clock() + self.retry_interval
            self._log_failure(exc)
            return self._snapshot
        snapshot = _Snapshot({info.id: ModelLimits.of(info) for info in models}, self.clock() + self.ttl)
        self._snapshot = snapshot
        self._retry_at = float("-inf")
        if self._failing:
            self._failing = False
            log.info("%s: tokens: the model list is back; requests are clamped again", self.provider)
        return snapshot

    def _log_failure(self, exc: Exception) -> None:
        # llmrelay errors are redacted when they are made; anything else is redacted here.
        detail = str(exc) if isinstance(exc, LLMRelayError) else redact(str(exc))
        what = "the last list fetched" if self._snapshot is not None else "no clamp"
        level = logging.DEBUG if self._failing else logging.WARNING
        self._failing = True
        log.log(
            level,
            "%s: tokens: could not fetch the model list (%s: %s); requests go on with %s, next try in %g s",
            self.provider,
            type(exc).__name__,
            detail,
            what,
            self.retry_interval,
        )

    @property
    def models(self) -> int:
        """How many models the list in use holds (0 before the first fetch)."""
        snapshot = self._snapshot
        return 0 if snapshot is None else len(snapshot.limits)

    def __repr__(self) -> str:
        return f"<ModelCatalog {self.provider!r} models={self.models} fetches={self.fetches}>"
