"""Prometheus text exposition (format 0.0.4) of a metrics snapshot.

Counters end in ``_total``; latency and time to first token are histograms
with LLM-sized buckets (see :mod:`.settings`); the rolling-window
percentiles are exported as gauges with a ``quantile`` label, and each
circuit breaker's state as a gauge per state (1 for the current one).
Labels: ``provider``, ``model`` (empty when the call has none) and
``operation``.

The snapshot's insights (:mod:`.alerts`) follow: requests per minute per
series, the health status as a gauge per status (1 for the current one),
the number of firing alerts per level (always all three levels, so a rule
can test ``> 0`` without ``absent()``), and one ``llmrelay_alert`` sample
of value 1 per firing alert.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from .alerts import LEVELS, STATUSES

if TYPE_CHECKING:  # a snapshot renders itself (MetricsSnapshot.prometheus): rendering only reads one
    from .alerts import Insights
    from .snapshot import BreakerSnapshot, Histogram, MetricsSnapshot, Quantiles, SeriesSnapshot

__all__ = ["CONTENT_TYPE", "render"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_BREAKER_STATES = ("closed", "open", "half_open")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    inner = ",".join(f'{name}="{_escape(value)}"' for name, value in pairs)
    return "{" + inner + "}" if inner else ""


def _number(value: float | int) -> str:
    if isinstance(value, int):
        return str(value)
    if value == float("inf"):
        return "+Inf"
    return repr(float(value))


def _base(series: SeriesSnapshot) -> list[tuple[str, str]]:
    return [("provider", series.provider), ("model", series.model or ""), ("operation", series.operation)]


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, labels: list[tuple[str, str]], value: float | int) -> None:
        self.lines.append(f"{name}{_labels(labels)} {_number(value)}")

    def histogram(self, name: str, labels: list[tuple[str, str]], histogram: Histogram) -> None:
        for bound, count in zip([*histogram.bounds, float("inf")], histogram.cumulative(), strict=True):
            le = "+Inf" if bound == float("inf") else _number(float(bound))
            self.sample(f"{name}_bucket", [*labels, ("le", le)], count)
        self.sample(f"{name}_sum", labels, float(histogram.sum))
        self.sample(f"{name}_count", labels, histogram.count)

    def quantiles(self, name: str, labels: list[tuple[str, str]], quantiles: Quantiles) -> None:
        for q, value in (("0.5", quantiles.p50), ("0.9", quantiles.p90), ("0.99", quantiles.p99)):
            if value is not None:
                self.sample(name, [*labels, ("quantile", q)], float(value))


def render(snapshot: MetricsSnapshot, insights: Insights) -> str:
    """The snapshot's families, then its ``insights`` (judged by the caller's thresholds)."""
    out = _Writer()
    _call_counters(out, snapshot.series)
    _latencies(out, snapshot.series)
    _breakers(out, snapshot.breakers)
    _health(out, snapshot.series, insights)
    return "\n".join(out.lines) + "\n"


def _call_counters(out: _Writer, series: list[SeriesSnapshot]) -> None:
    def counter(name: str, help_text: str, attribute: str) -> None:
        out.family(name, "counter", help_text)
        for item in series:
            out.sample(name, _base(item), getattr(item, attribute))

    counter(
        "llmrelay_requests_total", "Calls made through llmrelay, answered from cache or rejected included.", "requests"
    )
    counter("llmrelay_successes_total", "Calls that returned a result.", "successes")
    out.family("llmrelay_errors_total", "counter", "Calls that raised, by error type.")
    for item in series:
        for error_type, count in sorted(item.errors_by_type.items()):
            out.sample("llmrelay_errors_total", [*_base(item), ("error_type", error_type)], count)
    counter("llmrelay_streams_cancelled_total", "Streams the caller closed before the end.", "cancelled")
    counter("llmrelay_retries_total", "Retries made by the provider's retry policy.", "retries")
    out.family("llmrelay_tokens_total", "counter", "Tokens reported by the service.")
    for item in series:
        out.sample("llmrelay_tokens_total", [*_base(item), ("kind", "prompt")], item.prompt_tokens)
        out.sample("llmrelay_tokens_total", [*_base(item), ("kind", "completion")], item.completion_tokens)
    out.family("llmrelay_cost_usd_total", "counter", "Cost reported by the service, in USD.")
    for item in series:
        out.sample("llmrelay_cost_usd_total", _base(item), float(item.cost))
    out.family(
        "llmrelay_cache_requests_total",
        "counter",
        "Cache outcomes: hit, stale (served stale), miss, bypass, coalesced (shared a failed load).",
    )
    for item in series:
        for result, count in (
            ("hit", item.cache_hits),
            ("stale", item.cache_stale),
            ("miss", item.cache_misses),
            ("bypass", item.cache_bypass),
            ("coalesced", item.cache_coalesced),
        ):
            if count:
                out.sample("llmrelay_cache_requests_total", [*_base(item), ("result", result)], count)
    counter("llmrelay_breaker_rejections_total", "Calls failed fast by an open circuit breaker.", "breaker_rejections")


def _latencies(out: _Writer, series: list[SeriesSnapshot]) -> None:
    out.family("llmrelay_request_duration_seconds", "histogram", "Call latency (whole stream for stream_execute).")
    for item in series:
        out.histogram("llmrelay_request_duration_seconds", _base(item), item.latency_histogram)
    out.family("llmrelay_time_to_first_token_seconds", "histogram", "Time to the first streamed chunk.")
    for item in series:
        if item.ttft_histogram.count:
            out.histogram("llmrelay_time_to_first_token_seconds", _base(item), item.ttft_histogram)
    out.family("llmrelay_request_duration_window_seconds", "gauge", "Latency percentiles over the rolling window.")
    for item in series:
        out.quantiles("llmrelay_request_duration_window_seconds", _base(item), item.latency)
    out.family(
        "llmrelay_time_to_first_token_window_seconds",
        "gauge",
        "Time to first token percentiles over the rolling window.",
    )
    for item in series:
        out.quantiles("llmrelay_time_to_first_token_window_seconds", _base(item), item.ttft)
    out.family(
        "llmrelay_stream_tokens_per_second",
        "gauge",
        "Completion tokens per second after the first token, rolling window.",
    )
    for item in series:
        out.quantiles("llmrelay_stream_tokens_per_second", _base(item), item.tokens_per_second)


def _breakers(out: _Writer, breakers: list[BreakerSnapshot]) -> None:
    out.family("llmrelay_breaker_state", "gauge", "Circuit breaker state: 1 for the current state.")
    for breaker in breakers:
        labels = [("provider", breaker.provider), ("breaker", breaker.breaker)]
        for state in _BREAKER_STATES:
            out.sample("llmrelay_breaker_state", [*labels, ("state", state)], 1 if breaker.state == state else 0)
    out.family("llmrelay_breaker_opened_total", "counter", "Times a circuit breaker opened.")
    for breaker in breakers:
        out.sample(
            "llmrelay_breaker_opened_total",
            [("provider", breaker.provider), ("breaker", breaker.breaker)],
            breaker.opened,
        )


def _health(out: _Writer, series: list[SeriesSnapshot], insights: Insights) -> None:
    out.family("llmrelay_requests_per_minute", "gauge", "Calls that ended in the last minute.")
    for item in series:
        out.sample("llmrelay_requests_per_minute", _base(item), item.requests_per_minute)
    out.family("llmrelay_health_status", "gauge", "Health status (healthy, degraded, unhealthy): 1 for the current.")
    for status in STATUSES:
        out.sample("llmrelay_health_status", [("status", status)], 1 if insights.status == status else 0)
    out.family("llmrelay_alerts_firing", "gauge", "Alerts firing, by level.")
    for level in LEVELS:
        firing = sum(1 for alert in insights.alerts if alert.level == level)
        out.sample("llmrelay_alerts_firing", [("level", level)], firing)
    out.family("llmrelay_alert", "gauge", "A firing alert (1), by level, metric and series.")
    for alert in insights.alerts:
        labels = [("level", alert.level), ("metric", alert.metric), ("provider", alert.provider)]
        labels += [("model", alert.model or ""), ("operation", alert.operation)]
        out.sample("llmrelay_alert", labels, 1)
