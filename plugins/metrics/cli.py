"""``llmrelay metrics``: export metrics as Prometheus text, JSON or a health grade.

A CLI process is short-lived and has made no calls of its own, so the
command reports on one of two real sources:

``--snapshot PATH`` (repeatable)
    Snapshot files written by long-running processes that set
    ``[plugins.metrics] snapshot_path`` (the path from the config file is
    used when no ``--snapshot`` is given). Several files (one per process:
    ``snapshot_path = "/var/run/llmrelay/metrics-{pid}.json"``) are merged:
    counters and histograms add up, window percentiles keep the worse.
``--probe N``
    Makes N calls now (``--operation list_models``, ``execute`` with
    ``--model`` and ``--prompt``, or ``validate_config``) to the provider
    the global ``--provider`` names (else the config's default), through
    all its layers, then reports on them: a quick, honest health check of
    an upstream from the command line.

Every format carries the insights, judged by the config's
``[plugins.metrics.grade]`` and ``[plugins.metrics.alerts]`` thresholds:
the grade report ends with the status, requests in the last minute, the
alerts and the recommendations; JSON is the snapshot with an ``insights``
object added (``MetricsSnapshot.from_json`` reads it back, ignoring it);
Prometheus text has the ``llmrelay_alert`` and ``llmrelay_health_status``
gauges.

``--fail-under B`` exits 1 when the grade is worse than B (for cron or a
readiness probe); 2 means the command could not run.
"""

from __future__ import annotations

import argparse
import glob
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

from llmrelay.core.errors import ConfigurationError, LLMRelayError

from .grading import GRADES
from .registry import metrics_registry
from .settings import MetricsSettings
from .snapshot import MetricsSnapshot

if TYPE_CHECKING:
    from llmrelay.core.cli import CommandContext

__all__ = ["add_arguments", "register_command", "run"]

_OPERATIONS = ("list_models", "execute", "validate_config")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format",
        choices=("prometheus", "json", "grade"),
        default="grade",
        help="output format (default: grade, a readable health report)",
    )
    parser.add_argument(
        "--snapshot",
        action="append",
        default=[],
        metavar="PATH",
        help="read a snapshot file written by [plugins.metrics] snapshot_path (glob allowed; repeatable)",
    )
    parser.add_argument("--probe", type=int, default=0, metavar="N", help="make N calls now and report on them")
    parser.add_argument("--operation", choices=_OPERATIONS, default="list_models", help="what each probe call does")
    parser.add_argument("--model", default=None, help="model for --operation execute")
    parser.add_argument("--prompt", default="Reply with the single word: pong", help="prompt for --operation execute")
    parser.add_argument(
        "--fail-under",
        choices=list(GRADES[:-1]),
        default=None,
        metavar="GRADE",
        help="exit 1 when the grade is worse than GRADE (A-D)",
    )


def run(args: argparse.Namespace, context: CommandContext) -> int:
    """The command, run by the CLI with its ``CommandContext``."""
    out, err = context.stdout, context.stderr
    try:
        snapshot, settings = _collect(args, context, err)
    except (LLMRelayError, OSError, ValueError) as exc:
        print(f"llmrelay metrics: {exc}", file=err)
        return 2
    if snapshot is None:
        print(
            "llmrelay metrics: nothing to report. Pass --probe N to make calls now, --snapshot PATH to read a "
            "running service's snapshot, or set [plugins.metrics] snapshot_path in the config.",
            file=err,
        )
        return 2
    report = snapshot.grade(settings.grade)
    if args.format == "prometheus":
        out.write(snapshot.prometheus(settings))
    elif args.format == "json":
        data = snapshot.as_dict()
        data["insights"] = snapshot.insights(settings).model_dump(mode="json")
        out.write(json.dumps(data, indent=2) + "\n")
    else:
        out.write(report.text(with_recommendations=False) + "\n" + snapshot.insights(settings).text() + "\n")
    if args.fail_under and report.grade is not None and GRADES.index(report.grade) > GRADES.index(args.fail_under):
        return 1
    return 0


def _collect(
    args: argparse.Namespace, context: CommandContext, err: TextIO
) -> tuple[MetricsSnapshot | None, MetricsSettings]:
    section = context.config.plugin_section("metrics")
    section.pop("enabled", None)
    settings = MetricsSettings.model_validate(section) if section else MetricsSettings()
    if args.probe:
        if args.probe < 0:
            raise ConfigurationError("--probe needs a positive number of calls")
        _probe(args, context, err)
        return metrics_registry().snapshot(), settings
    paths = list(args.snapshot)
    if not paths and settings.snapshot_path:
        paths = [settings.snapshot_path.replace("{pid}", "*")]
    if not paths:
        return None, settings
    files: list[str] = []
    for pattern in paths:
        matched = sorted(glob.glob(pattern))
        if not matched:
            raise ConfigurationError(
                f"no snapshot file matches {pattern!r} (is snapshot_path set in the service's config?)"
            )
        files += matched
    snapshots = []
    for path in files:
        with open(path, encoding="utf-8") as handle:
            try:
                snapshots.append(MetricsSnapshot.from_json(handle.read()))
            except ValueError as exc:
                raise ConfigurationError(
                    f"{path} is not a llmrelay metrics snapshot: {str(exc).splitlines()[0]}"
                ) from None
    return MetricsSnapshot.merge(snapshots), settings


def _probe(args: argparse.Namespace, context: CommandContext, err: TextIO) -> None:
    if args.operation == "execute" and not args.model:
        raise ConfigurationError("--operation execute needs --model")
    # Built as the global options say (--config, --provider, --cassette); the
    # context closes it when the command returns.
    provider = context.provider()
    for _ in range(args.probe):
        try:
            if args.operation == "list_models":
                provider.list_models()
            elif args.operation == "validate_config":
                provider.validate_config()
            else:
                provider.execute(
                    {"model": args.model, "messages": [{"role": "user", "content": args.prompt}], "max_tokens": 16}
                )
        except LLMRelayError as exc:
            print(f"probe call failed: {type(exc).__name__}: {exc}", file=err)


def register_command(register: Callable[..., None]) -> None:
    register("metrics", "export metrics (Prometheus, JSON) or a health grade", add_arguments, run)
