"""Monitoring: requests per minute, alert levels, the health status and custom events on the metrics log stream."""

from __future__ import annotations

import contextlib
import json
import logging
from decimal import Decimal

import pytest
from llmrelay.core import create_provider
from llmrelay.core.cli.main import main
from llmrelay.core.config import validate_settings
from llmrelay.core.errors import ConfigurationError, ServerError
from llmrelay.core.gateway.observability import SHARE_DIR_ENV, Observer
from llmrelay.core.gateway.settings import GatewaySettings
from llmrelay.core.settings import default_settings
from llmrelay.plugins.metrics import (
    AlertThresholds,
    CallRecord,
    MetricsCollector,
    MetricsLayer,
    MetricsSettings,
    MetricsSnapshot,
    metrics_registry,
    record_event,
)
from llmrelay.plugins.metrics.alerts import ALL_WELL, NO_CALLS
from pydantic import SecretStr

from tests.support.clock import FakeClock
from tests.support.metrics_fixture import fresh_metrics
from tests.support.prometheus import check_exposition

__all__ = ["fresh_metrics"]  # an autouse fixture, imported to be found by pytest

KEY = "sk-or-v1-0123456789abcdef0123456789abcdef"
REQUEST = {"model": "fake/small", "messages": [{"role": "user", "content": "hi"}]}


def collector(**settings) -> tuple[MetricsCollector, FakeClock]:
    clock = FakeClock(1000.0)
    settings_model = MetricsSettings.model_validate(settings)
    return MetricsCollector(settings_model, clock=clock, wall_clock=lambda: 1_700_000_000.0), clock


def calls(metrics: MetricsCollector, n: int, latency: float = 0.5, operation: str = "execute", **fields) -> None:
    for _ in range(n):
        metrics.record(CallRecord("p", "m", operation, latency, **fields))


# ---------------------------------------------------------------- requests per minute


def test_requests_per_minute_counts_the_calls_of_the_last_minute() -> None:
    metrics, clock = collector()
    calls(metrics, 5)  # at t = 1000
    clock.advance(30)
    calls(metrics, 3)  # at t = 1030
    snap = metrics.snapshot()
    assert snap.get("p", "m", "execute").requests_per_minute == 8
    assert snap.totals.requests_per_minute == 8
    clock.advance(29.5)  # t = 1059.5: second 1000 is still one of the last 60
    assert metrics.snapshot().totals.requests_per_minute == 8
    clock.advance(0.5)  # t = 1060: the calls of second 1000 are a minute old
    assert metrics.snapshot().totals.requests_per_minute == 3
    clock.advance(30)
    snap = metrics.snapshot()
    assert snap.totals.requests_per_minute == 0
    assert snap.totals.requests == 8  # a rate, not the counters: those keep counting


def test_requests_per_minute_survives_many_minutes_and_late_reports() -> None:
    metrics, clock = collector()
    for _ in range(300):  # five minutes, one call a second: the ring is reused again and again
        clock.advance(1)
        calls(metrics, 1)
    assert metrics.snapshot().totals.requests_per_minute == 60  # this second's call and the 59 before
    clock.advance(1)
    assert metrics.snapshot().totals.requests_per_minute == 59
    # A call reported with an end time over a minute older than what the ring holds is not "in the last minute".
    metrics.count("p", "m", "execute", 0.5, now=clock.now - 120)
    snap = metrics.snapshot()
    assert snap.totals.requests_per_minute == 59 and snap.totals.requests == 301


def test_requests_per_minute_adds_up_across_series_and_processes_and_resets() -> None:
    one, _ = collector()
    two, _ = collector()
    calls(one, 4)
    calls(two, 6)
    two.record(CallRecord("p", None, "list_models", 0.1))
    merged = MetricsSnapshot.merge([one.snapshot(), two.snapshot()])
    assert merged.get("p", "m", "execute").requests_per_minute == 10
    assert merged.totals.requests_per_minute == 11
    assert MetricsSnapshot.from_json(merged.to_json()).totals.requests_per_minute == 11
    one.reset()
    assert one.snapshot().totals.requests_per_minute == 0


