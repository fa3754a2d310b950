"""The process-wide metrics registry: every provider's collector, exported together.

Providers created under the same name share one collector, so counters keep
growing across provider re-creation (as Prometheus expects of counters) and
``metrics_registry().prometheus()`` exports all of them in one document.

With ``[plugins.metrics] snapshot_path`` set, a daemon thread writes the
merged snapshot there every ``snapshot_interval`` seconds and at exit
(atomically: a temporary file renamed over the old one; the directory must exist), which is what
``llmrelay metrics --snapshot PATH`` reads from another process.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmrelay.core.settings import default_settings

from .collector import MetricsCollector
from .settings import GradeThresholds, MetricsSettings

if TYPE_CHECKING:
    from .alerts import Insights
    from .snapshot import MetricsSnapshot

__all__ = ["MetricsRegistry", "SnapshotWriter", "metrics_registry"]

log = logging.getLogger("llmrelay.metrics")


class MetricsRegistry:
    """Collectors by provider instance name."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._collectors: dict[str, MetricsCollector] = {}
        self._writers: dict[str, SnapshotWriter] = {}
        self._settings: MetricsSettings | None = None

    def collector(self, provider: str, settings: MetricsSettings | None = None) -> MetricsCollector:
        """The collector for ``provider``, made with ``settings`` on first use."""
        with self._lock:
            found = self._collectors.get(provider)
            if found is None:
                found = self._collectors[provider] = MetricsCollector(settings)
                if self._settings is None:
                    self._settings = found.settings
            return found

    @property
    def settings(self) -> MetricsSettings:
        """The settings of the first collector made (one config file's ``[plugins.metrics]``), else the defaults.

        They judge the merged snapshot: its grade, alerts and status.
        """
        with self._lock:
            found = self._settings
        return found if found is not None else default_settings(MetricsSettings)

    def collectors(self) -> dict[str, MetricsCollector]:
        with self._lock:
            return dict(self._collectors)

    def snapshot(self) -> MetricsSnapshot:
        """All providers' metrics in one snapshot."""
        from .snapshot import MetricsSnapshot

        return MetricsSnapshot.merge(c.snapshot() for c in self.collectors().values())

    def to_json(self) -> str:
        return self.snapshot().to_json()

    def prometheus(self, settings: MetricsSettings | None = None) -> str:
        return self.snapshot().prometheus(settings or self.settings)

    def grade(self, thresholds: GradeThresholds | None = None) -> Any:
        return self.snapshot().grade(thresholds or self.settings.grade)

    def insights(self, settings: MetricsSettings | None = None) -> Insights:
        """Status, grade, requests per minute, alerts and recommendations of every provider together."""
        return self.snapshot().insights(settings or self.settings)

    def reset(self) -> None:
        """Zero every collector's counts."""
        for collector in self.collectors().values():
            collector.reset()

    def clear(self) -> None:
        """Forget every collector and stop every snapshot writer (tests)."""
        with self._lock:
            self._collectors.clear()
            self._settings = None
            writers, self._writers = list(self._writers.values()), {}
        for writer in writers:
            writer.stop()

    def snapshot_writer(self, path: str, interval: float) -> SnapshotWriter:
        """The writer for ``path`` (started on first request; one per path)."""
        resolved = path.replace("{pid}", str(os.getpid()))
        with self._lock:
            writer = self._writers.get(resolved)
            if writer is None:
                writer = self._writers[resolved] = SnapshotWriter(self, Path(resolved), interval)
                writer.start()
            return writer


class SnapshotWriter:
    """Writes the registry's snapshot to a file, periodically and on demand."""

    def __init__(self, registry: MetricsRegistry, path: Path, interval: float) -> None:
        self.registry = registry
        self.path = path
        self.interval = interval
        self._stop = threading.Event()
        self._write_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._failed = False

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._loop, name=f"llmrelay-metrics-writer:{self.path.name}", daemon=True
        )
        self._thread.start()
        atexit.register(self.write)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.write()

    def write(self) -> bool:
        """Write now; False (and one warning) when the file cannot be written."""
        text = self.registry.snapshot().to_json()
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        with self._write_lock:
            try:
                tmp.write_text(text, encoding="utf-8")
                os.replace(tmp, self.path)
            except OSError as exc:
                if not self._failed:
                    log.warning("metrics snapshot %s cannot be written: %s", self.path, exc.strerror or exc)
                self._failed = True
                return False
        self._failed = False
        return True

    def stop(self) -> None:
        """Stop periodic writing (the last snapshot stays on disk)."""
        self._stop.set()
        atexit.unregister(self.write)


_default = MetricsRegistry()


def metrics_registry() -> MetricsRegistry:
    """The registry every metrics layer of this process records into."""
    return _default
