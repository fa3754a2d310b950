"""Import cost of llmrelay against the floor of its own runtime dependencies.

Every measurement runs in a fresh interpreter (nothing cached in
``sys.modules``), from a scratch directory so the repository is not on
``sys.path``. Cases are interleaved round by round, in a rotating order, so
drift in the machine's load hits them all alike; figures are medians. On a
shared machine the speed of separate processes still differs by 5-10%, so
one more child per round times the floor, the first model and the provider
build in one process: the build's share of the floor measured there does not
depend on how fast that process happened to run.

For each case the child reports the time its snippet took (``perf_counter``
around ``exec``), its peak RSS (``ru_maxrss``), and the parent measures the
whole process's wall time and CPU time (user + system; interpreter start-up
and shutdown included). CPU time leaves out waiting for a core, so on a
shared machine it moves less than wall time.

Cases:
  floor           import requests, pydantic, pluggy, tenacity, cachetools
  floor+BaseModel the floor plus ``from pydantic import BaseModel``
                  (``import pydantic`` alone is lazy and builds no model machinery)
  floor+1 model   the floor plus one small settings model defined and validated
                  (a ``SecretStr`` and a constrained ``Field``; no ``default_factory=list``,
                  whose signature pydantic reads through the tokenizer, 15M instructions):
                  what the first model of any pydantic program costs, since pydantic
                  loads its field, constraint and schema machinery on first use
  llmrelay.core   import llmrelay.core            (public names load on first use)
  floor+llmrelay API  the floor, then the public names a program uses (builds the domain model)
  openrouter      from llmrelay.core import create_provider; create_provider("openrouter", api_key="x")
                  with the default plugins (the cache's start-up warm-up switched off: no network)
  openrouter+chat the same build, then one chat call through every layer, answered in-process
                  by a MockTransport: what the first chat adds (validating the chat model's
                  schemas and parsing the response)

Issue 14's budget: ``import llmrelay.core`` loads none of the dependencies,
and a provider build (the ``openrouter`` case's process time) stays within
1.6x the floor's. What llmrelay's own modules add is also read as the
difference between a case and the floor with one small model (which loads
the same pydantic machinery any pydantic program loads), as a share of the
bare floor.

With ``--instructions`` each case also runs under valgrind's callgrind,
which counts the instructions the whole process executed: the same count
run after run whatever else the machine is doing, so a change of a few
percent shows even on a loaded machine where wall times swing by 20%.
The count is also given with the cyclic garbage collector switched off,
since when a full collection happens depends on how many objects every
import before it allocated, and one more or fewer moves the total by tens
of millions of instructions. Each count is the median of three runs with
``PYTHONHASHSEED`` 0, 1 and 2: the hash seed moves a count by a few million.

    python bench/bench_import.py [--rounds 15] [--json] [--instructions]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

FLOOR = "import requests, pydantic, pluggy, tenacity, cachetools"
# A /chat/completions reply as OpenRouter sends it (usage with cost).
CHAT_REPLY = (
    b'{"id":"gen-1","model":"m/x","created":1,"choices":[{"index":0,"finish_reason":"stop",'
    b'"message":{"role":"assistant","content":"hello"}}],'
    b'"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4,"cost":0.00001}}'
)
PAIRED = "paired"

ONE_MODEL = """
from pydantic import BaseModel, Field, SecretStr
class Settings(BaseModel):
    api_key: SecretStr | None = None
    timeout: float = Field(default=10.0, gt=0)
Settings(api_key="x")
"""

CHILD = """
import resource, sys, time
code = sys.argv[1]
start = time.perf_counter()
exec(compile(code, "<bench>", "exec"), {"__name__": "__bench__"})
end = time.perf_counter()
print(end - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, end)
"""

# The floor, the first model and the provider build timed in one process:
# their ratio does not move with the machine's speed between processes.
PAIRED_CHILD = """
import sys, time
marks = [time.perf_counter()]
for code in sys.argv[1:]:
    exec(compile(code, "<bench>", "exec"), {"__name__": "__bench__"})
    marks.append(time.perf_counter())
