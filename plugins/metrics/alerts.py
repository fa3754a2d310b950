"""Alerts, the health status and the insights of a metrics snapshot.

Alert levels follow the original reports (thresholds in
:class:`~.settings.AlertThresholds`), judged per series: **critical** when
the average latency over the rolling window (time to first token for
streams) is above 5 s, **warning** when the error rate is above 5 %,
**info** when the cache hit rate is below 20 %.

The status is the worse of what the alerts and the A-F grade say:

- ``unhealthy``: a critical alert, or grade F (an open circuit breaker, or
  an error rate at or above ``failing_error_rate``);
- ``degraded``: a warning alert, or grade C or D;
- ``healthy``: otherwise (info alerts, grade A or B, or no calls yet).

Recommendations are the grade's; when it has none, each alert's advice;
when there is no alert either, one line saying that no action is needed.
So there is always at least one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Literal

from llmrelay.core.settings import default_settings
from pydantic import BaseModel, ConfigDict, Field

from . import grading
from .settings import AlertThresholds, MetricsSettings

if TYPE_CHECKING:  # a snapshot judges itself (MetricsSnapshot.insights): this module only reads one
    from .snapshot import MetricsSnapshot, SeriesSnapshot

__all__ = ["ALL_WELL", "LEVELS", "STATUSES", "Alert", "Insights", "alerts", "insights", "status"]

Level = Literal["critical", "warning", "info"]
Status = Literal["healthy", "degraded", "unhealthy"]

LEVELS: tuple[Level, ...] = ("critical", "warning", "info")  # most severe first
STATUSES: tuple[Status, ...] = ("healthy", "degraded", "unhealthy")
ALL_WELL = "Performance looks good! No immediate optimizations needed."
NO_CALLS = "No calls counted yet: figures, alerts and advice appear after the first call."

_STREAM = "stream_execute"
_STATUS_OF_LEVEL: dict[str, Status] = {"critical": "unhealthy", "warning": "degraded", "info": "healthy"}
_STATUS_OF_GRADE: dict[str, Status] = {"C": "degraded", "D": "degraded", "F": "unhealthy"}


class Alert(BaseModel):
    """One threshold crossed by one series; ``metric`` names the figure (also the Prometheus ``metric`` label)."""

    model_config = ConfigDict(extra="forbid", defer_build=True, frozen=True)

    level: Level
    metric: Literal["latency_seconds", "time_to_first_token_seconds", "error_rate", "cache_hit_rate"]
    provider: str
    model: str | None
    operation: str
    value: float
    threshold: float
    message: str
    advice: str

    def text(self) -> str:
        return f"{self.level}: {self.message}"


class Insights(BaseModel):
    """What a snapshot says about the service's health, by the configured thresholds."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    status: Status
    grade: str | None  # None when no series had enough calls to grade
    requests_per_minute: int  # calls that ended in the last minute, every series
    alerts: list[Alert] = Field(default_factory=list)  # most severe first
    recommendations: list[str]  # never empty

    def text(self) -> str:
        """What ``llmrelay metrics`` prints after the grade."""
        lines = [f"status: {self.status}", f"requests in the last minute: {self.requests_per_minute}"]
        if self.alerts:
            lines.append("alerts:")
            lines += [f"  - {alert.text()}" for alert in self.alerts]
        else:
            lines.append("alerts: none")
        lines.append("recommendations:")
        lines += [f"  - {text}" for text in self.recommendations]
        return "\n".join(lines)


def _label(series: SeriesSnapshot) -> str:
    name = f"{series.provider}/{series.model}" if series.model else series.provider
    return f"{name} {series.operation}"


