"""The typed metrics snapshot: what ``collector.snapshot()`` returns and the JSON it writes.

A snapshot is plain data: it can be saved (``to_json``), loaded in another
process (``MetricsSnapshot.from_json``) and rendered as Prometheus text or
graded there, which is how ``llmrelay metrics`` reports on a service it is
not part of.
"""

import json
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from . import alerts as alerting
from . import grading, prometheus
from .settings import AlertThresholds, GradeThresholds, MetricsSettings

__all__ = [
    "BreakerSnapshot",
    "Histogram",
    "MetricsSnapshot",
    "Quantiles",
    "SeriesSnapshot",
    "Totals",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)


class Quantiles(_Model):
    """Percentiles of the samples in the rolling window (``None`` when it is empty)."""

    count: int = 0
    p50: float | None = None
    p90: float | None = None
    p99: float | None = None
    mean: float | None = None
    max: float | None = None

    def get(self, name: str) -> float | None:
        value: float | None = getattr(self, name)
        return value


class Histogram(_Model):
    """Counts since the last reset; ``counts[i]`` is for ``bounds[i-1] < x <= bounds[i]``, the last for +Inf."""

    bounds: list[float]
    counts: list[int]
    sum: float = 0.0
    count: int = 0

    def cumulative(self) -> list[int]:
        total, out = 0, []
        for count in self.counts:
            total += count
            out.append(total)
        return out

    def merged(self, other: "Histogram") -> "Histogram":
        if other.bounds != self.bounds:
            raise ValueError("cannot merge histograms with different buckets")
        return Histogram(
            bounds=list(self.bounds),
            counts=[a + b for a, b in zip(self.counts, other.counts, strict=False)],
            sum=self.sum + other.sum,
            count=self.count + other.count,
        )


class Counters(_Model):
    """The counts that add up across series and processes (all but ``requests_per_minute`` across time too)."""

    requests: int = 0
    successes: int = 0
    errors: int = 0
    cancelled: int = 0  # streams the caller closed before the end (neither success nor error)
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: Decimal = Decimal(0)
    cache_hits: int = 0
    cache_stale: int = 0
    cache_misses: int = 0
    cache_bypass: int = 0
    # Calls that shared another caller's failed load (the cache's single-flight).
    cache_coalesced: int = 0
    breaker_rejections: int = 0
    # Calls that ended in the last minute of the collector's clock (see the collector):
    # a rate, not a running count, but two processes' rates add up as counts do.
    requests_per_minute: int = 0

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def _summed(self, other: "Counters") -> dict[str, Any]:
        return {name: getattr(self, name) + getattr(other, name) for name in Counters.model_fields}


class SeriesSnapshot(Counters):
    """Everything counted for one provider, model and operation."""

    provider: str
    model: str | None = None
    operation: str
    errors_by_type: dict[str, int] = Field(default_factory=dict)
    latency: Quantiles = Field(default_factory=Quantiles)
    latency_histogram: Histogram
    ttft: Quantiles = Field(default_factory=Quantiles)
    ttft_histogram: Histogram
    tokens_per_second: Quantiles = Field(default_factory=Quantiles)

    @property
    def key(self) -> tuple[str, str | None, str]:
        return (self.provider, self.model, self.operation)

    @property
    def cache_lookups(self) -> int:
        return self.cache_hits + self.cache_stale + self.cache_misses

    @property
    def cache_hit_rate(self) -> float | None:
        """Hits and stale answers over lookups; ``None`` when the cache never saw this series."""
        lookups = self.cache_lookups
        return (self.cache_hits + self.cache_stale) / lookups if lookups else None

    def merged(self, other: "SeriesSnapshot") -> "SeriesSnapshot":
        """Counters and histograms add up; window percentiles keep the worse of the two."""
        errors = dict(self.errors_by_type)
        for name, count in other.errors_by_type.items():
            errors[name] = errors.get(name, 0) + count
        data: dict[str, Any] = {"provider": self.provider, "model": self.model, "operation": self.operation}
        data.update(self._summed(other))
        data["errors_by_type"] = errors
        data["latency_histogram"] = self.latency_histogram.merged(other.latency_histogram)
        data["ttft_histogram"] = self.ttft_histogram.merged(other.ttft_histogram)
        data["latency"] = _worse(self.latency, other.latency)
        data["ttft"] = _worse(self.ttft, other.ttft)
        data["tokens_per_second"] = _worse(other.tokens_per_second, self.tokens_per_second, lower_is_worse=True)
        return SeriesSnapshot(**data)


