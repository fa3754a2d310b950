"""Load: 16 threads share one provider (all default plugins) for thousands of calls, ~10% of them faulted.

Asserts that nothing is lost: no exception other than a typed llmrelay error
escapes, no thread dies, no socket or thread is left behind once the
provider is closed (connections are counted at the server), and the
metrics plugin counted exactly the calls that were made, with every
request the server saw accounted for as a call or a retry.
"""

from __future__ import annotations

import gc
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from llmrelay.core import create_provider
from llmrelay.core.errors import LLMRelayError
from llmrelay.core.provider import CallOptions
from llmrelay.plugins.metrics import metrics_registry

from tests.support.fake_server import VALID_KEY, FakeOpenRouter, RecordedRequest, Reply

THREADS = 16
CALLS_PER_THREAD = 150  # 2400 calls
FAULT_RATE = 0.10


def _faults(seed: int) -> tuple[object, object]:
    """Handlers that fault ~10% of requests, from a seeded generator (thread-safe)."""
    rng = random.Random(seed)
    lock = threading.Lock()
    json_faults = [
        Reply(status=429, headers={"Retry-After": "0"}, body={"error": {"code": 429, "message": "slow down"}}),
        Reply(status=500, body={"error": {"code": 500, "message": "boom"}}),
        Reply(status=503, body={"error": {"code": 503, "message": "busy"}}),
        Reply(reset_before_headers=True),
        Reply(malformed_json=True),
        Reply(status=502, html=True),
    ]

    def pick(request: RecordedRequest) -> Reply | None:
        with lock:
            faulted = rng.random() < FAULT_RATE
            choice = rng.randrange(8)
        if not faulted:
            return None
        if isinstance(request.body, dict) and request.body.get("stream"):
            stream_faults = [*json_faults[:4], Reply(stream_cut_after=2), Reply(stream_error_after=1)]
            return stream_faults[choice % len(stream_faults)]
        return json_faults[choice % len(json_faults)]

    return pick, pick


@dataclass
class LoadRun:
    name: str
    calls: int
    outcomes: Counter[str]
    unexpected: list[BaseException]
    thread_crashes: list[BaseException]
    server: FakeOpenRouter
    open_connections_after_close: int
    open_connections_after_gc: int
    threads_before: int
    threads_after: int
    thread_names_after: list[str]


def _client_threads() -> int:
    """Threads that are not the fake server's own (its per-connection handlers come and go)."""
    return sum(
        1 for t in threading.enumerate() if "process_request_thread" not in t.name and "serve_forever" not in t.name
    )


