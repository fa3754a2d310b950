"""The metrics collector, snapshot, grade and Prometheus output, without a provider."""

from __future__ import annotations

import json
import re
from decimal import Decimal

import pytest
from llmrelay.core.config import validate_settings
from llmrelay.core.errors import ConfigurationError
from llmrelay.plugins.metrics import (
    CallRecord,
    GradeThresholds,
    MetricsCollector,
    MetricsSettings,
    MetricsSnapshot,
)

from tests.support.clock import FakeClock
from tests.support.prometheus import check_exposition


def collector(**settings) -> tuple[MetricsCollector, FakeClock]:
    clock = FakeClock(100.0)
    return MetricsCollector(MetricsSettings(**settings), clock=clock, wall_clock=lambda: 1_700_000_000.0), clock


def test_counts_per_provider_model_and_operation() -> None:
    metrics, _ = collector()
    metrics.record(CallRecord("p", "m1", "execute", 0.5, prompt_tokens=10, completion_tokens=5, cost=Decimal("0.001")))
    metrics.record(CallRecord("p", "m1", "execute", 1.5, prompt_tokens=1, completion_tokens=2, cost=Decimal("0.0005")))
    metrics.record(CallRecord("p", "m1", "execute", 0.1, error_type="RateLimitError", attempts=3))
    metrics.record(CallRecord("p", "m2", "execute", 0.2))
    metrics.record(CallRecord("p", None, "list_models", 0.3, cache="hit"))
    snap = metrics.snapshot()
    m1 = snap.get("p", "m1", "execute")
    assert (m1.requests, m1.successes, m1.errors) == (3, 2, 1)
    assert m1.errors_by_type == {"RateLimitError": 1}
    assert m1.retries == 2
    assert (m1.prompt_tokens, m1.completion_tokens) == (11, 7)
    assert m1.cost == Decimal("0.0015")
    assert snap.get("p", "m2", "execute").requests == 1
    assert snap.get("p", None, "list_models").cache_hits == 1
    assert snap.totals.requests == 5
    assert snap.totals.cost == Decimal("0.0015")


def test_latency_percentiles_nearest_rank() -> None:
    metrics, _ = collector()
    for ms in range(1, 101):  # 1..100 ms
        metrics.record(CallRecord("p", "m", "execute", ms / 1000))
    latency = metrics.snapshot().get("p", "m", "execute").latency
    assert latency.count == 100
    assert latency.p50 == pytest.approx(0.050)
    assert latency.p90 == pytest.approx(0.090)
    assert latency.p99 == pytest.approx(0.099)
    assert latency.max == pytest.approx(0.100)
    assert latency.mean == pytest.approx(0.0505)


def test_window_is_bounded_in_size_and_age_but_counters_are_not() -> None:
    metrics, clock = collector(window_size=10, window_seconds=60)
    for _ in range(50):
        metrics.record(CallRecord("p", "m", "execute", 9.0))  # old, slow calls
    clock.now += 30
    for _ in range(5):
        metrics.record(CallRecord("p", "m", "execute", 1.0))
    series = metrics.snapshot().get("p", "m", "execute")
    assert series.requests == 55
    assert series.latency.count == 10  # only window_size samples kept
    assert series.latency_histogram.count == 55
    clock.now += 45  # the slow ones are now older than 60 s
    series = metrics.snapshot().get("p", "m", "execute")
    assert series.latency.count == 5 and series.latency.p99 == 1.0


def test_stream_fields_and_cancelled() -> None:
    metrics, _ = collector()
    metrics.record(CallRecord("p", "m", "stream_execute", 2.0, ttft=0.4, tokens_per_second=50.0, completion_tokens=80))
    metrics.record(CallRecord("p", "m", "stream_execute", 0.5, ttft=0.2, cancelled=True))
    series = metrics.snapshot().get("p", "m", "stream_execute")
    assert (series.requests, series.successes, series.cancelled, series.errors) == (2, 1, 1, 0)
    assert series.ttft.count == 2 and series.ttft.p99 == 0.4
    assert series.tokens_per_second.p50 == 50.0
    assert series.ttft_histogram.count == 2