def _worse(a: Quantiles, b: Quantiles, *, lower_is_worse: bool = False) -> Quantiles:
    if not a.count:
        return b
    if not b.count:
        return a
    pick = min if lower_is_worse else max
    values: dict[str, Any] = {"count": a.count + b.count}
    for name in ("p50", "p90", "p99", "max"):
        values[name] = pick(a.get(name), b.get(name))  # type: ignore[type-var]  # both set when both counts are
    values["mean"] = ((a.mean or 0) * a.count + (b.mean or 0) * b.count) / (a.count + b.count)
    return Quantiles(**values)


class BreakerSnapshot(_Model):
    """A circuit breaker's state as last reported to metrics."""

    breaker: str
    provider: str
    model: str | None = None
    state: str
    transitions: int = 0
    opened: int = 0  # times it went to open
    last_reason: str | None = None


class Totals(Counters):
    @classmethod
    def of(cls, series: Iterable[SeriesSnapshot]) -> "Totals":
        totals = cls()
        for item in series:
            totals = cls(**totals._summed(item))
        return totals


class MetricsSnapshot(_Model):
    """A point-in-time copy of the metrics of one provider, or of all of them."""

    taken_at: float  # Unix time
    since: float  # Unix time of the last reset (or of the first call)
    series: list[SeriesSnapshot] = Field(default_factory=list)
    breakers: list[BreakerSnapshot] = Field(default_factory=list)
    totals: Totals = Field(default_factory=Totals)

    def for_provider(self, provider: str) -> "MetricsSnapshot":
        series = [s for s in self.series if s.provider == provider]
        return MetricsSnapshot(
            taken_at=self.taken_at,
            since=self.since,
            series=series,
            breakers=[b for b in self.breakers if b.provider == provider],
            totals=Totals.of(series),
        )

    def get(self, provider: str, model: str | None, operation: str) -> SeriesSnapshot | None:
        for series in self.series:
            if series.key == (provider, model, operation):
                return series
        return None

    def to_json(self, *, indent: int | None = 2) -> str:
        return self.model_dump_json(indent=indent)

    @classmethod
    def from_json(cls, text: str | bytes) -> "MetricsSnapshot":
        """A snapshot from its JSON, or from ``llmrelay metrics --format json`` (its derived ``insights`` ignored)."""
        data = json.loads(text)
        if isinstance(data, dict):
            data.pop("insights", None)  # judged again from the figures by whoever reads them
        return cls.model_validate(data)

    @classmethod
    def merge(cls, snapshots: "Iterable[MetricsSnapshot]") -> "MetricsSnapshot":
        """One snapshot of several collectors or processes (same labels add up).

        A snapshot taken a minute or more before the newest one adds nothing
        to requests per minute: its process stopped (or stopped writing), so
        none of its calls ended in the newest snapshot's last minute.
        """
        snapshots = list(snapshots)
        newest = max((s.taken_at for s in snapshots), default=0.0)
        by_key: dict[tuple[str, str | None, str], SeriesSnapshot] = {}
        breakers: dict[str, BreakerSnapshot] = {}
        for snapshot in snapshots:
            stale = newest - snapshot.taken_at >= 60
            for series in snapshot.series:
                if stale and series.requests_per_minute:
                    series = series.model_copy(update={"requests_per_minute": 0})
                found = by_key.get(series.key)
                by_key[series.key] = series if found is None else found.merged(series)
            for breaker in snapshot.breakers:
                breakers[breaker.breaker] = breaker  # the latest one wins: state is not additive
        merged = sorted(by_key.values(), key=lambda s: (s.provider, s.model or "", s.operation))
        return cls(
            taken_at=newest,
            since=min((s.since for s in snapshots), default=0.0),
            series=merged,
            breakers=sorted(breakers.values(), key=lambda b: b.breaker),
            totals=Totals.of(merged),
        )

    def grade(self, thresholds: GradeThresholds | None = None) -> grading.HealthReport:
        """The A-F health report (see :mod:`.grading`)."""
        return grading.grade(self, thresholds)

    def alerts(self, thresholds: AlertThresholds | None = None) -> list[alerting.Alert]:
        """The alerts its series raise, most severe first (see :mod:`.alerts`)."""
        return alerting.alerts(self, thresholds)

    def insights(self, settings: MetricsSettings | None = None) -> alerting.Insights:
        """Status, grade, requests per minute, alerts and recommendations (see :mod:`.alerts`)."""
        return alerting.insights(self, settings)

    def prometheus(self, settings: MetricsSettings | None = None) -> str:
        """The snapshot in Prometheus text exposition format, alerts and status included (see :mod:`.prometheus`)."""
        return prometheus.render(self, self.insights(settings))

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.to_json(indent=None))
        return data
