"""The fault matrix: every operation x every fault the local server can inject, with the exact outcome.

Operations: ``execute``, ``stream_execute``, ``list_models``,
``validate_config``, through the full pipeline (metrics -> cache -> breaker
-> OpenRouter provider) against ``tests/support/fake_server.py``.

Faults (issue 6, item 4): 429 with Retry-After, 500, 502, 503, a response
slower than the read timeout, a reset before headers, a reset after
headers, a stream cut after N chunks, a stream that stalls, malformed JSON,
an HTML error page, a mid-stream ``error`` event, a 200 with an empty body.
For the three JSON operations the stream faults become their JSON
equivalents: a body cut off mid-way (connection closed), a body that stalls
mid-way, and a 200 whose body is an ``error`` object (what OpenRouter sends
when an upstream fails after the response started).

Each fault is injected once (``transient``: the next attempt is answered
normally) and on every request (``persistent``). Every case asserts the
result or the typed error, the number of requests the server saw (retries
counted there, never a retry after a stream's first chunk), the backoff the
injected sleep was asked for (Retry-After honoured), and that the call
ended within its configured deadline. Separate cases check stale data is
served where the cache holds some, and that the breaker opens once the
threshold is passed. The retry sleep is injected: no case sleeps for a
backoff.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from llmrelay.core.account import ValidationReport
from llmrelay.core.catalog import ModelList
from llmrelay.core.errors import (
    APIConnectionError,
    APITimeoutError,
    CircuitOpenError,
    InvalidResponseError,
    LLMRelayError,
    RateLimitError,
    ServerError,
    StreamInterruptedError,
)
from llmrelay.core.models import ChatResponse
from llmrelay.core.pipeline import LayeredProvider
from llmrelay.core.provider import CallOptions
from llmrelay.plugins.breaker import BreakerBoard, BreakerLayer, BreakerSettings
from llmrelay.plugins.cache.keys import KeyBuilder
from llmrelay.plugins.cache.layer import CacheLayer
from llmrelay.plugins.cache.settings import CacheSettings
from llmrelay.plugins.metrics import MetricsCollector, MetricsLayer
from llmrelay.providers.openrouter import OpenRouterProvider

from tests.support.clock import FakeClock
from tests.support.fake_server import VALID_KEY, FakeOpenRouter, Reply, chat_completion, sample_models

CONNECT, READ, IDLE = 2.0, 0.4, 0.4
ATTEMPTS = 3
# A call may take ATTEMPTS full read timeouts; the margin covers a slow CI box, not a missing timeout.
DEADLINE = ATTEMPTS * (CONNECT + READ)
REQUEST = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
STREAM_N = 3  # chunks delivered before a stream fault
MAX_STALL = 30.0  # the server's stall / delay length: far past every timeout, released when the server stops

OPERATIONS = ("execute", "stream_execute", "list_models", "validate_config")
ROUTES = {
    "execute": ("POST", "/chat/completions"),
    "stream_execute": ("POST", "/chat/completions"),
    "list_models": ("GET", "/models"),
    "validate_config": ("GET", "/key"),
}


def _full_body(operation: str) -> bytes:
    if operation in ("execute", "stream_execute"):
        return json.dumps(chat_completion()).encode()
    if operation == "list_models":
        return json.dumps(sample_models()).encode()
    return json.dumps({"data": {"label": "sk-or-v1-000...000", "usage": 0.25}}).encode()


def _cut_json(operation: str) -> Reply:
    # Content-Length promises the whole body; half of it is sent and the connection closed.
    full = _full_body(operation)
    return Reply(
        status=200, body=full[: len(full) // 2], headers={"Content-Length": str(len(full)), "Connection": "close"}
    )


def _stalled_json(operation: str) -> Reply:
    # Half the promised body, then silence on a kept-alive connection.
    full = _full_body(operation)
    return Reply(status=200, body=full[: len(full) // 2], headers={"Content-Length": str(len(full))})


ERROR_OBJECT = {"code": 502, "message": "Upstream provider failed"}

# fault name -> (operation -> Reply)
FAULTS: dict[str, Callable[[str], Reply]] = {
    "429_retry_after": lambda op: Reply(
        status=429, headers={"Retry-After": "2"}, body={"error": {"code": 429, "message": "Rate limit exceeded"}}
    ),
    "500": lambda op: Reply(status=500, body={"error": {"code": 500, "message": "Internal Server Error"}}),
    "502": lambda op: Reply(status=502, body={"error": {"code": 502, "message": "Bad gateway"}}),
    "503": lambda op: Reply(status=503, body={"error": {"code": 503, "message": "No instances available"}}),
    "slower_than_read_timeout": lambda op: Reply(delay=MAX_STALL),
    "reset_before_headers": lambda op: Reply(reset_before_headers=True),
    "reset_after_headers": lambda op: Reply(reset_after_headers=True),
    "stream_cut_after_n": lambda op: Reply(stream_cut_after=STREAM_N) if op == "stream_execute" else _cut_json(op),
    "stream_stall": lambda op: Reply(stream_stall_after=STREAM_N) if op == "stream_execute" else _stalled_json(op),
    "malformed_json": lambda op: Reply(malformed_json=True),
    "html_error_page": lambda op: Reply(status=502, html=True),
    "midstream_error_event": lambda op: (
        Reply(stream_error_after=STREAM_N, error=ERROR_OBJECT)
        if op == "stream_execute"
        else Reply(status=200, body={"error": ERROR_OBJECT})
    ),
    "empty_200": lambda op: Reply(empty=True),
}


@dataclass(frozen=True)
class Expect:
    """The outcome of one (operation, fault).

    ``retried``: the fault is retried, so a transient one ends in success
    after 2 requests and a persistent one in ``error`` after ``ATTEMPTS``.
    Otherwise the first failure is final: ``error`` after 1 request, and a
    stream fault ``after_chunks`` is raised while iterating, after that many
    chunks reached the caller.
    """

    error: type[LLMRelayError]
    retried: bool
    after_chunks: int | None = None  # stream faults: raised from iteration, not from stream_execute()
    sleep: float | None = None  # the backoff the retry policy must ask for (Retry-After)
    message: str | None = None  # a piece of the error message the user needs


RETRYABLE: dict[str, Expect] = {
    "429_retry_after": Expect(RateLimitError, True, sleep=2.0, message="Rate limit exceeded"),
    "500": Expect(ServerError, True, message="Internal Server Error"),
    "502": Expect(ServerError, True, message="Bad gateway"),
    "503": Expect(ServerError, True, message="No instances available"),
    "slower_than_read_timeout": Expect(APITimeoutError, True, message="read timeout"),
    "reset_before_headers": Expect(APIConnectionError, True),
    "html_error_page": Expect(ServerError, True, message="HTML page"),
}


def expected(operation: str, fault: str) -> Expect:
    if fault in RETRYABLE:
        return RETRYABLE[fault]
    if operation == "stream_execute":
        return {
            # Headers arrived, so the stream is committed: raised from iteration, never retried.
            "reset_after_headers": Expect(StreamInterruptedError, False, after_chunks=0),
            "stream_cut_after_n": Expect(StreamInterruptedError, False, after_chunks=STREAM_N, message="broke off"),
            "stream_stall": Expect(StreamInterruptedError, False, after_chunks=STREAM_N, message="stream_idle"),
            "midstream_error_event": Expect(
                StreamInterruptedError, False, after_chunks=STREAM_N, message="Upstream provider failed"
            ),
            # A 200 that is not an event stream has no events and no end marker.
            "malformed_json": Expect(StreamInterruptedError, False, after_chunks=0, message="ended before"),
            "empty_200": Expect(StreamInterruptedError, False, after_chunks=0, message="ended before"),
        }[fault]
    table = {
        "reset_after_headers": Expect(APIConnectionError, True),
        "stream_cut_after_n": Expect(APIConnectionError, True, message="dropped while reading"),
        "stream_stall": Expect(APITimeoutError, True, message="read timeout"),
        "malformed_json": Expect(InvalidResponseError, False, message="expected JSON"),
        "empty_200": Expect(InvalidResponseError, False, message="empty body"),
    }
    if fault in table:
        return table[fault]
    assert fault == "midstream_error_event"
    if operation == "execute":
        # A 200 carrying an error object takes the error's code: a 502, retried like one.
        return Expect(ServerError, True, message="Upstream provider failed")
    if operation == "list_models":
        return Expect(InvalidResponseError, False, message='expected {"data"')
    return Expect(InvalidResponseError, False)  # validate_config: /key returned no data


# validate_config never raises: each error becomes an outcome of the report.
REPORT_OUTCOME = {
    RateLimitError: "error",
    ServerError: "error",
    InvalidResponseError: "error",
    APITimeoutError: "unreachable",
    APIConnectionError: "unreachable",
}


# --------------------------------------------------------------------------- pipeline


class Recorder:
    """The injected retry sleep: records what it was asked to wait, returns at once."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def build_pipeline(
    server: FakeOpenRouter,
    sleep: Recorder,
    *,
    attempts: int = ATTEMPTS,
    breaker: BreakerSettings | None = None,
    cache_clock: Callable[[], float] = time.time,
    cache_chat: bool = False,
) -> LayeredProvider:
    """metrics -> cache -> breaker -> OpenRouter, as create_provider builds it, with sleep and clocks injected."""
    inner = OpenRouterProvider(
        api_key=VALID_KEY,
        base_url=server.base_url,
        timeout={"connect": CONNECT, "read": READ, "stream_idle": IDLE},
        retry={"max_attempts": attempts, "initial_backoff": 0.05, "max_backoff": 0.1},
        sleep=sleep,
    )
    operations = {"execute": {"enabled": cache_chat}} if cache_chat else {}
    cache_settings = CacheSettings(warm_up=[], background=False, backend="none", operations=operations)
    keys = KeyBuilder(namespace="faults", provider=inner.name, base_url=server.base_url, api_key=VALID_KEY)
    layers = [
        MetricsLayer(inner.name, MetricsCollector()),
        CacheLayer(cache_settings, keys=keys, provider_name=inner.name, clock=cache_clock),
        BreakerLayer(
            BreakerBoard(inner.name, breaker or BreakerSettings(failure_threshold=50, failure_rate_threshold=None))
        ),
    ]
    return LayeredProvider(inner, layers)