def test_a_stopped_process_adds_nothing_to_the_merged_requests_per_minute() -> None:
    live, _ = collector()
    stopped = MetricsCollector(clock=FakeClock(5.0), wall_clock=lambda: 1_700_000_000.0 - 60)  # a minute older
    calls(live, 2)
    calls(stopped, 7)
    merged = MetricsSnapshot.merge([stopped.snapshot(), live.snapshot()])
    assert merged.totals.requests == 9  # its counts still add up
    assert merged.totals.requests_per_minute == 2  # its last minute is over
    recent = MetricsCollector(clock=FakeClock(5.0), wall_clock=lambda: 1_700_000_000.0 - 59)
    calls(recent, 7)
    assert MetricsSnapshot.merge([recent.snapshot(), live.snapshot()]).totals.requests_per_minute == 9


# ---------------------------------------------------------------- alerts


@pytest.mark.parametrize(
    ("latency", "errors", "cache", "expected"),
    [
        (5.5, 0, None, [("critical", "latency_seconds")]),
        (5.0, 0, None, []),  # "above 5 s": at 5 s it is not
        (0.5, 6, None, [("warning", "error_rate")]),  # 6 of 100
        (0.5, 5, None, []),  # 5 % is not above 5 %
        (0.5, 0, (10, 90), [("info", "cache_hit_rate")]),  # 10 % hits
        (0.5, 0, (20, 80), []),  # 20 % is not below 20 %
        (6.0, 10, (0, 100), [("critical", "latency_seconds"), ("warning", "error_rate"), ("info", "cache_hit_rate")]),
    ],
)
def test_alert_levels_from_the_reports(latency, errors, cache, expected) -> None:
    metrics, _ = collector()
    hits, misses = cache or (0, 0)
    outcomes = ["hit"] * hits + ["miss"] * misses or [None] * 100
    for i, outcome in enumerate(outcomes):
        error = "ServerError" if i < errors else None
        metrics.record(CallRecord("p", "m", "execute", latency, error_type=error, cache=outcome))
    found = metrics.snapshot().alerts()
    assert [(a.level, a.metric) for a in found] == expected


def test_an_alert_says_what_crossed_which_threshold() -> None:
    metrics, _ = collector()
    calls(metrics, 9, latency=6.0)
    calls(metrics, 1, latency=6.0, error_type="RateLimitError")
    critical, warning = metrics.snapshot().alerts()
    assert (critical.provider, critical.model, critical.operation) == ("p", "m", "execute")
    assert critical.value == pytest.approx(6.0) and critical.threshold == 5.0
    assert critical.message == "p/m execute: average latency 6.00s is above 5s"
    assert warning.value == pytest.approx(0.1) and warning.threshold == 0.05
    assert "error rate 10.0% is above 5.0% (1 of 10 calls)" in warning.message


def test_streams_alert_on_time_to_first_token_not_on_their_length() -> None:
    metrics, _ = collector()
    calls(metrics, 3, latency=40.0, operation="stream_execute", ttft=0.4)  # long answers, quick to start
    assert metrics.snapshot().alerts() == []
    calls(metrics, 3, latency=40.0, operation="stream_execute", ttft=12.0)
    (alert,) = metrics.snapshot().alerts()
    assert (alert.level, alert.metric) == ("critical", "time_to_first_token_seconds")
    assert alert.value == pytest.approx(6.2) and "average time to first token" in alert.message


def test_the_latency_alert_follows_the_rolling_window() -> None:
    metrics, clock = collector(window_seconds=60)
    calls(metrics, 10, latency=8.0)
    assert [a.level for a in metrics.snapshot().alerts()] == ["critical"]
    clock.advance(120)  # the slow calls left the window; the service recovered
    calls(metrics, 10, latency=0.5)
    assert metrics.snapshot().alerts() == []


def test_alert_thresholds_are_configurable_and_can_be_switched_off() -> None:
    settings = validate_settings(
        MetricsSettings,
        {"alerts": {"critical_latency_seconds": 10, "warning_error_rate": None, "min_requests": 5}},
        source="t",
        prefix="plugins.metrics",
    )
    metrics = MetricsCollector(settings, clock=FakeClock(0.0))
    calls(metrics, 4, latency=6.0, error_type="ServerError")
    assert metrics.snapshot().alerts(settings.alerts) == []  # 4 calls: under min_requests
    calls(metrics, 1, latency=11.0, error_type="ServerError")
    assert [a.metric for a in metrics.snapshot().alerts(settings.alerts)] == []  # average 7 s, errors switched off
    calls(metrics, 5, latency=20.0)
    assert [(a.level, a.threshold) for a in metrics.insights().alerts] == [("critical", 10.0)]
    assert [a.level for a in metrics.snapshot().alerts()] == ["critical", "warning"]  # the defaults


