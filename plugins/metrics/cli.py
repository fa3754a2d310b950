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

``--fail-under B`` exits 1 when the grade is worse than B (for cron or a
readiness probe); 2 means the command could not run.
"""

from __future__ import annotations

import argparse
import glob
import sys
from collections.abc import Callable
from typing import Any, TextIO

from llmrelay.core.errors import ConfigurationError, LLMRelayError

from .grading import GRADES
from .registry import metrics_registry
from .settings import GradeThresholds, MetricsSettings
from .snapshot import MetricsSnapshot

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


def run(args: argparse.Namespace, context: Any) -> int:
    """The command: ``context`` is the CLI's ``CommandContext`` (``provider()``, ``config``, ``stdout``, ``stderr``)."""
    out: TextIO = getattr(context, "stdout", None) or sys.stdout
    err: TextIO = getattr(context, "stderr", None) or sys.stderr
    try:
        snapshot, thresholds = _collect(args, context, err)
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
    report = snapshot.grade(thresholds)
    if args.format == "prometheus":
        out.write(snapshot.prometheus())
    elif args.format == "json":
        out.write(snapshot.to_json() + "\n")
    else:
        out.write(report.text() + "\n")
    if args.fail_under and report.grade is not None and GRADES.index(report.grade) > GRADES.index(args.fail_under):
        return 1
    return 0


def _collect(args: argparse.Namespace, context: Any, err: TextIO) -> tuple[MetricsSnapshot | None, GradeThresholds]:
    section = _metrics_section(context)
    settings = MetricsSettings.model_validate(section) if section else MetricsSettings()
    if args.probe:
        if args.probe < 0:
            raise ConfigurationError("--probe needs a positive number of calls")
        _probe(args, context, err)
        return metrics_registry().snapshot(), settings.grade
    paths = list(args.snapshot)
    if not paths and settings.snapshot_path:
        paths = [settings.snapshot_path.replace("{pid}", "*")]
    if not paths:
        return None, settings.grade
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
    return MetricsSnapshot.merge(snapshots), settings.grade


def _probe(args: argparse.Namespace, context: Any, err: TextIO) -> None:
    if args.operation == "execute" and not args.model:
        raise ConfigurationError("--operation execute needs --model")
    provider, owned = _build_provider(context)
    try:
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
    finally:
        if owned:
            provider.close()


def _build_provider(context: Any) -> tuple[Any, bool]:
    """The provider to probe, and whether this command must close it."""
    # The CLI's context builds it as the global options say (--config,
    # --provider, --cassette) and closes it when the command returns.
    factory = getattr(context, "provider", None)
    if callable(factory):
        return factory(), False
    from llmrelay.core.config import create_provider

    return create_provider(getattr(context, "provider_option", None), config=getattr(context, "config", None)), True


def _metrics_section(context: Any) -> dict[str, Any]:
    config = getattr(context, "config", None)
    if config is None:
        loader: Callable[[], Any] | None = getattr(context, "load_config", None)
        config = loader() if callable(loader) else None
    section = getattr(config, "plugin_section", None)
    if callable(section):
        data = dict(section("metrics"))
        data.pop("enabled", None)
        return data
    return {}


def register_command(register: Callable[..., None]) -> None:
    register("metrics", "export metrics (Prometheus, JSON) or a health grade", add_arguments, run)
