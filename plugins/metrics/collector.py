"""Counting calls: one lock-guarded table of series per provider.

Each call is recorded once, when its outcome is known (a stream when it
ends), under one short lock: totals reconcile exactly under any number
of threads. Latency percentiles come from a rolling window per series,
a ring buffer of at most ``window_size`` samples no older than
``window_seconds``, so memory is bounded however long the process runs;
histograms (for Prometheus) count everything since the last reset.

Requests per minute is the number of calls that ended in the last minute
of the collector's clock, counted in whole seconds: the current second and
the 59 before it, one slot each in a ring of 60 counters per series (a
fixed size, whatever the load).
"""

from __future__ import annotations

import math
import threading
import time
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import KW_ONLY, asdict, dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .events import CALL_EVENT
from .settings import MetricsSettings

if TYPE_CHECKING:
    from .alerts import Insights
    from .snapshot import MetricsSnapshot, Quantiles

__all__ = ["CallRecord", "MetricsCollector", "percentile"]

SeriesKey = tuple[str, "str | None", str]

_MINUTE = 60  # seconds, one slot each, in the requests-per-minute ring


def percentile(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list (``fraction`` in 0..1)."""
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


@dataclass(slots=True)
class _BreakerState:
    """A breaker as metrics last heard of it; a BreakerSnapshot when read."""

    breaker: str
    provider: str
    model: str | None
    state: str
    transitions: int = 0
    opened: int = 0
    last_reason: str | None = None


class _Series:
    __slots__ = (
        "breaker_rejections",
        "cache",
        "cancelled",
        "completion_tokens",
        "cost",
        "errors",
        "errors_by_type",
        "latency",
        "latency_counts",
        "latency_sum",
        "minute_counts",
        "minute_seconds",
        "prompt_tokens",
        "requests",
        "retries",
        "successes",
        "tps",
        "ttft",
        "ttft_count",
        "ttft_counts",
        "ttft_sum",
    )

    def __init__(self, size: int, latency_buckets: int, ttft_buckets: int) -> None:
        self.requests = self.successes = self.errors = self.cancelled = self.retries = 0
        self.errors_by_type: dict[str, int] = {}
        self.latency: deque[tuple[float, float]] = deque(maxlen=size)
        self.latency_counts = [0] * (latency_buckets + 1)
        self.latency_sum = 0.0
        self.ttft: deque[tuple[float, float]] = deque(maxlen=size)
        self.ttft_counts = [0] * (ttft_buckets + 1)
        self.ttft_sum = 0.0
        self.ttft_count = 0
        self.tps: deque[tuple[float, float]] = deque(maxlen=size)
        self.prompt_tokens = self.completion_tokens = 0
        self.cost = Decimal(0)
        self.cache = {"hit": 0, "stale": 0, "miss": 0, "bypass": 0, "coalesced": 0}
        self.breaker_rejections = 0
        # Slot i counts the calls that ended in second minute_seconds[i] (i = that second % 60).
        self.minute_counts = [0] * _MINUTE
        self.minute_seconds = [0] * _MINUTE

    # The count_* methods run under the collector's lock, once per call.

    def count_outcome(self, error_type: str | None, cancelled: bool, attempts: int) -> None:
        self.requests += 1
        if error_type is not None:
            self.errors += 1
            self.errors_by_type[error_type] = self.errors_by_type.get(error_type, 0) + 1
        elif cancelled:
            self.cancelled += 1
        else:
            self.successes += 1
        if attempts > 1:
            self.retries += attempts - 1

    def count_minute(self, now: float) -> None:
        second = int(now)
        slot = second % _MINUTE
        held = self.minute_seconds[slot]
        if held == second:
            self.minute_counts[slot] += 1
        elif held < second:  # the slot's last count is a minute old: start it afresh
            self.minute_seconds[slot] = second
            self.minute_counts[slot] = 1
        # else: a call that ended over a minute before one already counted (a late report): not in the last minute

    def count_ttft(self, now: float, ttft: float, bucket: int) -> None:
        self.ttft.append((now, ttft))
        self.ttft_counts[bucket] += 1
        self.ttft_sum += ttft
        self.ttft_count += 1

    def count_layer_reports(self, cache: str | None, breaker: str | None) -> None:
        """What the cache and the breaker layers said about the call."""
        if cache is not None and cache in self.cache:
            self.cache[cache] += 1
        if breaker == "rejected":
            self.breaker_rejections += 1


@dataclass(frozen=True, slots=True)
class CallRecord:
    """What the metrics layer learned about one finished call."""

    provider: str
    model: str | None
    operation: str
    latency: float
    _: KW_ONLY
    error_type: str | None = None
    cancelled: bool = False
    attempts: int = 1
    ttft: float | None = None
    tokens_per_second: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: Decimal | None = None
    cache: str | None = None
    breaker: str | None = None

    def as_event(self) -> dict[str, Any]:
        """The structured log event: labels and numbers only, never request content or keys."""
        return {
            "event": CALL_EVENT,
            "provider": self.provider,
            "model": self.model,
            "operation": self.operation,
            "outcome": "cancelled" if self.cancelled else ("error" if self.error_type else "ok"),
            "error_type": self.error_type,
            "latency_ms": round(self.latency * 1000, 3),
            "ttft_ms": None if self.ttft is None else round(self.ttft * 1000, 3),
            "tokens_per_second": self.tokens_per_second,
            "attempts": self.attempts,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost": None if self.cost is None else str(self.cost),
            "cache": self.cache,
            "breaker": self.breaker,
        }


class MetricsCollector:
    """Thread-safe metrics for one provider (or any set of series)."""

    def __init__(
        self,
        settings: MetricsSettings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings or MetricsSettings()
        self.clock = clock
        self._wall = wall_clock
        self._bounds = self.settings.latency_buckets
        self._ttft_bounds = self.settings.ttft_buckets
        self._lock = threading.Lock()
        self._series: dict[SeriesKey, _Series] = {}
        self._breakers: dict[str, _BreakerState] = {}
        self._generations: dict[str, int] = {}
        self._since = wall_clock()

    # ------------------------------------------------------------------ recording

    def record(self, rec: CallRecord) -> None:
        """Count one finished call."""
        self.count(
            rec.provider,
            rec.model,
            rec.operation,
            rec.latency,
            rec.error_type,
            rec.attempts,
            rec.prompt_tokens,
            rec.completion_tokens,
            rec.cost,
            rec.cache,
            rec.breaker,
            rec.ttft,
            rec.tokens_per_second,
            rec.cancelled,
        )

    def count(
        self,
        provider: str,
        model: str | None,
        operation: str,
        latency: float,
        error_type: str | None = None,
        attempts: int = 1,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        cost: Decimal | None = None,
        cache: str | None = None,
        breaker: str | None = None,
        ttft: float | None = None,
        tokens_per_second: float | None = None,
        cancelled: bool = False,
        now: float | None = None,
    ) -> None:
        """:meth:`record` without building a :class:`CallRecord` (the layer's hot path).

        ``now`` is the collector clock's reading at the end of the call, when the caller has it.
        """
        key = (provider, model, operation)
        if now is None:
            now = self.clock()
        latency_bucket = bisect_left(self._bounds, latency)
        with self._lock:
            series = self._series.get(key)
            if series is None:
                size = self.settings.window_size
                series = self._series[key] = _Series(size, len(self._bounds), len(self._ttft_bounds))
            series.count_outcome(error_type, cancelled, attempts)
            series.count_minute(now)
            series.latency.append((now, latency))
            series.latency_counts[latency_bucket] += 1
            series.latency_sum += latency
            if ttft is not None:
                series.count_ttft(now, ttft, bisect_left(self._ttft_bounds, ttft))
            if tokens_per_second is not None:
                series.tps.append((now, tokens_per_second))
            series.prompt_tokens += prompt_tokens
            series.completion_tokens += completion_tokens
            if cost is not None:
                series.cost += cost
            if cache is not None or breaker is not None:
                series.count_layer_reports(cache, breaker)

    def observe_breaker_event(self, event: Mapping[str, Any]) -> None:
        """Take a circuit breaker's state change (the plain dict its listeners get).

        Every event counts as a transition; the state follows the event with
        the highest ``generation``, so events handed over out of order (two
        calls on two threads carrying consecutive changes) leave the latest.
        """
        name = str(event.get("breaker") or event.get("provider") or "unknown")
        to = str(event.get("to") or "unknown")
        generation = event.get("generation")
        with self._lock:
            known = self._breakers.get(name)
            if known is None:
                known = self._breakers[name] = _BreakerState(
                    name, str(event.get("provider") or name), event.get("model"), to
                )
            known.transitions += 1
            if to == "open":
                known.opened += 1
            latest = self._generations.get(name)
            if generation is None or latest is None or generation > latest:
                if generation is not None:
                    self._generations[name] = generation
                known.state = to
                reason = event.get("reason")
                known.last_reason = str(reason) if reason is not None else None

    def observe_breaker(self, breaker: str, provider: str, model: str | None, state: str) -> None:
        """Note a breaker seen by a call; its state then follows its events."""
        if breaker in self._breakers:
            return
        with self._lock:
            if breaker not in self._breakers:
                self._breakers[breaker] = _BreakerState(breaker, provider, model, state)

    # ------------------------------------------------------------------ reading

    def snapshot(self) -> MetricsSnapshot:
        """A typed copy of everything counted; percentiles over the rolling window."""
        # The snapshot's pydantic models load on the first read, not with the
        # layer: many programs count calls and never read them back.
        from .snapshot import BreakerSnapshot, Histogram, MetricsSnapshot, SeriesSnapshot, Totals

        now = self.clock()
        max_age = self.settings.window_seconds
        with self._lock:
            raw = [(key, self._copy(series)) for key, series in self._series.items()]
            breakers = [asdict(b) for b in self._breakers.values()]
            since = self._since
        series_list = []
        for (provider, model, operation), copy in raw:
            latency_samples, ttft_samples, tps_samples, fields = copy
            series_list.append(
                SeriesSnapshot(
                    provider=provider,
                    model=model,
                    operation=operation,
                    latency=_quantiles(latency_samples, now, max_age),
                    ttft=_quantiles(ttft_samples, now, max_age),
                    tokens_per_second=_quantiles(tps_samples, now, max_age),
                    latency_histogram=Histogram(
                        bounds=list(self._bounds),
                        counts=fields.pop("latency_counts"),
                        sum=fields.pop("latency_sum"),
                        count=fields["requests"],
                    ),
                    ttft_histogram=Histogram(
                        bounds=list(self._ttft_bounds),
                        counts=fields.pop("ttft_counts"),
                        sum=fields.pop("ttft_sum"),
                        count=fields.pop("ttft_count"),
                    ),
                    requests_per_minute=_last_minute(fields.pop("minute"), now),
                    **fields,
                )
            )
        series_list.sort(key=lambda s: (s.provider, s.model or "", s.operation))
        return MetricsSnapshot(
            taken_at=self._wall(),
            since=since,
            series=series_list,
            breakers=[BreakerSnapshot(**b) for b in sorted(breakers, key=lambda b: b["breaker"])],
            totals=Totals.of(series_list),
        )

    @staticmethod
    def _copy(
        series: _Series,
    ) -> tuple[list[tuple[float, float]], list[tuple[float, float]], list[tuple[float, float]], dict[str, Any]]:
        # Under the lock: copy only; sorting and model building happen outside it.
        fields = {
            name: getattr(series, name)
            for name in (
                "requests",
                "successes",
                "errors",
                "cancelled",
                "retries",
                "prompt_tokens",
                "completion_tokens",
                "cost",
                "breaker_rejections",
                "latency_sum",
                "ttft_sum",
                "ttft_count",
            )
        }
        cache = series.cache
        fields["cache_hits"], fields["cache_stale"] = cache["hit"], cache["stale"]
        fields["cache_misses"], fields["cache_bypass"] = cache["miss"], cache["bypass"]
        fields["cache_coalesced"] = cache["coalesced"]
        fields["minute"] = (list(series.minute_seconds), list(series.minute_counts))
        fields["errors_by_type"] = dict(series.errors_by_type)
        fields["latency_counts"] = list(series.latency_counts)
        fields["ttft_counts"] = list(series.ttft_counts)
        return list(series.latency), list(series.ttft), list(series.tps), fields

    def reset(self) -> None:
        """Forget every count and sample (breaker states are kept: they are still true)."""
        with self._lock:
            self._series.clear()
            for breaker in self._breakers.values():
                breaker.transitions = 0
                breaker.opened = 0
            self._since = self._wall()

    def to_json(self) -> str:
        return self.snapshot().to_json()

    def prometheus(self) -> str:
        return self.snapshot().prometheus(self.settings)

    def grade(self) -> Any:
        return self.snapshot().grade(self.settings.grade)

    def insights(self) -> Insights:
        """Status, grade, alerts and recommendations, by this collector's thresholds."""
        return self.snapshot().insights(self.settings)


def _last_minute(minute: tuple[list[int], list[int]], now: float) -> int:
    """Calls counted in the ring's slots for the current second of ``now`` and the 59 before it."""
    seconds, counts = minute
    current = int(now)
    return sum(count for second, count in zip(seconds, counts, strict=True) if current - _MINUTE < second <= current)


def _quantiles(samples: list[tuple[float, float]], now: float, max_age: float | None) -> Quantiles:
    """Percentiles of the samples no older than ``max_age`` seconds."""
    from .snapshot import Quantiles

    if max_age is None:
        values = [v for _, v in samples]
    else:
        oldest = now - max_age
        values = [v for t, v in samples if t >= oldest]
    if not values:
        return Quantiles()
    values.sort()
    return Quantiles(
        count=len(values),
        p50=percentile(values, 0.50),
        p90=percentile(values, 0.90),
        p99=percentile(values, 0.99),
        mean=sum(values) / len(values),
        max=values[-1],
    )