print(*(b - a for a, b in zip(marks, marks[1:])))
"""


def cases() -> dict[str, str]:
    # The cache's start-up warm-up would try to reach openrouter.ai from a
    # background thread: switched off, so the figure is the build alone.
    provider = (
        "from llmrelay.core import create_provider, get_registry\n"
        'warm = any(s.name == "cache" for s in get_registry().layer_specs())\n'
        'config = {"plugins": {"cache": {"warm_up": []}}} if warm else None\n'
        'provider = create_provider("openrouter", api_key="x", config=config)'
    )
    # The same build answered in-process through the public seam (create_provider(transport=...)).
    first_chat = (
        provider.replace(
            "config=config)",
            "config=config, transport=MockTransport(\n"
            f"    lambda request: HTTPResponse(200, {{'content-type': 'application/json'}}, {CHAT_REPLY!r})))",
        )
        + "\nprovider.execute({'model': 'm/x', 'messages': [{'role': 'user', 'content': 'hi'}]})"
    )
    first_chat = "from llmrelay.core.http.transport import HTTPResponse, MockTransport\n" + first_chat
    return {
        "python -c pass": "pass",
        "floor": FLOOR,
        "floor+BaseModel": FLOOR + "\nfrom pydantic import BaseModel",
        "floor+1 model": FLOOR + ONE_MODEL,
        "llmrelay.core": "import llmrelay.core",
        "floor+llmrelay API": (
            FLOOR + "\nfrom llmrelay.core import ChatRequest, ChatResponse, ChatStream, Message, Provider, "
            "ProviderSettings, create_provider, LLMRelayError"
        ),
        "openrouter": provider,
        "openrouter+chat": first_chat,
    }


def run_once(code: str, cwd: str, env: dict[str, str]) -> tuple[float, float, float, float, float]:
    """(snippet s, peak RSS MiB, process wall s, process CPU s, exit s).

    CPU time is the child's user + system time: unlike wall time it does not
    count the time the child waited for a core on a busy machine. Children run
    one at a time, so the change in ``RUSAGE_CHILDREN`` is this child's. Exit
    time runs from the end of the snippet to the child's exit (interpreter
    shutdown: every module and object freed), on the shared monotonic clock.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", CHILD, code], capture_output=True, text=True, cwd=cwd, env=env, check=False
    )
    wall_end = time.perf_counter()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        raise SystemExit(f"benchmark case failed:\n{code}\n{out.stderr}")
    seconds, rss_kib, snippet_end = out.stdout.split()
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return float(seconds), int(rss_kib) / 1024, wall_end - start, cpu, wall_end - float(snippet_end)


def run_paired(provider: str, cwd: str, env: dict[str, str]) -> tuple[float, float, float]:
    """(floor s, first model s, provider build s), timed in one process."""
    out = subprocess.run(
        [sys.executable, "-c", PAIRED_CHILD, FLOOR, ONE_MODEL, provider],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"paired benchmark failed:\n{out.stderr}")
    floor, model, build = (float(x) for x in out.stdout.split())
    return floor, model, build


def count_instructions(code: str, cwd: str, env: dict[str, str]) -> float:
    """Millions of instructions the child process executes for ``code`` (callgrind), median of 3 hash seeds."""
    counts = []
    for seed in ("0", "1", "2"):
        out = subprocess.run(
            ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, "-c", CHILD, code],
            capture_output=True,
            text=True,
            cwd=cwd,
            env={**env, "PYTHONHASHSEED": seed},
            check=False,
        )
        match = re.search(r"Collected : (\d+)", out.stderr)
        if out.returncode != 0 or match is None:
            raise SystemExit(f"callgrind run failed:\n{code}\n{out.stderr[-2000:]}")
        counts.append(int(match.group(1)) / 1e6)
    return statistics.median(counts)


def print_own_share(label: str, cases: dict[str, float], unit: str) -> None:
    """What llmrelay's own modules add, as a share of the bare floor."""
    floor = cases["floor"]
    pairs = [
        ("llmrelay.core", "python -c pass"),
        ("floor+llmrelay API", "floor+1 model"),
        ("openrouter", "floor+1 model"),
        ("openrouter+chat", "floor+1 model"),
    ]
    for name, base in pairs:
        own = cases[name] - cases[base]
        print(f"  {label:<16}{name:<20} own {own:+8.1f} {unit} over {base:<15} = {own / floor:+6.1%} of the floor")


def print_paired(paired: list[tuple[float, float, float]], medians: dict[str, dict[str, float]]) -> None:
    """The provider build against the floor in the same process, and what it adds to shutdown."""
    floor_ms = statistics.median(p[0] for p in paired) * 1000
    model_ms = statistics.median(p[1] for p in paired) * 1000
    build_ms = statistics.median(p[2] for p in paired) * 1000
    ratio = statistics.median(p[2] / p[0] for p in paired)
    extra_exit = (medians["openrouter"]["exit_s"] - medians["floor+1 model"]["exit_s"]) * 1000
    floor_process = medians["floor"]["process_s"] * 1000
    print(f"\nfloor, first model and provider build timed in one process ({len(paired)} processes, medians):")
    print(f"  floor import {floor_ms:.1f} ms, first model {model_ms:.1f} ms, provider build {build_ms:.1f} ms")
    print(f"  build / floor import, per process: {ratio:.1%}")
    print(
        f"  estimate over the floor's process time: (build + its extra shutdown, {extra_exit:+.1f} ms) "
        f"/ the floor case's process time = {(build_ms + extra_exit) / floor_process:.1%}"
    )