def test_bad_alert_thresholds_name_the_setting() -> None:
    with pytest.raises(ConfigurationError, match=r"plugins\.metrics\.alerts\.warning_error_rate"):
        validate_settings(MetricsSettings, {"alerts": {"warning_error_rate": 5}}, source="t", prefix="plugins.metrics")
    with pytest.raises(ConfigurationError, match="false to switch this alert off"):
        validate_settings(
            MetricsSettings, {"alerts": {"info_cache_hit_rate": True}}, source="t", prefix="plugins.metrics"
        )
    with pytest.raises(ConfigurationError, match="unknown setting"):
        validate_settings(MetricsSettings, {"alerts": {"critical_latency": 5}}, source="t", prefix="plugins.metrics")


def test_default_alert_thresholds_are_what_validating_nothing_gives() -> None:
    assert default_settings(AlertThresholds) == AlertThresholds.model_validate({})
    assert MetricsSettings().alerts == AlertThresholds(
        critical_latency_seconds=5.0, warning_error_rate=0.05, info_cache_hit_rate=0.2
    )


# ---------------------------------------------------------------- status and recommendations


def test_status_is_healthy_degraded_or_unhealthy_by_alerts_and_grade() -> None:
    metrics, _ = collector()
    calls(metrics, 10, latency=0.5, cache="miss")  # info alert only
    insights = metrics.insights()
    assert [a.level for a in insights.alerts] == ["info"] and insights.status == "healthy"

    metrics.reset()
    calls(metrics, 94, latency=0.5)
    calls(metrics, 6, latency=0.5, error_type="ServerError")
    assert metrics.insights().status == "degraded"  # warning: 6 % errors (grade B)

    metrics.reset()
    calls(metrics, 10, latency=6.0)
    assert metrics.insights().status == "unhealthy"  # critical: average latency 6 s

    metrics.reset()
    calls(metrics, 10, latency=4.0)
    insights = metrics.insights()
    assert insights.alerts == [] and insights.grade == "C" and insights.status == "degraded"

    metrics.reset()
    calls(metrics, 10, latency=0.5)
    metrics.observe_breaker_event({"breaker": "p", "provider": "p", "to": "open"})
    insights = metrics.insights()
    assert insights.alerts == [] and insights.grade == "F" and insights.status == "unhealthy"


def test_there_is_always_a_recommendation() -> None:
    metrics, _ = collector()
    assert metrics.insights().recommendations == [NO_CALLS]
    calls(metrics, 10, latency=0.5)
    insights = metrics.insights()
    assert (insights.status, insights.grade, insights.recommendations) == ("healthy", "A", [ALL_WELL])
    # An info alert the grade has no advice for: the alert's own advice.
    metrics.reset()
    for outcome in ["hit"] + ["miss"] * 8:
        metrics.record(CallRecord("p", "m", "execute", 0.5, cache=outcome))
    insights = metrics.insights()
    assert [a.metric for a in insights.alerts] == ["cache_hit_rate"]
    assert len(insights.recommendations) == 1 and "cache hit rate is 11%" in insights.recommendations[0]
    # When the grade has advice, that is the advice.
    metrics.reset()
    calls(metrics, 10, latency=0.5, error_type="RateLimitError")
    assert any("rate limited (429)" in text for text in metrics.insights().recommendations)


# ---------------------------------------------------------------- Prometheus


def test_prometheus_has_the_rate_the_status_and_the_alerts() -> None:
    metrics, _ = collector()
    calls(metrics, 9, latency=6.0)
    calls(metrics, 1, latency=6.0, error_type="ServerError")
    text = metrics.prometheus()
    types = check_exposition(text)
    for family in (
        "llmrelay_requests_per_minute",
        "llmrelay_health_status",
        "llmrelay_alerts_firing",
        "llmrelay_alert",
    ):
        assert types[family] == "gauge"
    base = 'provider="p",model="m",operation="execute"'
    assert f"llmrelay_requests_per_minute{{{base}}} 10" in text
    assert 'llmrelay_health_status{status="unhealthy"} 1' in text
    assert 'llmrelay_health_status{status="healthy"} 0' in text
    assert 'llmrelay_alerts_firing{level="critical"} 1' in text
    assert 'llmrelay_alerts_firing{level="warning"} 1' in text
    assert 'llmrelay_alerts_firing{level="info"} 0' in text
    assert f'llmrelay_alert{{level="critical",metric="latency_seconds",{base}}} 1' in text
    assert f'llmrelay_alert{{level="warning",metric="error_rate",{base}}} 1' in text


