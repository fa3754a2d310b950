"""Wall time of one model turn's tool calls: one after another vs ToolRegistry.execute.

Each tool sleeps (standing in for an HTTP call or a database query). Rounds
are interleaved (sequential, parallel, sequential, ...) so that drift in the
machine's load hits both alike; the figures are medians over the rounds.

    python bench/bench_tools.py [--tools 8] [--sleep 0.05] [--rounds 7]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from llmrelay.core import FunctionCall, ToolCall
from llmrelay.core.compose.tools import ToolRegistry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tools", type=int, default=8, help="tool calls in the turn")
    parser.add_argument("--sleep", type=float, default=0.05, help="seconds each tool sleeps")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    def slow_lookup(key: int) -> dict:
        time.sleep(args.sleep)
        return {"key": key}

    registry = ToolRegistry(max_workers=max(args.tools, 1))
    registry.register(slow_lookup)
    calls = [
        ToolCall(id=f"c{i}", function=FunctionCall(name="slow_lookup", arguments=json.dumps({"key": i})))
        for i in range(args.tools)
    ]
    registry.execute(calls[:1])  # start a worker thread before timing

    sequential, parallel = [], []
    for _ in range(args.rounds):
        start = time.perf_counter()
        baseline = [slow_lookup(json.loads(c.function.arguments)["key"]) for c in calls]
        sequential.append(time.perf_counter() - start)

        start = time.perf_counter()
        messages = registry.execute(calls)
        parallel.append(time.perf_counter() - start)
        assert [json.loads(m.content) for m in messages] == baseline

    seq, par = statistics.median(sequential), statistics.median(parallel)
    print(f"{args.tools} tools sleeping {args.sleep * 1000:.0f} ms each, {args.rounds} interleaved rounds")
    print(f"  sequential (plain loop):   median {seq * 1000:8.1f} ms")
    print(f"  ToolRegistry.execute:      median {par * 1000:8.1f} ms")
    print(f"  ratio parallel/sequential: {par / seq:.3f}  (ideal {1 / args.tools:.3f})")
    print(f"  overhead over one sleep:   {(par - args.sleep) * 1000:.1f} ms")
    registry.close()


if __name__ == "__main__":
    main()