def print_instructions(snippets: dict[str, str], scratch: str, env: dict[str, str]) -> None:
    if shutil.which("valgrind") is None:
        print("--instructions: valgrind is not installed; skipped")
        return
    counts = {
        name: (
            count_instructions(code, scratch, env),
            count_instructions("import gc; gc.disable()\n" + code, scratch, env),
        )
        for name, code in snippets.items()
    }
    floor, one_model = counts["floor"], counts["floor+1 model"]
    print(
        f"\n{'case':<20}{'M instr':>10}{'x floor':>9}{'x 1 model':>11}"
        f"{'M instr, no GC':>16}{'x floor':>9}{'x 1 model':>11}"
    )
    for name, (with_gc, no_gc) in counts.items():
        print(
            f"{name:<20}{with_gc:>10.1f}{with_gc / floor[0]:>9.2f}{with_gc / one_model[0]:>11.2f}"
            f"{no_gc:>16.1f}{no_gc / floor[1]:>9.2f}{no_gc / one_model[1]:>11.2f}"
        )
    print("\nllmrelay's own share (instructions):")
    print_own_share("with GC", {name: c[0] for name, c in counts.items()}, "M instr")
    print_own_share("GC off", {name: c[1] for name, c in counts.items()}, "M instr")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--json", action="store_true", help="print the medians as JSON too")
    parser.add_argument("--instructions", action="store_true", help="also count instructions with callgrind")
    args = parser.parse_args()

    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENROUTER_", "LLMRELAY_", "PYTHON"))}
    snippets = cases()
    names = list(snippets)
    samples: dict[str, list[tuple[float, float, float, float, float]]] = {name: [] for name in names}
    paired: list[tuple[float, float, float]] = []
    order = [*names, PAIRED]
    with tempfile.TemporaryDirectory() as scratch:
        for name in names:  # warm the OS file cache and the .pyc files once
            run_once(snippets[name], scratch, env)
        for round_index in range(args.rounds):
            shift = round_index % len(order)
            for name in order[shift:] + order[:shift]:
                if name == PAIRED:
                    paired.append(run_paired(snippets["openrouter"], scratch, env))
                else:
                    samples[name].append(run_once(snippets[name], scratch, env))

    medians = {
        name: {
            "import_s": statistics.median(s[0] for s in runs),
            "rss_mib": statistics.median(s[1] for s in runs),
            "process_s": statistics.median(s[2] for s in runs),
            "cpu_s": statistics.median(s[3] for s in runs),
            "exit_s": statistics.median(s[4] for s in runs),
        }
        for name, runs in samples.items()
    }
    floor = medians["floor"]
    floor_model = medians["floor+BaseModel"]
    one_model = medians["floor+1 model"]
    print(f"python {sys.version.split()[0]}, {args.rounds} interleaved rounds, medians")
    print(
        f"{'case':<20}{'import ms':>10}{'process ms':>12}{'CPU ms':>9}{'exit ms':>9}{'peak RSS MiB':>14}"
        f"{'x floor':>9}{'x floor+BM':>12}"
    )
    for name, m in medians.items():
        print(
            f"{name:<20}{m['import_s'] * 1000:>10.1f}{m['process_s'] * 1000:>12.1f}{m['cpu_s'] * 1000:>9.1f}"
            f"{m['exit_s'] * 1000:>9.1f}{m['rss_mib']:>14.1f}"
            f"{m['process_s'] / floor['process_s']:>9.2f}{m['process_s'] / floor_model['process_s']:>12.2f}"
        )
    print()
    for name in ("llmrelay.core", "floor+llmrelay API", "openrouter"):
        m = medians[name]
        added_time = (m["process_s"] - floor_model["process_s"]) / floor_model["process_s"]
        added_rss = (m["rss_mib"] - floor_model["rss_mib"]) / floor_model["rss_mib"]
        print(
            f"{name:<20} vs floor+BaseModel: process time {added_time:+.1%}, peak RSS {added_rss:+.1%}"
            f"   (vs bare floor: {m['process_s'] / floor['process_s'] - 1:+.1%}, "
            f"{m['rss_mib'] / floor['rss_mib'] - 1:+.1%})"
        )
    m = medians["openrouter"]
    build_ratio = m["process_s"] / floor["process_s"]
    print(
        f"\nprovider build (openrouter) process time / floor: {build_ratio:.2f}x "
        f"(budget 1.6x: {'within' if build_ratio <= 1.6 else 'OVER'})"
    )
    print(
        f"{'openrouter':<20} vs floor+1 model:   process time "
        f"{(m['process_s'] - one_model['process_s']) / one_model['process_s']:+.1%}, "
        f"peak RSS {(m['rss_mib'] - one_model['rss_mib']) / one_model['rss_mib']:+.1%}"
    )
    print("\nllmrelay's own share (process wall time and CPU time, medians):")
    print_own_share("process time", {name: m["process_s"] * 1000 for name, m in medians.items()}, "ms")
    print_own_share("process CPU", {name: m["cpu_s"] * 1000 for name, m in medians.items()}, "ms")
    print_own_share("peak RSS", {name: m["rss_mib"] for name, m in medians.items()}, "MiB")
    print_paired(paired, medians)
    if args.json:
        print(json.dumps(medians, indent=2))
    if args.instructions:
        with tempfile.TemporaryDirectory() as scratch:
            print_instructions(snippets, scratch, env)


if __name__ == "__main__":
    main()
