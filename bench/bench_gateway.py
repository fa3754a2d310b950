"""What the gateway adds over calling the upstream directly, on loopback, in one interleaved run.

    python bench/bench_gateway.py [--rounds 15] [--calls 40] [--stream-chunks 1000] [--workers 1]

Starts ``bench/server.py`` (a precomputed asyncio chat-completions server,
so the upstream's own cost is a few microseconds) and ``llmrelay serve`` on
gunicorn in front of it, with the default plugins (metrics, cache, breaker).
The same client, a keep-alive ``requests.Session`` per thread, POSTs the
same body to both, in rounds that alternate which goes first:

* added latency at concurrency 1: p50 and p99 of the gateway's calls minus
  those of the direct ones, plus the gateway's own ``x-llmrelay-overhead-ms``;
* requests/s with 8 and 32 concurrent clients;
* streaming: time to the first chunk and chunks/s over a long SSE stream.

LiteLLM's proxy is measured side by side when its ``litellm`` command is
found: ``$LITELLM_BIN``, else beside this Python. Its ``[proxy]`` extra pins
packages of its own (1.107 and later also need ``litellm-proxy``, which the
package index here lacks), so give it a venv of its own::

    python -m venv ../litellm-venv && ../litellm-venv/bin/pip install 'litellm[proxy]==1.106.12'
    LITELLM_BIN=../litellm-venv/bin/litellm python bench/bench_gateway.py

Otherwise its row says why it is missing. ``--granian`` also serves the same
app on granian (``bench/gateway_granian.py``), to weigh the server ``llmrelay
serve`` runs on. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

HERE = Path(__file__).resolve().parent
KEY = "sk-or-v1-" + "b" * 64
GATEWAY_KEY = "gw-bench-key"
BODY = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello in five words."}]}


def start_upstream(stream_chunks: int) -> tuple[subprocess.Popen[str], int]:
    process = subprocess.Popen(
        [sys.executable, str(HERE / "server.py"), "--stream-chunks", str(stream_chunks)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    return process, int(line.split()[1])


def wait_healthy(url: str, process: subprocess.Popen[Any], what: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{what} exited with {process.returncode}")
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.1)
    raise SystemExit(f"{what} did not start")


def start_gateway(upstream_port: int, port: int, workers: int) -> tuple[subprocess.Popen[bytes], str]:
    config = textwrap.dedent(
        f"""
        default_provider = "openrouter"
        [providers.openrouter]
        api_key = "{KEY}"
        base_url = "http://127.0.0.1:{upstream_port}/api/v1"
        [plugins.cache]
        warm_up = []
        [plugins.metrics]
        log_level = "OFF"
        [gateway]
        api_keys = ["{GATEWAY_KEY}"]
        port = {port}
        workers = {workers}
        threads = 64
        """
    )
    path = Path(tempfile.mkstemp(suffix=".toml")[1])
    path.write_text(config)
    script = Path(sys.executable).parent / "llmrelay"
    process = subprocess.Popen(
        [str(script), "--config", str(path), "serve"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_healthy(f"http://127.0.0.1:{port}/healthz", process, "the gateway")
    return process, str(path)


def start_granian(config_path: str, port: int) -> tuple[subprocess.Popen[bytes] | None, str]:
    """The same gateway app on granian (a Rust HTTP server with a WSGI interface), for comparison."""
    granian = Path(sys.executable).parent / "granian"
    if not granian.exists():
        return None, "granian not installed (pip install granian)"
    process = subprocess.Popen(
        [
            str(granian),
            "--interface",
            "wsgi",
            "--factory",
            "--no-ws",
            "--port",
            str(port),
            "--blocking-threads",
            "64",
            "--working-dir",
            str(HERE),
            "gateway_granian:make_app",
        ],
        env={**os.environ, "LLMRELAY_CONFIG": config_path},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_healthy(f"http://127.0.0.1:{port}/healthz", process, "the gateway on granian")
    return process, ""


def litellm_command() -> tuple[list[str] | None, str]:
    """How to start LiteLLM's proxy: ``$LITELLM_BIN``, else ``litellm`` beside this Python; or why not.

    Its ``[proxy]`` extra pins packages of its own, so it is best installed in
    a venv of its own (README, "Benchmarks") and named with ``LITELLM_BIN``.
    """
    named = os.environ.get("LITELLM_BIN")
    if named:
        return ([named], "") if Path(named).exists() else (None, f"LITELLM_BIN={named} does not exist")
    beside = Path(sys.executable).parent / "litellm"
    if not beside.exists():
        return None, "litellm[proxy] not installed (set LITELLM_BIN to its venv's bin/litellm)"
    probe = subprocess.run(
        [str(Path(sys.executable)), "-c", "import litellm.proxy.proxy_server"], capture_output=True, text=True
    )
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["?"])[-1]
        return None, f"litellm[proxy] not installed here ({last}); set LITELLM_BIN to a venv that has it"
    return [str(beside)], ""


def start_litellm(upstream_port: int, port: int) -> tuple[subprocess.Popen[bytes] | None, str]:
    command, reason = litellm_command()
    if command is None:
        return None, reason
    config = textwrap.dedent(
        f"""
        model_list:
          - model_name: openai/gpt-4o-mini
            litellm_params:
              model: openai/gpt-4o-mini
              api_base: http://127.0.0.1:{upstream_port}/api/v1
              api_key: {KEY}
        general_settings:
          master_key: {GATEWAY_KEY}
        litellm_settings:
          drop_params: true
        """
    )
    path = Path(tempfile.mkstemp(suffix=".yaml")[1])
    path.write_text(config)
    process = subprocess.Popen(
        [*command, "--config", str(path), "--port", str(port), "--num_workers", "1"],
        # Its bundled price map: no fetch from GitHub (no network here, and none belongs in a benchmark).
        env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_healthy(f"http://127.0.0.1:{port}/health/liveliness", process, "LiteLLM's proxy")
    return process, ""


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int | None) -> float:
    """CPU time (user + system) of a process and its children, from /proc (0 where unavailable)."""
    if pid is None:
        return 0.0
    pids = [pid]
    try:
        pids += [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        ticks = 0
        for one in pids:
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
    except (OSError, ValueError, IndexError):
        return 0.0
    return ticks / os.sysconf("SC_CLK_TCK")


class Target:
    def __init__(self, name: str, url: str, key: str, pid: int | None = None) -> None:
        self.name = name
        self.pid = pid  # the server process whose CPU time is charged to this target (not the upstream's)
        self.cpu_per_call: list[float] = []
        self.cpu_per_chunk: list[float] = []
        self.url = url
        self.headers = {"Authorization": f"Bearer {key}"}
        self.latencies: list[float] = []
        self.overheads: list[float] = []
        self.rates: dict[int, list[float]] = {}
        self.ttfts: list[float] = []
        self.chunk_rates: list[float] = []
        self.local = threading.local()

    def session(self) -> requests.Session:
        session = getattr(self.local, "session", None)
        if session is None:
            session = self.local.session = requests.Session()
        return session

    def call(self) -> float:
        started = time.perf_counter()
        response = self.session().post(self.url, json=BODY, headers=self.headers)
        response.json()
        elapsed = time.perf_counter() - started
        if response.status_code != 200:
            raise SystemExit(f"{self.name}: HTTP {response.status_code}: {response.text[:200]}")
        overhead = response.headers.get("x-llmrelay-overhead-ms")
        if overhead is not None:
            self.overheads.append(float(overhead))
        return elapsed

    def stream(self) -> tuple[float, int, float]:
        started = time.perf_counter()
        first: float | None = None
        chunks = 0
        body = {**BODY, "stream": True}
        with self.session().post(self.url, json=body, headers=self.headers, stream=True) as response:
            for line in response.iter_lines():
                if not line.startswith(b"data: "):
                    continue
                if line == b"data: [DONE]":
                    break
                json.loads(line[6:])
                chunks += 1
                if first is None:
                    first = time.perf_counter()
        ended = time.perf_counter()
        return (first or ended) - started, chunks, ended - started


def concurrent_rate(target: Target, clients: int, calls_each: int) -> float:
    barrier = threading.Barrier(clients + 1)

    def worker() -> None:
        barrier.wait()
        for _ in range(calls_each):
            target.call()

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    return clients * calls_each / (time.perf_counter() - started)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def run(targets: list[Target], rounds: int, calls: int) -> None:
    for target in targets:  # warm up connections, pools and caches
        for _ in range(20):
            target.call()
        target.stream()
        target.overheads.clear()
    for number in range(rounds):
        order = targets if number % 2 == 0 else list(reversed(targets))
        for target in order:
            cpu = cpu_seconds(target.pid)
            target.latencies += [target.call() for _ in range(calls)]
            target.cpu_per_call.append((cpu_seconds(target.pid) - cpu) / calls)
        for clients in (8, 32):
            for target in order:
                target.rates.setdefault(clients, []).append(concurrent_rate(target, clients, max(4, calls // 4)))
        for target in order:
            cpu = cpu_seconds(target.pid)
            ttft, chunks, total = target.stream()
            target.cpu_per_chunk.append((cpu_seconds(target.pid) - cpu) / max(chunks, 1))
            target.ttfts.append(ttft)
            target.chunk_rates.append(chunks / total)


def report(targets: list[Target], skipped: dict[str, str]) -> str:
    direct = targets[0]
    d50, d99 = percentile(direct.latencies, 0.5), percentile(direct.latencies, 0.99)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [
        f"# gateway benchmark ({platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, load average {load:.1f} at the end, {platform.platform()})",
        "",
        "| target | p50 ms | p99 ms | added p50 ms | added p99 ms | own overhead ms (median) | server CPU ms/call "
        "| req/s @8 | req/s @32 | stream TTFT ms | added TTFT ms | chunks/s | chunks/s vs direct "
        "| server CPU us/chunk |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    direct_ttft = statistics.median(direct.ttfts)
    direct_chunks = statistics.median(direct.chunk_rates)
    added: dict[str, float] = {}
    for target in targets:
        p50, p99 = percentile(target.latencies, 0.5), percentile(target.latencies, 0.99)
        added[target.name] = (p50 - d50) * 1000
        own = f"{statistics.median(target.overheads):.3f}" if target.overheads else "-"
        ttft = statistics.median(target.ttfts)
        chunk_rate = statistics.median(target.chunk_rates)
        cpu_call = f"{statistics.median(target.cpu_per_call) * 1000:.3f}" if target.pid else "-"
        cpu_chunk = f"{statistics.median(target.cpu_per_chunk) * 1e6:.1f}" if target.pid else "-"
        cells = [
            target.name,
            f"{p50 * 1000:.3f}",
            f"{p99 * 1000:.3f}",
            f"{(p50 - d50) * 1000:+.3f}",
            f"{(p99 - d99) * 1000:+.3f}",
            own,
            cpu_call,
            f"{statistics.median(target.rates[8]):.0f}",
            f"{statistics.median(target.rates[32]):.0f}",
            f"{ttft * 1000:.2f}",
            f"{(ttft - direct_ttft) * 1000:+.2f}",
            f"{chunk_rate:.0f}",
            f"{chunk_rate / direct_chunks:.2f}x",
            cpu_chunk,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    for name, reason in skipped.items():
        lines.append(f"| {name} | skipped: {reason} |" + " |" * 13)
    gateway = added.get("llmrelay gateway")
    if gateway is not None:
        lines += ["", f"- added p50: {gateway:.3f} ms (target <= 0.6 ms): {'met' if gateway <= 0.6 else 'NOT met'}"]
        litellm = added.get("LiteLLM proxy")
        if litellm:
            ratio = gateway / litellm
            lines.append(f"- vs LiteLLM proxy: {ratio:.3f}x its added latency (target <= 0.15x)")
        else:
            lines.append("- vs LiteLLM proxy: not measured (see its row)")
        gateway_target = next(t for t in targets if t.name == "llmrelay gateway")
        ratio = statistics.median(gateway_target.chunk_rates) / direct_chunks
        lines.append(
            f"- streaming throughput: {ratio:.2f}x direct (target >= 0.8x): {'met' if ratio >= 0.8 else 'NOT met'}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=40, help="sequential calls per target per round")
    parser.add_argument("--stream-chunks", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=1, help="gateway worker processes")
    parser.add_argument(
        "--granian", action="store_true", help="also serve the gateway app on granian, to compare the servers"
    )
    parser.add_argument("--out", default=str(HERE / "results" / "gateway.md"))
    args = parser.parse_args(argv)

    processes: list[subprocess.Popen[Any]] = []
    cleanup: list[Callable[[], None]] = []
    try:
        upstream, upstream_port = start_upstream(args.stream_chunks)
        processes.append(upstream)
        gateway_port = free_port()
        gateway, config_path = start_gateway(upstream_port, gateway_port, args.workers)
        processes.append(gateway)
        cleanup.append(lambda: os.unlink(config_path))
        targets = [
            Target("direct (upstream)", f"http://127.0.0.1:{upstream_port}/api/v1/chat/completions", KEY),
            Target(
                "llmrelay gateway", f"http://127.0.0.1:{gateway_port}/v1/chat/completions", GATEWAY_KEY, gateway.pid
            ),
        ]
        skipped: dict[str, str] = {}

        def side_by_side(name: str, start: Callable[[int], tuple[subprocess.Popen[bytes] | None, str]]) -> None:
            port = free_port()
            process, reason = start(port)
            if process is None:
                skipped[name] = reason
                return
            processes.append(process)
            targets.append(Target(name, f"http://127.0.0.1:{port}/v1/chat/completions", GATEWAY_KEY, process.pid))

        if args.granian:
            side_by_side("llmrelay gateway on granian", lambda port: start_granian(config_path, port))
        side_by_side("LiteLLM proxy", lambda port: start_litellm(upstream_port, port))
        run(targets, args.rounds, args.calls)
        text = report(targets, skipped)
        print(text)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    finally:
        for process in reversed(processes):
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        for step in cleanup:
            step()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