def test_prometheus_judges_by_the_collectors_thresholds() -> None:
    metrics, _ = collector(alerts={"critical_latency_seconds": 30})
    calls(metrics, 10, latency=6.0)
    text = metrics.prometheus()
    check_exposition(text)
    assert "llmrelay_alert{" not in text
    assert 'llmrelay_alerts_firing{level="critical"} 0' in text
    assert 'llmrelay_alert{level="critical"' in metrics.snapshot().prometheus()  # the defaults: 6 s > 5 s


# ---------------------------------------------------------------- the process registry and `llmrelay metrics`


def test_the_registry_judges_by_the_configured_thresholds(registry) -> None:
    config = {"plugins": {"metrics": {"alerts": {"critical_latency_seconds": 10}}}}
    provider = create_provider("fake", registry=registry, plugins=["metrics"], config=config)
    clock = provider.layer("metrics").collector.clock = FakeClock(50.0)

    def takes(seconds: float):
        def script(operation, request):
            clock.advance(seconds)

        return script

    provider.inner.script = takes(8.0)  # critical by the defaults (5 s), not by this config (10 s)
    provider.execute(REQUEST)
    insights = metrics_registry().insights()
    assert insights.alerts == [] and insights.requests_per_minute == 1
    provider.inner.script = takes(16.0)  # average 12 s
    provider.execute(REQUEST)
    insights = metrics_registry().insights()
    assert [(a.level, a.value, a.threshold) for a in insights.alerts] == [("critical", 12.0, 10.0)]
    assert insights.status == "unhealthy"
    assert 'llmrelay_alert{level="critical"' in metrics_registry().prometheus()
    provider.close()


def service_snapshot(registry, path, failures: int) -> None:
    config = {"plugins": {"metrics": {"snapshot_path": str(path), "snapshot_interval": 3600}}}
    provider = create_provider("fake", registry=registry, plugins=["metrics"], config=config)
    provider.inner.errors = [ServerError("down", status=500) for _ in range(failures)]
    for _ in range(10):
        with contextlib.suppress(ServerError):
            provider.execute(REQUEST)
    provider.close()
    metrics_registry().clear()  # the CLI is another process


def test_cli_text_json_and_prometheus_carry_the_insights(registry, tmp_path, capsys) -> None:
    path = tmp_path / "metrics.json"
    service_snapshot(registry, path, failures=1)  # 10 % errors: a warning
    assert main(["metrics", "--snapshot", str(path)], registry=registry) == 0
    out = capsys.readouterr().out
    assert out.startswith("overall grade: C")
    assert "status: degraded" in out and "requests in the last minute: 10" in out
    assert "  - warning: fake/fake/small execute: error rate 10.0% is above 5.0%" in out
    assert out.count("recommendations:") == 1

    assert main(["metrics", "--snapshot", str(path), "--format", "json"], registry=registry) == 0
    text = capsys.readouterr().out
    insights = json.loads(text)["insights"]
    assert insights["status"] == "degraded" and insights["requests_per_minute"] == 10
    assert [(a["level"], a["metric"], a["value"]) for a in insights["alerts"]] == [("warning", "error_rate", 0.1)]
    assert insights["recommendations"]
    assert MetricsSnapshot.from_json(text).totals.requests == 10  # still a snapshot file

    assert main(["metrics", "--snapshot", str(path), "--format", "prometheus"], registry=registry) == 0
    text = capsys.readouterr().out
    check_exposition(text)
    assert 'llmrelay_alert{level="warning",metric="error_rate",provider="fake"' in text


def test_cli_uses_the_config_files_alert_thresholds(registry, tmp_path, capsys) -> None:
    path = tmp_path / "metrics.json"
    service_snapshot(registry, path, failures=1)
    config = tmp_path / "llmrelay.toml"
    config.write_text(
        f'[plugins.metrics]\nsnapshot_path = "{path}"\n[plugins.metrics.alerts]\nwarning_error_rate = false\n',
        encoding="utf-8",
    )
    assert main(["--config", str(config), "metrics"], registry=registry) == 0
    assert "alerts: none" in capsys.readouterr().out


# ---------------------------------------------------------------- the gateway reads the plugin's insights


class OneProviderBackend:
    """What the gateway's Observer asks of its backend: each member's layer by name."""

    def __init__(self, layer: MetricsLayer) -> None:
        self.layer = layer

    def layers(self, name: str) -> list[MetricsLayer]:
        return [self.layer] if name == "metrics" else []