def _settle(predicate, timeout: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
    """Wait briefly for other threads (server handlers) to notice closed sockets."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


@pytest.fixture(scope="module")
def load_run() -> Iterator[LoadRun]:
    with FakeOpenRouter() as server:
        yield _run_load(server)


def _run_load(server: FakeOpenRouter) -> LoadRun:
    chat_fault, models_fault = _faults(seed=6)
    server.handle("POST", "/chat/completions", chat_fault)  # type: ignore[arg-type]
    server.handle("GET", "/models", models_fault)  # type: ignore[arg-type]
    name = f"load-{uuid.uuid4().hex[:8]}"
    threads_before = _client_threads()
    provider = create_provider(
        name,
        config={
            "providers": {name: {"type": "openrouter"}},
            "plugins": {"cache": {"warm_up": []}},
        },
        api_key=VALID_KEY,
        base_url=server.base_url,
        timeout={"connect": 5, "read": 5, "stream_idle": 5},
        retry={"max_attempts": 3, "initial_backoff": 0.001, "max_backoff": 0.002},
    )
    unexpected: list[BaseException] = []
    thread_crashes: list[BaseException] = []
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    start = threading.Barrier(THREADS)
    previous_hook = threading.excepthook
    threading.excepthook = lambda args: thread_crashes.append(args.exc_value)  # type: ignore[assignment]

    def worker(index: int) -> None:
        rng = random.Random(index)
        local: Counter[str] = Counter()
        start.wait()
        for number in range(CALLS_PER_THREAD):
            roll = rng.random()
            request = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": f"t{index} c{number}"}]}
            try:
                if roll < 0.7:
                    provider.execute(request)
                elif roll < 0.9:
                    with provider.stream_execute(request) as stream:
                        for _ in stream:
                            pass
                else:
                    provider.list_models(options=CallOptions(cache=rng.random() < 0.5))
                local["ok"] += 1
            except LLMRelayError as exc:
                local[type(exc).__name__] += 1
            except BaseException as exc:  # anything else is a bug
                with lock:
                    unexpected.append(exc)
        with lock:
            outcomes.update(local)

    workers = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    try:
        for thread in workers:
            thread.start()
        for thread in workers:
            thread.join(timeout=60)
        assert not any(thread.is_alive() for thread in workers), "a worker hung"
    finally:
        threading.excepthook = previous_hook
    provider.close()
    _settle(lambda: server.open_connections == 0)
    _settle(lambda: _client_threads() <= threads_before)
    open_after_close = server.open_connections
    # Anything still open now is held by an unreachable object only the garbage collector frees.
    gc.collect()
    _settle(lambda: server.open_connections == 0)
    return LoadRun(
        name,
        THREADS * CALLS_PER_THREAD,
        outcomes,
        unexpected,
        thread_crashes,
        server,
        open_after_close,
        server.open_connections,
        threads_before,
        _client_threads(),
        [t.name for t in threading.enumerate()],
    )


def test_no_untyped_exception_escapes_and_no_thread_dies(load_run: LoadRun) -> None:
    assert load_run.unexpected == [], (
        f"{len(load_run.unexpected)} untyped exceptions, first: {load_run.unexpected[0]!r}"
    )
    assert load_run.thread_crashes == []
    assert sum(load_run.outcomes.values()) == load_run.calls
    assert load_run.outcomes["ok"] >= load_run.calls * 0.9, load_run.outcomes  # most faults are retried away
    assert load_run.calls - load_run.outcomes["ok"] > 0, "no fault reached a caller: the injection did not work"


def test_no_socket_or_thread_is_left_behind(load_run: LoadRun) -> None:
    assert load_run.server.connections_opened > 0
    assert load_run.server.max_open_connections <= 32 + THREADS  # the pool, plus one throwaway per thread at most
    assert load_run.open_connections_after_gc == 0, f"{load_run.open_connections_after_gc} sockets leaked for good"
    assert load_run.threads_after <= load_run.threads_before, (
        f"threads: {load_run.threads_before} before, {load_run.threads_after} after: {load_run.thread_names_after}"
    )


def test_close_releases_every_socket_without_the_garbage_collector(load_run: LoadRun) -> None:
    if load_run.open_connections_after_close and not load_run.open_connections_after_gc:
        pytest.xfail(
            f"{load_run.open_connections_after_close} sockets stayed open after provider.close() until gc.collect(): "
            "a stream answered with an error status (or a non-SSE 200) keeps its socket referenced from an "
            "exception traceback cycle; see the issue-6 report"
        )
    assert load_run.open_connections_after_close == 0


def test_metrics_totals_equal_the_calls_made(load_run: LoadRun) -> None:
    totals = metrics_registry().snapshot().for_provider(load_run.name).totals
    assert totals.requests == load_run.calls, (totals, load_run.outcomes)
    assert totals.successes == load_run.outcomes["ok"]
    assert totals.errors == load_run.calls - load_run.outcomes["ok"]
    assert totals.cancelled == 0
    series = metrics_registry().snapshot().for_provider(load_run.name).series
    by_type: Counter[str] = Counter()
    for item in series:
        by_type.update(item.errors_by_type)
    assert dict(by_type) == {k: v for k, v in load_run.outcomes.items() if k != "ok"}


def test_every_request_at_the_server_is_a_call_or_a_counted_retry(load_run: LoadRun) -> None:
    totals = metrics_registry().snapshot().for_provider(load_run.name).totals
    # Answered without a request of their own: cache hits, stale answers,
    # callers that shared another caller's failed load, breaker rejections.
    answered_locally = totals.cache_hits + totals.cache_stale + totals.cache_coalesced + totals.breaker_rejections
    reached = load_run.server.count()
    assert reached > load_run.calls - answered_locally, "no retry happened: the fault injection did not work"
    assert totals.retries > 0
    assert reached == load_run.calls - answered_locally + totals.retries, (reached, totals)