def test_reset_forgets_counts_but_keeps_breaker_state() -> None:
    metrics, _ = collector()
    metrics.record(CallRecord("p", "m", "execute", 1.0))
    metrics.observe_breaker_event({"breaker": "p", "provider": "p", "from": "closed", "to": "open", "reason": "x"})
    metrics.reset()
    snap = metrics.snapshot()
    assert snap.series == [] and snap.totals.requests == 0
    assert snap.breakers[0].state == "open" and snap.breakers[0].opened == 0


def test_snapshot_json_round_trip_keeps_decimals() -> None:
    metrics, _ = collector()
    metrics.record(CallRecord("p", "m", "execute", 1.0, cost=Decimal("0.000123")))
    snap = metrics.snapshot()
    text = snap.to_json()
    assert json.loads(text)["series"][0]["cost"] == "0.000123"
    again = MetricsSnapshot.from_json(text)
    assert again == snap
    assert again.get("p", "m", "execute").cost == Decimal("0.000123")


def test_merge_adds_counters_of_the_same_series() -> None:
    a, _ = collector()
    b, _ = collector()
    a.record(CallRecord("p", "m", "execute", 1.0, cost=Decimal("1")))
    b.record(CallRecord("p", "m", "execute", 3.0, error_type="ServerError", cost=Decimal("2")))
    b.record(CallRecord("q", "m", "execute", 3.0))
    merged = MetricsSnapshot.merge([a.snapshot(), b.snapshot()])
    series = merged.get("p", "m", "execute")
    assert (series.requests, series.errors, series.cost) == (2, 1, Decimal("3"))
    assert series.latency_histogram.count == 2
    assert series.latency.p90 == 3.0  # the worse window wins
    assert merged.totals.requests == 3


# ---------------------------------------------------------------- grade


def graded(latency: float, errors: int, calls: int = 100, **thresholds):
    metrics, _ = collector()
    for i in range(calls):
        metrics.record(CallRecord("p", "m", "execute", latency, error_type="ServerError" if i < errors else None))
    return metrics.snapshot().grade(GradeThresholds(**thresholds) if thresholds else None)


@pytest.mark.parametrize(
    ("latency", "errors", "expected"),
    [
        (1.9, 0, "A"),
        (2.5, 0, "B"),
        (4.0, 0, "C"),
        (6.0, 0, "D"),
        (1.0, 3, "B"),  # 3% errors
        (1.0, 10, "C"),
        (1.0, 20, "D"),
        (1.0, 60, "F"),  # at or above failing_error_rate (50%)
        (4.0, 3, "C"),  # the worse of the two
    ],
)
def test_grade_thresholds_from_the_reports(latency: float, errors: int, expected: str) -> None:
    assert graded(latency, errors).grade == expected


def test_grade_thresholds_are_configurable() -> None:
    assert graded(2.5, 0, latency_seconds=(3.0, 4.0, 6.0)).grade == "A"
    with pytest.raises(ConfigurationError, match="increasing"):
        validate_settings(
            MetricsSettings, {"grade": {"latency_seconds": [5, 3, 2]}}, source="t", prefix="plugins.metrics"
        )


def test_open_breaker_is_an_f_with_a_recommendation() -> None:
    metrics, _ = collector()
    metrics.record(CallRecord("p", "m", "execute", 0.5))
    metrics.observe_breaker_event({"breaker": "p", "provider": "p", "to": "open", "reason": "5 consecutive failures"})
    report = metrics.snapshot().grade()
    assert report.grade == "F" and report.providers == {"p": "F"}
    assert any("circuit breaker p is open (5 consecutive failures)" in text for text in report.recommendations)


def test_recommends_caching_model_listing() -> None:
    metrics, _ = collector()
    for _ in range(5):
        metrics.record(CallRecord("openrouter", None, "list_models", 0.8))
    report = metrics.snapshot().grade()
    assert any(
        "list_models was called 5 times and never served from cache" in r and "[plugins.cache]" in r
        for r in report.recommendations
    )
    metrics.reset()
    for cache in ("miss", "miss", "miss", "hit"):
        metrics.record(CallRecord("openrouter", None, "list_models", 0.8, cache=cache))
    report = metrics.snapshot().grade()
    assert any("cache hit rate is 25%" in r and "TTL" in r for r in report.recommendations)


