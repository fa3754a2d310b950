"""The cache layer: L1 + L2 lookups, single-flight loads, stale serving, background refresh.

One call, in order::

    bypass?     not cacheable, not enabled, or options.cache=False -> proceed, BYPASS
    L1 fresh    -> a copy of the entry, HIT
    L2 fresh    -> fill L1, a copy, HIT (an L2 entry L1 already holds is not decoded again)
    stale, within stale_while_revalidate -> served now, refreshed in the background, STALE
    miss        -> one load per key in this process (single-flight), and with a shared L2
                   one per key across the fleet (lock, then wait for the other instance's value);
                   an availability error with a stale entry within stale_if_error -> that entry,
                   STALE; any other error is raised unchanged

What it did is ``call.cache`` (a ``CacheOutcome`` of :mod:`llmrelay.core.pipeline`)
for the layers outside it, and the result's ``meta.cache``. A caller that
shared another caller's failed load is ``"coalesced"`` with ``call.attempts = 0``:
it made no upstream request of its own.

Hits are shallow copies with their own ``meta`` (``cache="hit"``): the
cached object is never handed out, but nested objects (a model's pricing, a
message) are shared between callers of one entry, so treat results as
read-only or ``model_copy(deep=True)`` them.

Background work (revalidation, refresh-ahead, warm-up) calls the handler
below this layer, bound once by :meth:`CacheLayer.bind_downstream`, so it
passes through the circuit breaker too.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, TypeVar, cast

from llmrelay.core.errors import ConfigurationError, LLMRelayError
from llmrelay.core.models import ResponseMeta
from llmrelay.core.pipeline import CacheOutcome, Call, Handler, Layer, Operation
from llmrelay.core.provider import CallOptions
from llmrelay.core.stream import ChatStream

from .backends import L2Backend
from .codec import DecodeError, Entry, copy_chunk, decode_value, encode_entry, new_header, split, type_tag
from .counters import Counters
from .keys import KeyBuilder
from .l1 import L1Cache, L1Item
from .l2 import LOCAL_LOCK, GuardedL2
from .refresher import Refresher
from .settings import CACHEABLE_OPERATIONS, CacheSettings, OperationPolicy
from .singleflight import SingleFlight

if TYPE_CHECKING:
    from .stats import CacheStats

__all__ = ["BYPASS", "HIT", "MISS", "STALE", "CacheLayer"]

log = logging.getLogger("llmrelay.plugins.cache")

R = TypeVar("R")

HIT: Final = "hit"
STALE: Final = "stale"
MISS: Final = "miss"
BYPASS: Final = "bypass"
_LOCK_RETRY = 5.0  # seconds before a refresh that found the fleet lock taken checks again
_ERROR_RETRY = 60.0  # seconds before a failed refresh-ahead is tried again


class _Loaded:
    __slots__ = ("value", "entry", "from_fleet")

    def __init__(self, value: Any, entry: Entry | None, from_fleet: bool) -> None:
        self.value = value  # what the caller gets (an Entry's value, or an uncacheable result)
        self.entry = entry
        self.from_fleet = from_fleet  # another instance loaded it while this one waited


class CacheLayer(Layer):
    """Caching around one provider's calls. Built by the plugin's factory, or directly in tests."""

    name = "cache"

    def __init__(
        self,
        settings: CacheSettings,
        *,
        keys: KeyBuilder,
        provider_name: str,
        backend: L2Backend | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        owns_backend: bool = False,
    ) -> None:
        self.settings = settings
        self.keys = keys
        self.provider_name = provider_name
        self._policies: dict[str, OperationPolicy] = dict(settings.operations)
        self._clock = clock
        self._sleep = sleep
        self._counters = Counters()
        self._miss_counters = ("l1_misses", "l2_misses") if backend is not None else ("l1_misses",)
        self._l1 = L1Cache(settings.max_entries, clock=clock)
        self._backend = backend
        self._owns_backend = owns_backend
        self._l2 = (
            GuardedL2(backend, retry_interval=settings.l2_retry_interval, clock=clock, counters=self._counters)
            if backend is not None
            else None
        )
        self._flights: SingleFlight[_Loaded] = SingleFlight()
        self._refresher = Refresher(clock=clock, background=settings.background)
        self._downstream: Handler | None = None
        self._closed = False

    # ------------------------------------------------------------------ pipeline

    def bind_downstream(self, proceed: Handler) -> None:
        self._downstream = proceed
        now = self._clock()
        for operation in self.settings.warm_up:
            policy = self._policies.get(operation)
            if policy is None or not policy.enabled:
                continue
            key = self.keys.key(operation)
            self._refresher.schedule(key, now, self._refresh_task(key, self._background_call(operation), policy, True))

    def handle(self, call: Call[R], proceed: Handler) -> R:
        # Entries are stored per operation, so what is served is the result type of the call's operation.
        return cast(R, self._serve(call, proceed))

    def _serve(self, call: Call[Any], proceed: Handler) -> Any:
        operation = call.operation
        policy = self._policies.get(operation)
        cache_option = call.options.cache
        if policy is None or cache_option is False or (cache_option is None and not policy.enabled):
            self._counters.add("bypassed")
            call.cache = BYPASS
            result = proceed(call)
            _set_meta(result, BYPASS)
            return result

        key = self.keys.key(operation, call.request)
        entry, tier = self._lookup(key, policy, call.options.cache_ttl)
        now = self._clock()
        if entry is not None and now < entry.fresh_until:
            self._counters.add(f"{tier}_hits")
            call.cache = HIT
            return self._present(entry.value, HIT, call)
        self._counters.bump(*self._miss_counters)

        if entry is not None and now < entry.header.swr_until:
            self._counters.add(f"{tier}_stale")
            self._refresher.submit(key, self._refresh_task(key, _background_copy(call), policy, False, proceed))
            call.cache = STALE
            return self._present(entry.value, STALE, call)

        try:
            if operation == Operation.STREAM:
                return self._stream_miss(key, call, proceed, policy)
            loaded, leader = self._flights.do(key, self._lead, key, call, proceed, policy)
        except LLMRelayError as error:
            if error.availability and entry is not None and self._clock() < entry.header.sie_until:
                self._counters.add(f"{tier}_stale")
                call.cache = STALE
                log.info("cache: serving a stale %s result because the upstream failed: %s", operation, error)
                return self._present(entry.value, STALE, call)
            if call.cache != MISS:
                # A follower given the leader's error made no upstream request
                # of its own: the leader's attempts are not this call's.
                call.cache = "coalesced"
                call.attempts = 0
            raise
        if not leader:
            self._counters.add("coalesced")
        state: CacheOutcome = MISS if leader and not loaded.from_fleet else HIT
        call.cache = state
        return self._present(loaded.value, state, call)

    # ------------------------------------------------------------------ lookups

    def _lookup(self, key: str, policy: OperationPolicy, ttl: float | None) -> tuple[Entry | None, str]:
        """The freshest entry L1 or L2 has for ``key`` and the tier it came from."""
        item = self._l1.get(key)
        now = self._clock()
        if item is not None and now < item.l1_fresh_until:
            return item.entry, "l1"
        l1_entry = item.entry if item is not None else None
        if self._l2 is not None:
            l2_entry = self._read_l2(key, l1_entry, policy, ttl)
            if l2_entry is not None and (l1_entry is None or l2_entry.stored_at >= l1_entry.stored_at):
                return l2_entry, "l2"
        return l1_entry, "l1"

    def _read_l2(self, key: str, known: Entry | None, policy: OperationPolicy, ttl: float | None) -> Entry | None:
        assert self._l2 is not None
        data = self._l2.get(key)
        if data is None:
            return None
        try:
            header, body = split(data)
            if known is not None and known.etag == header.etag:
                entry = known  # the same version L1 holds: no need to parse it again
            else:
                entry = Entry(decode_value(header, body), header)
        except DecodeError as exc:
            self._counters.add("l2_errors")
            log.warning("cache: dropping an unreadable L2 entry (%s)", exc)
            self._l2.delete(key)
            return None
        now = self._clock()
        if now < header.keep_until and (known is None or header.stored_at >= known.stored_at):
            self._l1.put(key, L1Item(entry, min(now + self._l1_ttl(policy, ttl), header.fresh_until)))
        return entry

    def _l1_ttl(self, policy: OperationPolicy, ttl: float | None) -> float:
        return min(policy.l1_ttl, ttl) if ttl is not None else policy.l1_ttl

    # ------------------------------------------------------------------ loading

    def _lead(self, key: str, call: Call[Any], proceed: Handler, policy: OperationPolicy) -> _Loaded:
        # Runs only in the caller that leads a single-flight load.
        call.cache = MISS
        return self._load(key, call, proceed, policy)

    def _load(self, key: str, call: Call[Any], proceed: Handler, policy: OperationPolicy) -> _Loaded:
        """Load one key from the upstream, once per fleet when L2 is shared."""
        token: str | None = None
        lock = ""
        if self._l2 is not None and self._l2.shared:
            lock = self.keys.lock_name(key)
            token = self._l2.acquire_lock(lock, self.settings.lock_ttl)
            if token is None:
                waited = self._wait_for_fleet(key, policy, call.options.cache_ttl)
                if waited is not None:
                    return _Loaded(waited.value, waited, True)
            else:
                # Another instance may have stored it between our lookup and the lock.
                entry = self._read_l2(key, None, policy, call.options.cache_ttl)
                if entry is not None and self._clock() < entry.fresh_until:
                    self._l2.release_lock(lock, token)
                    return _Loaded(entry.value, entry, True)
        try:
            self._counters.add("upstream_calls")
            result = proceed(call)
            entry = self._store(key, result, policy, call.options.cache_ttl)
        finally:
            if token is not None and self._l2 is not None:
                self._l2.release_lock(lock, token)
        # The caller (and callers coalesced onto this load) get the upstream's
        # own result; L1 holds its separate copy, decoded only when first hit.
        return _Loaded(result, entry, False)

    def _wait_for_fleet(self, key: str, policy: OperationPolicy, ttl: float | None) -> Entry | None:
        deadline = self._clock() + self.settings.lock_wait
        while self._clock() < deadline:
            self._sleep(self.settings.lock_poll_interval)
            entry = self._read_l2(key, None, policy, ttl)
            if entry is not None and self._clock() < entry.fresh_until:
                return entry
        # The other instance is slow or died: load it ourselves rather than fail.
        return None

    def _store(self, key: str, result: Any, policy: OperationPolicy, ttl: float | None) -> Entry | None:
        tag = _storable_type(result)
        if tag is None:
            return None
        now = self._clock()
        fresh = ttl if ttl is not None else (policy.l2_ttl if self._l2 is not None else policy.l1_ttl)
        header = new_header(tag, now, fresh, policy.stale_while_revalidate, policy.stale_if_error)
        data, payload = encode_entry(result, header)
        # L1 keeps its own copy (decoded on first hit), never the object the
        # caller received and may change.
        entry = Entry.lazy(header, payload)
        self._l1.put(key, L1Item(entry, min(now + self._l1_ttl(policy, ttl), header.fresh_until)))
        if self._l2 is not None:
            self._l2.set(key, data, header.keep_until - now)
        return entry

    # ------------------------------------------------------------------ streams

    def _stream_miss(self, key: str, call: Call[Any], proceed: Handler, policy: OperationPolicy) -> ChatStream:
        # Streams are not coalesced: each caller reads its own. The result is
        # stored only when the service ended the stream cleanly.
        self._counters.add("upstream_calls")
        stream: ChatStream = proceed(call)
        stream.record_chunks()
        stream.meta.cache = MISS
        ttl = call.options.cache_ttl

        def store_when_complete(done: ChatStream) -> None:
            if not done.completed:
                return
            try:
                self._store(key, tuple(done.recorded_chunks), policy, ttl)
            except Exception:  # never break the caller's stream over a cache write
                log.exception("cache: could not store a completed stream")

        stream.add_done_callback(store_when_complete)
        call.cache = MISS
        return stream

    # ------------------------------------------------------------------ presenting

    def _present(self, value: Any, state: CacheOutcome, call: Call[Any]) -> Any:
        meta = ResponseMeta(cache=state, stale=state == STALE)
        if state == MISS:
            # The upstream's own result: keep how many attempts it took (metrics counts retries from it).
            meta.attempts = getattr(getattr(value, "meta", None), "attempts", 1)
        if isinstance(value, tuple):  # a stored stream: replay it
            stream = ChatStream(
                iter([copy_chunk(chunk) for chunk in value]),
                provider=call.provider,
                model=call.model,
            )
            stream.meta = meta
            return stream
        # The stored value is never handed out: each caller gets a shallow copy
        # with its own meta (and its own list of models, which callers may sort or filter).
        served = copy.copy(value)
        served.meta = meta
        if call.operation == Operation.LIST_MODELS:  # only then can it be a ModelList
            from llmrelay.core.catalog import ModelList  # kept out of the provider-build path

            if isinstance(value, ModelList):
                served.models = list(value.models)
        return served

    # ------------------------------------------------------------------ background refresh

    def _background_call(self, operation: str) -> Call[Any]:
        return Call(Operation(operation), self.provider_name, cache="refresh")

    def _refresh_task(
        self,
        key: str,
        call: Call[Any],
        policy: OperationPolicy,
        periodic: bool,
        proceed: Handler | None = None,
    ) -> Callable[[], None]:
        def task() -> None:
            self._refresh(key, call, policy, periodic, proceed)

        return task

    def _due_at(self, entry: Entry, policy: OperationPolicy, periodic: bool) -> float:
        if periodic and policy.refresh_every is not None:
            return min(entry.fresh_until, entry.stored_at + policy.refresh_every)
        return entry.fresh_until

    def _current(self, key: str, policy: OperationPolicy, ttl: float | None) -> Entry | None:
        item = self._l1.get(key)
        known = item.entry if item is not None else None
        if self._l2 is not None:
            found = self._read_l2(key, known, policy, ttl)
            if found is not None and (known is None or found.stored_at >= known.stored_at):
                return found
        return known

    def _refresh(
        self, key: str, call: Call[Any], policy: OperationPolicy, periodic: bool, proceed: Handler | None
    ) -> None:
        """Refresh ``key`` if it is due, once across the fleet; reschedule refresh-ahead keys."""
        handler = proceed or self._downstream
        if handler is None or self._closed:
            return
        ttl = call.options.cache_ttl
        reschedule = self._reschedule(key, call, policy) if periodic else (lambda _when: None)

        current = self._current(key, policy, ttl)
        if current is not None and self._clock() < self._due_at(current, policy, periodic):
            reschedule(self._due_at(current, policy, periodic))  # another instance refreshed it
            return
        token: str | None = LOCAL_LOCK
        lock = self.keys.lock_name(key)
        if self._l2 is not None:
            token = self._l2.acquire_lock(lock, self.settings.lock_ttl)
            if token is None:  # another instance is refreshing it right now
                reschedule(self._clock() + min(_LOCK_RETRY, policy.refresh_every or _LOCK_RETRY))
                return
        try:
            current = self._current(key, policy, ttl)
            if current is not None and self._clock() < self._due_at(current, policy, periodic):
                reschedule(self._due_at(current, policy, periodic))
                return
            self._counters.add("upstream_calls")
            result = handler(_background_copy(call))
            if call.operation == Operation.STREAM and isinstance(result, ChatStream):
                result = _drain(result)
            entry = self._store(key, result, policy, ttl)
            self._counters.add("refreshes")
            if entry is not None:
                reschedule(self._due_at(entry, policy, periodic))
        except Exception as exc:
            self._counters.add("refresh_errors")
            log.warning("cache: background refresh of %s failed: %s", call.operation, exc)
            reschedule(self._clock() + min(_ERROR_RETRY, policy.refresh_every or _ERROR_RETRY))
        finally:
            if self._l2 is not None and token is not None:
                self._l2.release_lock(lock, token)

    def _reschedule(self, key: str, call: Call[Any], policy: OperationPolicy) -> Callable[[float], None]:
        def schedule(when: float) -> None:
            self._refresher.schedule(key, when, self._refresh_task(key, call, policy, True))

        return schedule

    # ------------------------------------------------------------------ control

    def run_pending(self) -> int:
        """Run the background refreshes that are due now, in this thread (with ``background = false``)."""
        return self._refresher.run_pending()

    def warm_up(self) -> None:
        """Load the ``warm_up`` operations now, in this thread, instead of waiting for the refresher."""
        for operation in self.settings.warm_up:
            policy = self._policies.get(operation)
            if policy is not None and policy.enabled and self._downstream is not None:
                key = self.keys.key(operation)
                self._refresh(key, self._background_call(operation), policy, True, None)

    def cache_key(self, operation: str, request: Any = None) -> str:
        """The key a call is cached under (for :meth:`invalidate`)."""
        self._check_operation(operation)
        return self.keys.key(operation, request)

    def invalidate(self, key: str | None = None, *, operation: str | None = None) -> int:
        """Forget one key, or every entry of one operation, in L1 and L2; returns L1 + L2 removals."""
        if (key is None) == (operation is None):
            raise ConfigurationError("invalidate() takes a key or operation=..., exactly one of them")
        if key is not None:
            if not key.startswith(self.keys.scope_prefix):
                raise ConfigurationError("that key does not belong to this provider's cache (see cache_key())")
            self._l1.delete(key)
            if self._l2 is not None:
                self._l2.delete(key)
            return 1
        assert operation is not None
        self._check_operation(operation)
        return self._delete_prefix(self.keys.operation_prefix(operation))

    def invalidate_all(self) -> int:
        """Forget every entry of this provider (this key, this base URL) in L1 and L2."""
        return self._delete_prefix(self.keys.scope_prefix)

    def _delete_prefix(self, prefix: str) -> int:
        removed = self._l1.delete_prefix(prefix)
        if self._l2 is not None:
            removed += self._l2.delete_prefix(prefix)
        return removed

    def _check_operation(self, operation: str) -> None:
        if operation not in CACHEABLE_OPERATIONS:
            raise ConfigurationError(
                f"{operation!r} is not a cached operation; cached operations are {list(CACHEABLE_OPERATIONS)}"
            )

    def stats(self) -> CacheStats:
        """Counters per tier since the layer was built (for the metrics plugin)."""
        return self._counters.snapshot(
            l2_available=self._l2.available if self._l2 is not None else False,
            l1_entries=len(self._l1),
        )

    def scheduled_refreshes(self) -> dict[str, float]:
        """Keys with a pending background refresh, and when each is due."""
        return self._refresher.scheduled()

    def close(self) -> None:
        self._closed = True
        self._refresher.close()
        if self._owns_backend and self._backend is not None:
            self._backend.close()

    def __repr__(self) -> str:
        l2 = self._backend.describe() if self._backend is not None else "none"
        return f"<CacheLayer {self.provider_name!r} l1={len(self._l1)} entries l2={l2}>"


# --------------------------------------------------------------------------- helpers


def _storable_type(result: Any) -> str | None:
    """The codec's type tag for ``result``, or ``None`` when it must not be stored."""
    if isinstance(result, tuple):
        return type_tag(result)
    if getattr(result, "finish_reason", None) == "error":
        return None
    try:
        tag = type_tag(result)
    except TypeError:
        return None
    # llmrelay's built-in model list stands in for an unreachable service: caching
    # it would keep serving possibly outdated prices after the service is back.
    if tag == "ModelList":
        from llmrelay.core.catalog import ModelList

        if isinstance(result, ModelList) and result.fallback:
            return None
    return tag


def _set_meta(result: Any, state: CacheOutcome) -> None:
    meta = getattr(result, "meta", None)
    if meta is not None and isinstance(meta, ResponseMeta):
        meta.cache = state


def _background_copy(call: Call[Any]) -> Call[Any]:
    options = CallOptions(cache=call.options.cache, cache_ttl=call.options.cache_ttl, extra=dict(call.options.extra))
    return Call(call.operation, call.provider, call.request, call.model, options, cache="refresh")


def _drain(stream: ChatStream) -> tuple[Any, ...] | None:
    stream.record_chunks()
    with stream:
        for _ in stream:
            pass
    if not stream.completed:
        raise stream.error or RuntimeError("stream did not complete")
    return tuple(stream.recorded_chunks)
