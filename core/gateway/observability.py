"""``/metrics``, ``/api/performance`` and the gateway's own counters, over every worker.

The numbers come from the metrics plugin's layer on each served provider
(``provider.layer("metrics").collector.snapshot()``): the gateway counts
nothing about calls itself. Workers are separate processes, so each one
publishes its snapshot every ``publish_interval`` seconds (and the worker
answering reads its own live): to a directory the master made (one machine),
or to Redis with ``[gateway] redis_url`` (every machine of a fleet). The
snapshots' counters and histograms add up (``MetricsSnapshot.merge``), which is
why this is not ``prometheus_client``'s multiprocess mode: that needs its own
metric objects, a directory the operator must wipe between runs, and cannot
span machines.

``?action=reset`` does not zero anyone's counters (Prometheus counters must
only grow): it stores the current totals as the baseline that
``/api/performance`` subtracts, in the shared store, so every worker agrees.

What the figures mean is the metrics plugin's to say, not the gateway's:
``insights`` (status, grade, recommendations), ``requestsPerMinute`` (calls
that ended in the last minute: a rate, which a reset does not change) and
the alerts on ``/metrics`` come from the merged snapshot's ``insights()``,
judged by the served providers' ``[plugins.metrics]`` thresholds.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .backend import Backend
    from .settings import GatewaySettings

__all__ = ["DirectoryShare", "Observer", "RedisShare"]

log = logging.getLogger("llmrelay.gateway")

SHARE_DIR_ENV = "LLMRELAY_GATEWAY_SHARE_DIR"
_METRICS_OFF = "Metrics are off ([plugins.metrics] enabled = false): turn them on for figures, alerts and advice."
_OVERHEAD_BOUNDS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05)


class DirectoryShare:
    """One JSON file per worker in a directory (the workers of one machine)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def publish(self, worker: str, state: dict[str, Any]) -> None:
        target = self.directory / f"worker-{worker}.json"
        temporary = target.with_suffix(".tmp")
        temporary.write_text(json.dumps(state))
        os.replace(temporary, target)

    def states(self) -> dict[str, dict[str, Any]]:
        found = {}
        for path in self.directory.glob("worker-*.json"):
            try:
                found[path.stem[len("worker-") :]] = json.loads(path.read_text())
            except (OSError, ValueError):
                continue  # being replaced right now: its next publication counts
        return found

    def baseline(self) -> dict[str, Any] | None:
        try:
            baseline: dict[str, Any] = json.loads((self.directory / "baseline.json").read_text())
            return baseline
        except (OSError, ValueError):
            return None

    def set_baseline(self, baseline: dict[str, Any]) -> None:
        target = self.directory / "baseline.json"
        temporary = target.with_suffix(".tmp")
        temporary.write_text(json.dumps(baseline))
        os.replace(temporary, target)


class RedisShare:
    """Worker states in one Redis hash (every machine of a fleet)."""

    def __init__(self, url: str, namespace: str = "llmrelay:gateway") -> None:
        import redis

        self.client = redis.Redis.from_url(url, socket_timeout=0.5)
        self.states_key = f"{namespace}:workers"
        self.baseline_key = f"{namespace}:baseline"

    def publish(self, worker: str, state: dict[str, Any]) -> None:
        self.client.hset(self.states_key, worker, json.dumps(state))

    def states(self) -> dict[str, dict[str, Any]]:
        raw: dict[bytes, bytes] = self.client.hgetall(self.states_key)  # type: ignore[assignment]  # sync client
        return {key.decode(): json.loads(value) for key, value in raw.items()}

    def baseline(self) -> dict[str, Any] | None:
        raw = self.client.get(self.baseline_key)
        return json.loads(raw) if raw else None

    def set_baseline(self, baseline: dict[str, Any]) -> None:
        self.client.set(self.baseline_key, json.dumps(baseline))


Share = DirectoryShare | RedisShare