def test_recommendations_name_the_cause() -> None:
    metrics, _ = collector()
    for i in range(20):
        error = ["RateLimitError", "APITimeoutError", "AuthenticationError", None][i % 4]
        metrics.record(CallRecord("p", "slow-model", "execute", 4.0, error_type=error))
    text = "\n".join(metrics.snapshot().grade().recommendations)
    assert "rate limited (429)" in text
    assert "timed out" in text and "timeout.read" in text
    assert "API key (401)" in text
    assert "p90 latency is 4.0s" in text and "stream_execute" in text
    assert metrics.snapshot().grade().text().startswith("overall grade: F")


def test_no_calls_no_grade() -> None:
    metrics, _ = collector()
    report = metrics.snapshot().grade()
    assert report.grade is None
    assert "no calls yet" in report.text()


# ---------------------------------------------------------------- prometheus


def test_prometheus_text_is_well_formed_and_consistent() -> None:
    metrics, _ = collector()
    metrics.record(CallRecord("p", 'we"ird\\model', "execute", 0.3, error_type="ServerError", cost=Decimal("0.5")))
    metrics.record(CallRecord("p", 'we"ird\\model', "execute", 2.5, cache="miss"))
    metrics.record(CallRecord("p", "m", "stream_execute", 4.0, ttft=0.15, tokens_per_second=30.0))
    metrics.observe_breaker_event({"breaker": "p", "provider": "p", "to": "half_open"})
    text = metrics.prometheus()
    lines = text.splitlines()
    typed = check_exposition(text)
    assert typed["llmrelay_requests_total"] == "counter"
    assert typed["llmrelay_request_duration_seconds"] == "histogram"
    assert 'model="we\\"ird\\\\model"' in text
    # histogram buckets are cumulative and end at the count
    buckets = [
        line for line in lines if line.startswith('llmrelay_request_duration_seconds_bucket{provider="p",model="we')
    ]
    counts = [int(line.rsplit(" ", 1)[1]) for line in buckets]
    assert counts == sorted(counts) and counts[-1] == 2
    assert 'le="0.5"} 1' in buckets[2] and buckets[-1].split("le=")[1].startswith('"+Inf"')
    assert (
        'llmrelay_errors_total{provider="p",model="we\\"ird\\\\model",operation="execute",error_type="ServerError"} 1'
        in text
    )
    assert 'llmrelay_time_to_first_token_seconds_count{provider="p",model="m",operation="stream_execute"} 1' in text
    assert 'llmrelay_breaker_state{provider="p",breaker="p",state="half_open"} 1' in text
    assert 'llmrelay_breaker_state{provider="p",breaker="p",state="open"} 0' in text
    assert 'llmrelay_cost_usd_total{provider="p",model="we\\"ird\\\\model",operation="execute"} 0.5' in text
    assert text.endswith("\n")


def test_settings_validation() -> None:
    with pytest.raises(ConfigurationError, match=re.escape("plugins.metrics.window_size")):
        validate_settings(MetricsSettings, {"window_size": 0}, source="t", prefix="plugins.metrics")
    with pytest.raises(ConfigurationError, match="buckets"):
        validate_settings(MetricsSettings, {"latency_buckets": [1, 0.5]}, source="t", prefix="plugins.metrics")
    with pytest.raises(ConfigurationError, match="unknown setting"):
        validate_settings(MetricsSettings, {"windw_size": 5}, source="t", prefix="plugins.metrics")


def test_breaker_events_out_of_order_keep_the_latest_state() -> None:
    metrics, _ = collector()
    base = {"breaker": "p", "provider": "p"}
    metrics.observe_breaker_event({**base, "from": "open", "to": "half_open", "generation": 2})
    metrics.observe_breaker_event(
        {**base, "from": "closed", "to": "open", "generation": 1, "reason": "5 consecutive failures"}
    )
    metrics.observe_breaker("p", "p", None, "closed")  # a sighting never overrides what events said
    (breaker,) = metrics.snapshot().breakers
    assert (breaker.state, breaker.transitions, breaker.opened) == ("half_open", 2, 1)