@dataclass
class Outcome:
    result: Any = None
    error: BaseException | None = None
    chunks: int = 0  # stream chunks that reached the caller
    raised_in_iteration: bool = False
    elapsed: float = 0.0


def run_operation(provider: LayeredProvider, operation: str, options: CallOptions | None = None) -> Outcome:
    outcome = Outcome()
    start = time.monotonic()
    try:
        if operation == "execute":
            outcome.result = provider.execute(REQUEST, options=options)
        elif operation == "list_models":
            outcome.result = provider.list_models(options=options)
        elif operation == "validate_config":
            outcome.result = provider.validate_config()
        else:
            stream = provider.stream_execute(REQUEST, options=options)
            with stream:
                try:
                    for _ in stream:
                        outcome.chunks += 1
                except LLMRelayError as exc:
                    outcome.raised_in_iteration = True
                    raise exc
            outcome.result = stream
    except LLMRelayError as exc:
        outcome.error = exc
    outcome.elapsed = time.monotonic() - start
    return outcome


def assert_success(operation: str, outcome: Outcome) -> None:
    assert outcome.error is None, f"expected success, got {outcome.error!r}"
    if operation == "execute":
        assert isinstance(outcome.result, ChatResponse) and outcome.result.text == "Hello there!"
    elif operation == "stream_execute":
        assert outcome.result.completed and outcome.result.text == "word0 word1 word2 word3 word4"
    elif operation == "list_models":
        assert isinstance(outcome.result, ModelList) and len(outcome.result.models) == 3
    else:
        assert isinstance(outcome.result, ValidationReport) and outcome.result.outcome == "valid"