def test_gateway_performance_and_metrics_come_from_the_snapshots_insights(monkeypatch) -> None:
    monkeypatch.delenv(SHARE_DIR_ENV, raising=False)  # one worker, no shared store
    metrics, clock = collector(alerts={"critical_latency_seconds": 2})
    observer = Observer(OneProviderBackend(MetricsLayer("p", metrics)), GatewaySettings(), clock=lambda: 1.7e9)
    calls(metrics, 6, latency=3.0)
    report = observer.performance()
    insights = metrics.insights()
    assert report["insights"] == {
        "status": insights.status,
        "performanceGrade": insights.grade,
        "recommendations": insights.recommendations,
    }
    assert report["insights"]["status"] == "unhealthy"  # 3 s is critical by this gateway's thresholds
    assert report["metrics"]["requestsPerMinute"] == 6
    text = observer.prometheus()
    check_exposition(text)
    assert 'llmrelay_alert{level="critical",metric="latency_seconds",provider="p"' in text
    observer.performance(reset=True)
    clock.advance(61)
    report = observer.performance()
    assert report["metrics"]["requestCount"] == 0 and report["metrics"]["requestsPerMinute"] == 0
    assert report["insights"]["recommendations"]
    observer.close()


def test_gateway_without_metrics_says_so() -> None:
    class NoLayers:
        def layers(self, name: str) -> list[object]:
            return []

    report = Observer(NoLayers(), GatewaySettings(), share=None).performance()
    assert report["insights"]["performanceGrade"] == "N/A"
    assert "[plugins.metrics] enabled = false" in report["insights"]["recommendations"][0]


# ---------------------------------------------------------------- custom events on the metrics log stream


def metrics_records(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "llmrelay.metrics"]


def test_a_custom_event_goes_to_the_call_events_stream_in_their_shape(registry, caplog) -> None:
    provider = create_provider("fake", registry=registry, plugins=["metrics"])
    with caplog.at_level(logging.DEBUG, logger="llmrelay.metrics"):
        provider.execute(REQUEST)
        returned = record_event("document_generation", duration_ms=1250, success=True, pages=3)
    call, custom = metrics_records(caplog)
    assert call.llmrelay_event["event"] == "llmrelay.call"
    assert custom.levelno == logging.INFO
    assert (
        custom.llmrelay_event
        == returned
        == {
            "event": "llmrelay.custom",
            "name": "document_generation",
            "duration_ms": 1250,
            "success": True,
            "pages": 3,
        }
    )
    assert custom.getMessage() == "event document_generation duration_ms=1250 success=True pages=3"
    provider.close()


def test_a_custom_event_never_logs_a_secret(caplog) -> None:
    with caplog.at_level(logging.INFO, logger="llmrelay.metrics"):
        event = record_event(
            "upstream_call",
            api_key=KEY,
            openrouterApiKey=KEY,
            password="hunter2-hunter2",
            access_token="opaque-value-1234",
            headers={"Authorization": f"Bearer {KEY}", "x-request-id": "r-1"},
            credentials=SecretStr("also-secret-value"),
            note=f"retried with {KEY}",
            url=f"https://example.test/v1?key={KEY}",
            prompt_tokens=12,
            completion_tokens=7,
            cost=Decimal("0.0015"),
            models=("a", "b"),
        )
    (record,) = metrics_records(caplog)
    for secret in (KEY, "hunter2-hunter2", "opaque-value-1234", "also-secret-value"):
        assert secret not in record.getMessage() and secret not in repr(record.__dict__)
    assert event["api_key"] == event["openrouterApiKey"] == event["password"] == event["access_token"] == "***"
    assert event["headers"] == {"Authorization": "***", "x-request-id": "r-1"}
    assert event["credentials"] == "***" and event["note"] == "retried with ***"
    assert (event["prompt_tokens"], event["completion_tokens"]) == (12, 7)  # counts, not secrets
    assert event["cost"] == "0.0015" and event["models"] == ["a", "b"]
    json.dumps(event)  # what a JSON log formatter would do


def test_a_custom_event_with_a_bad_name_or_field_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="non-empty event name"):
        record_event("  ")
    with pytest.raises(ConfigurationError, match="event cannot be a field name"):
        record_event("x", event="y")
    with pytest.raises(ConfigurationError, match="name cannot be a field name"):
        record_event("x", name="y")


def test_custom_events_follow_the_loggers_level(caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="llmrelay.metrics"):
        assert record_event("quiet", n=1)["n"] == 1  # still returned, not logged
    assert metrics_records(caplog) == []
