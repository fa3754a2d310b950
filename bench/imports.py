"""Import time and RSS after import, each case in a fresh interpreter, rounds interleaved.

Each child runs from a scratch directory (so the repository is not on
``sys.path`` and only installed packages load), times its snippet with
``perf_counter`` around ``exec`` and reads its resident set size from
``/proc/self/status`` (``ru_maxrss`` where /proc is missing) right after.
"""

from __future__ import annotations

import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile

# The dependency floor, the one-model baseline and the provider build, as
# bench_import.py defines them (bench/ is on sys.path: it is the directory of the script that runs).
from bench_import import FLOOR, ONE_MODEL, cases, run_paired

__all__ = ["CASES", "PAIRED", "measure_imports"]

PROVIDER_CASE = "llmrelay ready (openrouter provider built)"
# The build timed after the dependencies in the same process: a share that does
# not move with how fast one process or another happened to run.
PAIRED = "llmrelay provider build, timed after its dependencies in one process"

CASES: dict[str, tuple[str, str | None]] = {
    # name: (snippet, module that must be importable or the case is skipped)
    "python -c pass": ("pass", None),
    "llmrelay's dependencies": (FLOOR, None),
    # What any pydantic program pays on its first model: ``import pydantic`` is
    # lazy, and its field and schema machinery load when a model is defined.
    "llmrelay's dependencies + one settings model": (FLOOR + ONE_MODEL, None),
    "llmrelay (import llmrelay.core)": ("import llmrelay.core", "llmrelay.core"),
    PROVIDER_CASE: (cases()["openrouter"], "llmrelay.providers.openrouter"),
    "openai (from openai import OpenAI)": ("from openai import OpenAI", "openai"),
    "litellm (import litellm)": ("import litellm", "litellm"),
}

CHILD = """
import sys, time
code = sys.argv[1]
start = time.perf_counter()
exec(compile(code, "<bench>", "exec"), {"__name__": "__bench__"})
elapsed = time.perf_counter() - start
rss = None
try:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
except OSError:
    import resource
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(elapsed, rss)
"""


def _once(code: str, cwd: str, env: dict[str, str]) -> tuple[float, float]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, code], capture_output=True, text=True, cwd=cwd, env=env, check=False, timeout=120
    )
    if out.returncode != 0:
        raise RuntimeError(f"import case failed:\n{code}\n{out.stderr[-2000:]}")
    seconds, rss = out.stdout.split()[-2:]
    return float(seconds), float(rss)


def measure_imports(rounds: int) -> dict[str, dict[str, float]]:
    """Median import ms and RSS MiB per case; a case whose package is missing is marked skipped."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENROUTER_", "LLMRELAY_", "PYTHON"))}
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # LiteLLM would otherwise fetch its price list at import
    results: dict[str, dict[str, float]] = {}
    runnable: dict[str, str] = {}
    for name, (code, needs) in CASES.items():
        if needs is not None and importlib.util.find_spec(needs.split(".")[0]) is None:
            results[name] = {"skipped": "skipped: not installed"}  # type: ignore[dict-item]
        else:
            runnable[name] = code
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in runnable}
    names = list(runnable)
    with tempfile.TemporaryDirectory() as scratch:
        for name in names:  # warm the OS file cache and compile .pyc files once
            _once(runnable[name], scratch, env)
        shares: list[float] = []
        for round_index in range(rounds):
            shift = round_index % len(names)
            for name in names[shift:] + names[:shift]:
                samples[name].append(_once(runnable[name], scratch, env))
            if PROVIDER_CASE in runnable:
                floor_s, _, build_s = run_paired(runnable[PROVIDER_CASE], scratch, env)
                shares.append(build_s / floor_s)
    for name in CASES:
        if name in samples:
            results[name] = {
                "import_ms": statistics.median(s[0] for s in samples[name]) * 1000,
                "rss_mib": statistics.median(s[1] for s in samples[name]),
            }
    if shares:
        results[PAIRED] = {"share": statistics.median(shares)}
    return results