@pytest.fixture
def server() -> Iterator[FakeOpenRouter]:
    with FakeOpenRouter() as fake:
        yield fake


# --------------------------------------------------------------------------- the matrix

MATRIX = [(op, fault, mode) for op in OPERATIONS for fault in FAULTS for mode in ("transient", "persistent")]


@pytest.mark.parametrize(("operation", "fault", "mode"), MATRIX, ids=["-".join(case) for case in MATRIX])
def test_fault_matrix(server: FakeOpenRouter, operation: str, fault: str, mode: str) -> None:
    sleep = Recorder()
    provider = build_pipeline(server, sleep)
    method, path = ROUTES[operation]
    reply = FAULTS[fault](operation)
    server.script(method, path, *([reply] * (1 if mode == "transient" else ATTEMPTS + 2)))
    want = expected(operation, fault)
    try:
        outcome = run_operation(provider, operation)
        requests_seen = server.count(method, path)
        assert outcome.elapsed < DEADLINE, f"took {outcome.elapsed:.2f}s, the deadline is {DEADLINE}s"

        if want.retried and mode == "transient":
            assert_success(operation, outcome)
            assert requests_seen == 2
            assert len(sleep.waits) == 1
        elif want.retried:
            assert requests_seen == ATTEMPTS
            assert len(sleep.waits) == ATTEMPTS - 1
            _assert_failed(operation, outcome, want)
        else:
            assert requests_seen == 1, "a non-retryable fault (or a committed stream) was retried"
            assert sleep.waits == []
            _assert_failed(operation, outcome, want)
        if want.sleep is not None and sleep.waits:
            assert sleep.waits[0] == pytest.approx(want.sleep), "Retry-After was not honoured"

        if mode == "transient":
            # The fault is gone: the same provider answers the next call normally.
            assert_success(operation, run_operation(provider, operation))
    finally:
        provider.close()