class Observer:
    """The gateway's counters and the merged view of every worker's metrics."""

    def __init__(
        self,
        backend: Backend,
        settings: GatewaySettings,
        share: Share | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.backend = backend
        self.clock = clock
        self.worker = f"{socket.gethostname()}-{os.getpid()}"
        if share is None and settings.redis_url:
            share = RedisShare(settings.redis_url, settings.redis_namespace)
        elif share is None and os.environ.get(SHARE_DIR_ENV):
            share = DirectoryShare(os.environ[SHARE_DIR_ENV])
        self.share = share
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, int], int] = {}
        self._overhead_counts = [0] * (len(_OVERHEAD_BOUNDS) + 1)
        self._overhead_sum = 0.0
        self._baseline: dict[str, Any] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if share is not None:
            self._thread = threading.Thread(
                target=self._publish_loop,
                args=(settings.publish_interval,),
                name="llmrelay-gateway-metrics",
                daemon=True,
            )
            self._thread.start()

    # ------------------------------------------------------------------ recording

    def observe_request(self, path: str, status: int, overhead_ms: float) -> None:
        seconds = overhead_ms / 1000
        bucket = 0
        while bucket < len(_OVERHEAD_BOUNDS) and seconds > _OVERHEAD_BOUNDS[bucket]:
            bucket += 1
        with self._lock:
            key = (path, status)
            self._requests[key] = self._requests.get(key, 0) + 1
            self._overhead_counts[bucket] += 1
            self._overhead_sum += seconds

    # ------------------------------------------------------------------ state

    def _snapshots(self) -> list[Any]:
        return [layer.collector.snapshot() for layer in self.backend.layers("metrics")]

    def _metrics_settings(self) -> Any:
        """The served providers' metrics settings (one config file: the first layer's), to judge the merged snapshot."""
        layers = self.backend.layers("metrics")
        return layers[0].collector.settings if layers else None

    def local_state(self) -> dict[str, Any]:
        snapshots = self._snapshots()
        merged = type(snapshots[0]).merge(snapshots).as_dict() if snapshots else None
        entries = 0
        for layer in self.backend.layers("cache"):
            entries += layer.stats().l1_entries
        with self._lock:
            requests = [[path, status, count] for (path, status), count in self._requests.items()]
            overhead = {"counts": list(self._overhead_counts), "sum": self._overhead_sum}
        return {"snapshot": merged, "cache_entries": entries, "requests": requests, "overhead": overhead}

    def states(self) -> list[dict[str, Any]]:
        """Every worker's state: this one's live, the others' as last published."""
        states = [self.local_state()]
        if self.share is not None:
            try:
                others = self.share.states()
            except Exception as exc:  # the store is down: answer with this worker's figures
                log.warning("gateway: cannot read other workers' metrics: %s", type(exc).__name__)
                others = {}
            states += [state for worker, state in others.items() if worker != self.worker]
        return states

    def _merged(self, states: list[dict[str, Any]]) -> Any:
        snapshots = self._snapshots()
        if not snapshots:
            return None
        kind = type(snapshots[0])
        return kind.merge(kind.model_validate(state["snapshot"]) for state in states if state.get("snapshot"))

    def _publish_loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self.publish()

    def publish(self) -> None:
        if self.share is None:
            return
        try:
            self.share.publish(self.worker, self.local_state())
        except Exception as exc:
            log.warning("gateway: cannot publish this worker's metrics: %s", type(exc).__name__)

    def close(self) -> None:
        self._stop.set()
        self.publish()  # the last counts of a worker that stops are kept

    # ------------------------------------------------------------------ /metrics

    def prometheus(self) -> str:
        states = self.states()
        merged = self._merged(states)
        text = merged.prometheus(self._metrics_settings()) if merged is not None else ""
        requests: dict[tuple[str, int], int] = {}
        counts = [0] * (len(_OVERHEAD_BOUNDS) + 1)
        total = 0.0
        for state in states:
            for path, status, count in state.get("requests", []):
                requests[(path, status)] = requests.get((path, status), 0) + count
            overhead = state.get("overhead") or {}
            for index, count in enumerate(overhead.get("counts", [])):
                counts[index] += count
            total += overhead.get("sum", 0.0)
        lines = [
            "# HELP llmrelay_gateway_requests_total HTTP requests the gateway answered.",
            "# TYPE llmrelay_gateway_requests_total counter",
        ]
        for (path, status), count in sorted(requests.items()):
            lines.append(f'llmrelay_gateway_requests_total{{path="{_label(path)}",status="{status}"}} {count}')
        lines += [
            "# HELP llmrelay_gateway_overhead_seconds Time spent in the gateway per request, upstream wait excluded.",
            "# TYPE llmrelay_gateway_overhead_seconds histogram",
        ]
        cumulative = 0
        for bound, count in zip((*_OVERHEAD_BOUNDS, float("inf")), counts, strict=True):
            cumulative += count
            le = "+Inf" if bound == float("inf") else repr(bound)
            lines.append(f'llmrelay_gateway_overhead_seconds_bucket{{le="{le}"}} {cumulative}')
        lines.append(f"llmrelay_gateway_overhead_seconds_sum {total}")
        lines.append(f"llmrelay_gateway_overhead_seconds_count {cumulative}")
        return text.rstrip("\n") + ("\n" if text else "") + "\n".join(lines) + "\n"

    # ------------------------------------------------------------------ /api/performance

    def _totals(self, merged: Any, states: list[dict[str, Any]]) -> dict[str, Any]:
        totals: dict[str, Any] = {
            "requests": 0,
            "errors": 0,
            "hits": 0,
            "misses": 0,
            "latency_sum": 0.0,
            "latency_count": 0,
        }
        if merged is not None:
            for series in merged.series:
                totals["requests"] += series.requests
                totals["errors"] += series.errors
                totals["hits"] += series.cache_hits + series.cache_stale
                totals["misses"] += series.cache_misses
                totals["latency_sum"] += series.latency_histogram.sum
                totals["latency_count"] += series.latency_histogram.count
        return totals

    def performance(self, *, reset: bool = False) -> dict[str, Any]:
        states = self.states()
        merged = self._merged(states)
        totals = self._totals(merged, states)
        if reset:
            self._set_baseline(totals)
        baseline = self._get_baseline() or {}
        figures = {key: value - baseline.get(key, 0) for key, value in totals.items()}
        requests, lookups = figures["requests"], figures["hits"] + figures["misses"]
        hit_rate = figures["hits"] / lookups if lookups else 0.0
        if merged is not None:
            insights = merged.insights(self._metrics_settings())
            judged = {
                "status": insights.status,
                "performanceGrade": insights.grade or "N/A",
                "recommendations": insights.recommendations,
            }
            per_minute = insights.requests_per_minute
        else:
            judged = {"status": "healthy", "performanceGrade": "N/A", "recommendations": [_METRICS_OFF]}
            per_minute = 0
        return {
            "metrics": {
                "requestCount": requests,
                "averageLatency": round(figures["latency_sum"] / figures["latency_count"] * 1000, 3)
                if figures["latency_count"]
                else 0,
                "errorRate": round(figures["errors"] / requests, 4) if requests else 0.0,
                "cacheHitRate": round(hit_rate, 4),
                "requestsPerMinute": per_minute,
            },
            "cache": {
                "size": sum(state.get("cache_entries", 0) for state in states),
                "hitRate": round(hit_rate, 4),
                "hits": figures["hits"],
                "misses": figures["misses"],
            },
            "insights": judged,
            "timestamp": datetime.fromtimestamp(self.clock(), timezone.utc)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
        }

    def _set_baseline(self, totals: dict[str, Any]) -> None:
        self._baseline = totals
        if self.share is not None:
            self.share.set_baseline(totals)

    def _get_baseline(self) -> dict[str, Any] | None:
        if self.share is not None:
            try:
                return self.share.baseline()
            except Exception:
                return self._baseline
        return self._baseline


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')
