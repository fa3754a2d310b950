"""`llmrelay metrics`: probes, snapshot files written by a service, formats and exit codes."""

from __future__ import annotations

import contextlib
import json

from llmrelay.core import create_provider
from llmrelay.core.cli.main import main
from llmrelay.core.errors import ServerError
from llmrelay.plugins.metrics import MetricsSnapshot, metrics_registry

from tests.support.metrics_fixture import fresh_metrics

__all__ = ["fresh_metrics"]  # an autouse fixture, imported to be found by pytest

REQUEST = {"model": "fake/small", "messages": [{"role": "user", "content": "hi"}]}


def test_probe_makes_calls_and_prints_prometheus(registry, capsys) -> None:
    code = main(["--provider", "fake", "metrics", "--probe", "3", "--format", "prometheus"], registry=registry)
    out = capsys.readouterr().out
    assert code == 0
    assert 'llmrelay_requests_total{provider="fake",model="",operation="list_models"} 3' in out
    assert "# TYPE llmrelay_request_duration_seconds histogram" in out


def test_probe_execute_needs_a_model_and_grades(registry, capsys) -> None:
    assert main(["--provider", "fake", "metrics", "--probe", "1", "--operation", "execute"], registry=registry) == 2
    assert "--model" in capsys.readouterr().err
    code = main(
        ["--provider", "fake", "metrics", "--probe", "2", "--operation", "execute", "--model", "fake/small"],
        registry=registry,
    )
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("overall grade: A")
    assert "fake fake/small execute" in out


def service_writes_snapshot(registry, path, failures: int = 0) -> None:
    """A long-running service with snapshot_path set, seen from the outside."""
    config = {"plugins": {"metrics": {"snapshot_path": str(path), "snapshot_interval": 3600}}}
    provider = create_provider("fake", registry=registry, plugins=["metrics"], config=config)
    provider.inner.errors = [ServerError("down", status=500) for _ in range(failures)]
    for _ in range(10):
        with contextlib.suppress(ServerError):
            provider.execute(REQUEST)
    provider.close()  # writes the snapshot now


def test_reads_a_services_snapshot_file(registry, tmp_path, capsys) -> None:
    path = tmp_path / "metrics-{pid}.json"
    service_writes_snapshot(registry, path)
    written = list(tmp_path.glob("metrics-*.json"))
    assert len(written) == 1
    metrics_registry().clear()  # the CLI is another process: it has counted nothing itself
    code = main(["metrics", "--snapshot", str(tmp_path / "metrics-*.json"), "--format", "json"], registry=registry)
    assert code == 0
    snap = MetricsSnapshot.from_json(capsys.readouterr().out)
    assert snap.get("fake", "fake/small", "execute").requests == 10


def test_snapshot_path_from_the_config_file(registry, tmp_path, capsys) -> None:
    path = tmp_path / "metrics.json"
    service_writes_snapshot(registry, path, failures=3)
    config = tmp_path / "llmrelay.toml"
    config.write_text(f'[plugins.metrics]\nsnapshot_path = "{path}"\n', encoding="utf-8")
    code = main(["--config", str(config), "metrics", "--fail-under", "C"], registry=registry)
    out = capsys.readouterr().out
    assert code == 1  # 30% errors is a D
    assert "overall grade: D" in out
    assert "failed upstream (5xx / connection)" in out


def test_merges_snapshots_of_several_processes(registry, tmp_path, capsys) -> None:
    for name in ("a", "b"):
        service_writes_snapshot(registry, tmp_path / f"{name}.json")
        metrics_registry().clear()
    code = main(
        ["metrics", "--snapshot", str(tmp_path / "a.json"), "--snapshot", str(tmp_path / "b.json"), "--format", "json"],
        registry=registry,
    )
    assert code == 0
    assert json.loads(capsys.readouterr().out)["totals"]["requests"] == 20


def test_nothing_to_report_and_bad_files_are_usage_errors(registry, tmp_path, capsys) -> None:
    assert main(["metrics"], registry=registry) == 2
    assert "--probe N" in capsys.readouterr().err
    assert main(["metrics", "--snapshot", str(tmp_path / "missing-*.json")], registry=registry) == 2
    assert "no snapshot file matches" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    assert main(["metrics", "--snapshot", str(bad)], registry=registry) == 2
    assert "not a llmrelay metrics snapshot" in capsys.readouterr().err