def _assert_failed(operation: str, outcome: Outcome, want: Expect) -> None:
    if operation == "validate_config":
        # validate_config reports instead of raising, whatever the fault.
        assert outcome.error is None, f"validate_config raised {outcome.error!r}"
        report = outcome.result
        assert isinstance(report, ValidationReport)
        assert report.outcome == REPORT_OUTCOME[want.error], report.message
        return
    error = outcome.error
    assert type(error) is want.error, f"expected {want.error.__name__}, got {error!r}"
    if want.message is not None:
        assert want.message in str(error)
    assert VALID_KEY not in str(error) and VALID_KEY not in repr(error)
    if operation == "stream_execute":
        if want.after_chunks is None:
            assert not outcome.raised_in_iteration, "an error before the headers must raise from stream_execute()"
        else:
            assert outcome.raised_in_iteration, "a committed stream must raise from iteration"
            assert outcome.chunks == want.after_chunks
    if isinstance(error, RateLimitError):
        assert error.retry_after == pytest.approx(2.0)
    if isinstance(error, StreamInterruptedError) and outcome.chunks and "error event" in str(want.message or ""):
        assert error.upstream_code == 502


def test_matrix_covers_every_operation_and_fault() -> None:
    assert len(OPERATIONS) == 4 and len(FAULTS) == 13
    assert len(MATRIX) == 104
    for operation in OPERATIONS:
        for fault in FAULTS:
            expected(operation, fault)  # every cell has an expectation


def test_midstream_error_carries_the_upstream_code(server: FakeOpenRouter) -> None:
    provider = build_pipeline(server, Recorder())
    server.script(
        "POST", "/chat/completions", Reply(stream_error_after=STREAM_N, error={"code": 429, "message": "slow down"})
    )
    try:
        outcome = run_operation(provider, "stream_execute")
    finally:
        provider.close()
    assert isinstance(outcome.error, StreamInterruptedError)
    assert outcome.error.upstream_code == 429 and outcome.chunks == STREAM_N
    assert server.count("POST", "/chat/completions") == 1


# --------------------------------------------------------------------------- stale data