def _latency_alert(series: SeriesSnapshot, limit: float) -> Iterator[Alert]:
    stream = series.operation == _STREAM
    average = (series.ttft if stream else series.latency).mean
    if average is None or average <= limit:
        return
    label = _label(series)
    what = "time to first token" if stream else "latency"
    advice = (
        "shorten the prompt or pick a faster model or provider route"
        if stream
        else "pick a faster model or provider route, lower max_tokens, or use stream_execute"
    )
    yield Alert(
        level="critical",
        metric="time_to_first_token_seconds" if stream else "latency_seconds",
        provider=series.provider,
        model=series.model,
        operation=series.operation,
        value=average,
        threshold=limit,
        message=f"{label}: average {what} {average:.2f}s is above {limit:g}s",
        advice=f"{label}: average {what} is {average:.1f}s: {advice}",
    )


def _error_alert(series: SeriesSnapshot, limit: float) -> Iterator[Alert]:
    rate = series.error_rate
    if rate <= limit:
        return
    label = _label(series)
    yield Alert(
        level="warning",
        metric="error_rate",
        provider=series.provider,
        model=series.model,
        operation=series.operation,
        value=rate,
        threshold=limit,
        message=f"{label}: error rate {rate:.1%} is above {limit:.1%} ({series.errors} of {series.requests} calls)",
        advice=(
            f"{label}: {rate:.0%} of calls fail: see which errors (`llmrelay metrics --format json`, errors_by_type) "
            "and configure a fallback model or provider"
        ),
    )


def _cache_alert(series: SeriesSnapshot, limit: float) -> Iterator[Alert]:
    rate = series.cache_hit_rate
    if rate is None or rate >= limit:
        return
    label = _label(series)
    yield Alert(
        level="info",
        metric="cache_hit_rate",
        provider=series.provider,
        model=series.model,
        operation=series.operation,
        value=rate,
        threshold=limit,
        message=f"{label}: cache hit rate {rate:.0%} is below {limit:.0%} ({series.cache_lookups} lookups)",
        advice=(
            f"{label}: cache hit rate is {rate:.0%}: raise the cache TTL if these requests repeat, "
            "or turn caching off for them if they do not"
        ),
    )


def alerts(snapshot: MetricsSnapshot, thresholds: AlertThresholds | None = None) -> list[Alert]:
    """Every alert the snapshot's series raise, most severe first (then in the snapshot's series order)."""
    limits = thresholds or default_settings(AlertThresholds)
    found: list[Alert] = []
    for series in snapshot.series:
        if series.requests < limits.min_requests:
            continue
        if limits.critical_latency_seconds is not None:
            found += _latency_alert(series, limits.critical_latency_seconds)
        if limits.warning_error_rate is not None:
            found += _error_alert(series, limits.warning_error_rate)
        if limits.info_cache_hit_rate is not None:
            found += _cache_alert(series, limits.info_cache_hit_rate)
    found.sort(key=lambda alert: LEVELS.index(alert.level))  # stable: series order within a level
    return found


def status(grade: str | None, found: list[Alert]) -> Status:
    """The worse of the alerts' and the grade's verdicts (see the module's docstring)."""
    verdicts = [_STATUS_OF_LEVEL[alert.level] for alert in found]
    verdicts.append(_STATUS_OF_GRADE.get(grade or "A", "healthy"))
    return max(verdicts, key=STATUSES.index)


def insights(snapshot: MetricsSnapshot, settings: MetricsSettings | None = None) -> Insights:
    """Status, grade, requests per minute, alerts and recommendations (never none) of a snapshot."""
    thresholds = settings or default_settings(MetricsSettings)
    report = grading.grade(snapshot, thresholds.grade)
    found = alerts(snapshot, thresholds.alerts)
    recommendations = list(report.recommendations)
    if not recommendations:
        recommendations = list(dict.fromkeys(alert.advice for alert in found))
    if not recommendations:
        recommendations = [ALL_WELL if snapshot.totals.requests else NO_CALLS]
    return Insights(
        status=status(report.grade, found),
        grade=report.grade,
        requests_per_minute=snapshot.totals.requests_per_minute,
        alerts=found,
        recommendations=recommendations,
    )
