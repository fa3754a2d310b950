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

From Python::

    from llmrelay.plugins.metrics import metrics_registry
    snapshot = metrics_registry().snapshot()        # typed (pydantic); .to_json()
    print(snapshot.prometheus())
    print(snapshot.grade().text())                  # A-F with recommendations
    provider.layer("metrics").collector.reset()
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from llmrelay.core.pipeline import LayerContext

if TYPE_CHECKING:
    from .collector import CallRecord, MetricsCollector
    from .grade import HealthReport, SeriesGrade, grade
    from .layer import MetricsLayer
    from .registry import MetricsRegistry, SnapshotWriter, metrics_registry
    from .snapshot import BreakerSnapshot, Histogram, MetricsSnapshot, Quantiles, SeriesSnapshot, Totals

from .settings import LATENCY_BUCKETS, TTFT_BUCKETS, GradeThresholds, MetricsSettings

# Everything else is imported on first use (PEP 562): building a provider
# needs only the settings and the layer; snapshots, grading and the CLI
# command load when a program asks for them.
_LAZY = {
    "CallRecord": "collector",
    "MetricsCollector": "collector",
    "HealthReport": "grade",
    "SeriesGrade": "grade",
    "grade": "grade",
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


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "LATENCY_BUCKETS",
    "TTFT_BUCKETS",
    "BreakerSnapshot",
    "CallRecord",
    "GradeThresholds",
    "HealthReport",
    "Histogram",
    "MetricsCollector",
    "MetricsLayer",
    "MetricsRegistry",
    "MetricsSettings",
    "MetricsSnapshot",
    "Quantiles",
    "SeriesGrade",
    "SeriesSnapshot",
    "SnapshotWriter",
    "Totals",
    "build_layer",
    "grade",
    "metrics_registry",
]


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