AVAILABILITY_FAULTS = [
    f for f in FAULTS if f in RETRYABLE or f in ("reset_after_headers", "stream_cut_after_n", "stream_stall")
]
NOT_AVAILABILITY = ["malformed_json", "empty_200"]


@pytest.mark.parametrize("operation", ["list_models", "execute"])
@pytest.mark.parametrize("fault", AVAILABILITY_FAULTS + NOT_AVAILABILITY)
def test_stale_data_is_served_when_the_upstream_fails(server: FakeOpenRouter, operation: str, fault: str) -> None:
    """An expired entry within stale_if_error answers availability failures, never client-side ones."""
    clock = FakeClock(1_000_000.0)
    sleep = Recorder()
    provider = build_pipeline(server, sleep, cache_clock=clock, cache_chat=True)
    method, path = ROUTES[operation]
    try:
        fresh = run_operation(provider, operation)
        assert_success(operation, fresh)
        clock.now += 3600 + 1  # past l1_ttl and l2_ttl (1 h for both operations), within stale_if_error
        server.script(method, path, *([FAULTS[fault](operation)] * (ATTEMPTS + 2)))
        before = server.count(method, path)
        outcome = run_operation(provider, operation)
        assert outcome.elapsed < DEADLINE
        if fault in NOT_AVAILABILITY:
            assert isinstance(outcome.error, InvalidResponseError), "a broken answer must not be masked by stale data"
            return
        assert outcome.error is None, f"stale data not served: {outcome.error!r}"
        assert outcome.result.meta.cache == "stale"
        if operation == "list_models":
            assert [m.id for m in outcome.result.models] == [m.id for m in fresh.result.models]
        else:
            assert outcome.result.text == fresh.result.text
        assert server.count(method, path) - before == ATTEMPTS, "the upstream was not tried before serving stale"
    finally:
        provider.close()


# --------------------------------------------------------------------------- breaker

BREAKER_OPERATIONS = ["execute", "stream_execute", "list_models"]


@pytest.mark.parametrize("operation", BREAKER_OPERATIONS)
@pytest.mark.parametrize("fault", ["503", "reset_before_headers", "slower_than_read_timeout"])
def test_breaker_opens_once_the_threshold_is_passed(server: FakeOpenRouter, operation: str, fault: str) -> None:
    threshold = 3
    provider = build_pipeline(
        server,
        Recorder(),
        attempts=1,
        breaker=BreakerSettings(failure_threshold=threshold, failure_rate_threshold=None, reset_timeout=600),
    )
    method, path = ROUTES[operation]
    server.script(method, path, *([FAULTS[fault](operation)] * 10))
    options = CallOptions(cache=False)
    try:
        for number in range(threshold):
            outcome = run_operation(provider, operation, options)
            assert outcome.error is not None and not isinstance(outcome.error, CircuitOpenError), (
                f"call {number + 1} should reach the server"
            )
        assert server.count(method, path) == threshold
        rejected = run_operation(provider, operation, options)
        assert isinstance(rejected.error, CircuitOpenError)
        assert rejected.error.availability and rejected.error.retry_after is not None
        assert server.count(method, path) == threshold, "an open breaker must not touch the network"
        # validate_config is not guarded: it still reaches the service and reports.
        report = provider.validate_config()
        assert report.outcome == "valid"
    finally:
        provider.close()


def test_breaker_ignores_client_errors(server: FakeOpenRouter) -> None:
    provider = build_pipeline(
        server, Recorder(), attempts=1, breaker=BreakerSettings(failure_threshold=2, failure_rate_threshold=None)
    )
    server.script(
        "POST",
        "/chat/completions",
        *([Reply(malformed_json=True)] * 2 + [Reply(status=400, body={"error": {"code": 400, "message": "bad"}})] * 3),
    )
    try:
        for _ in range(5):
            outcome = run_operation(provider, "execute")
            assert outcome.error is not None and not isinstance(outcome.error, CircuitOpenError)
        assert_success("execute", run_operation(provider, "execute"))
    finally:
        provider.close()
