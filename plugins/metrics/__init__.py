"""Metrics plugin: per provider, model and operation, around every call.

On by default; configure or switch it off in the config file::

    [plugins.metrics]
    enabled = true
    window_size = 1000              # latency samples kept per series
    window_seconds = 300
    log_level = "DEBUG"             # per-call event on logger llmrelay.metrics ("OFF" to silence)
    snapshot_path = "/var/run/llmrelay/metrics-{pid}.json"   # for `llmrelay metrics`
    [plugins.metrics.grade]
    latency_seconds = [2, 3, 5]     # A / B / C limits
    error_rate = [0.01, 0.05, 0.15]
    [plugins.metrics.alerts]
    critical_latency_seconds = 5    # average latency above: critical
    warning_error_rate = 0.05       # error rate above: warning
    info_cache_hit_rate = 0.2       # cache hit rate below: info

From Python::

    from llmrelay.plugins.metrics import metrics_registry
    snapshot = metrics_registry().snapshot()        # typed (pydantic); .to_json()
    print(snapshot.prometheus())
    print(snapshot.grade().text())                  # A-F with recommendations
    insights = metrics_registry().insights()        # status, alerts, requests per minute, advice
    record_event("document_generation", duration_ms=1250, success=True)   # on the same log stream
    provider.layer("metrics").collector.reset()
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmrelay.core.lazy import lazy_exports
from llmrelay.core.pipeline import LayerContext

from .settings import MetricsSettings

# The public names, each with the module it is imported from on first use
# (PEP 562): the one list. Building a provider needs only the settings and
# the layer; snapshots and grading load when a program asks for them.
# ``__all__`` and ``__getattr__`` are made from it; the TYPE_CHECKING imports
# at the end name the same things for type checkers, as in llmrelay.core.
_EXPORTS: dict[str, str] = {
    "LATENCY_BUCKETS": "settings",
    "TTFT_BUCKETS": "settings",
    "AlertThresholds": "settings",
    "GradeThresholds": "settings",
    "MetricsSettings": "settings",
    "Alert": "alerts",
    "Insights": "alerts",
    "CallRecord": "collector",
    "MetricsCollector": "collector",
    "HealthReport": "grading",
    "SeriesGrade": "grading",
    "grade": "grading",
    "record_event": "events",
    "MetricsLayer": "layer",
    "MetricsRegistry": "registry",
    "SnapshotWriter": "registry",
    "metrics_registry": "registry",
    "BreakerSnapshot": "snapshot",
    "Histogram": "snapshot",
    "MetricsSnapshot": "snapshot",
    "Quantiles": "snapshot",
    "SeriesSnapshot": "snapshot",
    "Totals": "snapshot",
}

__all__ = [*_EXPORTS, "build_layer"]


__getattr__ = lazy_exports(__name__, _EXPORTS, globals())


def build_layer(context: LayerContext) -> MetricsLayer:
    """The metrics layer for one provider, recording into the process-wide registry."""
    from .layer import MetricsLayer
    from .registry import metrics_registry

    settings = context.settings_as(MetricsSettings)
    registry = metrics_registry()
    collector = registry.collector(context.provider_name, settings)
    writer = None
    if settings.snapshot_path:
        writer = registry.snapshot_writer(settings.snapshot_path, settings.snapshot_interval)
    level = settings.log_level
    return MetricsLayer(context.provider_name, collector, log_level=level, writer=writer)


if TYPE_CHECKING:  # pragma: no cover - the names of _EXPORTS, for type checkers and IDEs
    from .alerts import Alert as Alert
    from .alerts import Insights as Insights
    from .collector import CallRecord as CallRecord
    from .collector import MetricsCollector as MetricsCollector
    from .events import record_event as record_event
    from .grading import HealthReport as HealthReport
    from .grading import SeriesGrade as SeriesGrade
    from .grading import grade as grade
    from .layer import MetricsLayer as MetricsLayer
    from .registry import MetricsRegistry as MetricsRegistry
    from .registry import SnapshotWriter as SnapshotWriter
    from .registry import metrics_registry as metrics_registry
    from .settings import LATENCY_BUCKETS as LATENCY_BUCKETS
    from .settings import TTFT_BUCKETS as TTFT_BUCKETS
    from .settings import AlertThresholds as AlertThresholds
    from .settings import GradeThresholds as GradeThresholds
    from .settings import MetricsSettings as MetricsSettings
    from .snapshot import BreakerSnapshot as BreakerSnapshot
    from .snapshot import Histogram as Histogram
    from .snapshot import MetricsSnapshot as MetricsSnapshot
    from .snapshot import Quantiles as Quantiles
    from .snapshot import SeriesSnapshot as SeriesSnapshot
    from .snapshot import Totals as Totals
