"""Fixtures for the cache tests that use the real Redis server on 127.0.0.1:6379.

Without a reachable server these tests skip with the reason, unless
``LLMRELAY_REQUIRE_REDIS=1`` is set (CI sets it), which makes them fail.
Each test gets its own key namespace, deleted afterwards.

Also here: a throwaway ``redis-server`` on a free port (for the test that
stops Redis and starts it again), and the worker of the multi-process
fleet test (``spawn`` needs it importable).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

__all__ = [
    "REDIS_URL",
    "REQUIRE_ENV",
    "FleetClock",
    "RedisServer",
    "fleet_process",
    "fleet_worker",
    "redis_client",
    "redis_namespace",
]

REDIS_URL = os.environ.get("LLMRELAY_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
REQUIRE_ENV = "LLMRELAY_REQUIRE_REDIS"


def _unavailable(reason: str) -> None:
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1: Redis is required here)")
    pytest.skip(reason)


@pytest.fixture
def redis_client() -> Iterator[Any]:
    """A redis-py client for the test database, or skip/fail when there is no server."""
    try:
        import redis
    except ImportError:
        _unavailable("the redis package is not installed (pip install 'llmrelay[redis]')")
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    except (redis.exceptions.RedisError, OSError) as exc:
        client.close()
        _unavailable(f"no Redis server reachable at {REDIS_URL}: {type(exc).__name__}")
    yield client
    client.close()


@pytest.fixture
def redis_namespace(redis_client: Any) -> Iterator[str]:
    """A namespace no other test uses; every key under it is deleted afterwards."""
    namespace = f"llmrelay-test-{uuid.uuid4().hex[:12]}"
    yield namespace
    keys = list(redis_client.scan_iter(match=f"{namespace}:*", count=500))
    if keys:
        redis_client.delete(*keys)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A private redis-server process that a test can stop and start again on the same port."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            _unavailable("redis-server is not installed, so Redis cannot be stopped and restarted")
        self.binary = binary
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.1):
                    return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(5)
            self.process = None


class FleetClock:
    """A fake wall clock a process sets itself, period by period."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def fleet_worker(
    url: str, namespace: str, counter: str, start: float, period: float, periods: int, barrier: Any
) -> list[str]:
    """One instance of a fleet: warm up, then each period run refreshes and serve calls.

    The upstream counts its ``list_models`` calls in Redis (``INCR counter``), so
    the test sees the fleet's total. Returns the cache state of every call served.
    """
    import redis
    from llmrelay.core import LayeredProvider
    from llmrelay.plugins.cache import CacheSettings
    from llmrelay.plugins.cache.keys import KeyBuilder
    from llmrelay.plugins.cache.layer import CacheLayer
    from llmrelay.plugins.cache.redis_backend import RedisBackend

    from tests.support.fake_provider import FakeProvider, FakeSettings

    counting = redis.Redis.from_url(url)
    upstream = FakeProvider(FakeSettings(api_key="sk-fleet-000000000000000000"))

    def count_models(operation: str, _request: Any) -> None:
        if operation == "list_models":
            counting.incr(counter)
            time.sleep(0.01)  # a little upstream latency, so instances overlap for real

    upstream.script = count_models
    clock = FleetClock(start)
    settings = CacheSettings.model_validate({"backend": "redis", "background": False, "namespace": namespace})
    keys = KeyBuilder(namespace=namespace, provider="fake", base_url="", api_key="sk-fleet-000000000000000000")
    layer = CacheLayer(settings, keys=keys, provider_name="fake", backend=RedisBackend(url, timeout=2), clock=clock)
    provider = LayeredProvider(upstream, [layer])
    served: list[str] = []
    try:
        for index in range(periods):
            clock.now = start + index * period
            barrier.wait(30)
            layer.run_pending()  # warm-up in period 0, refresh-ahead after
            barrier.wait(30)
            for _ in range(3):
                served.append(provider.list_models().meta.cache or "none")
            barrier.wait(30)
    finally:
        provider.close()
        counting.close()
    return served


def fleet_process(results: Any, *args: Any) -> None:
    """``fleet_worker`` as a process target: its result (or its error) goes to ``results``."""
    try:
        results.put(("ok", fleet_worker(*args)))
    except BaseException as exc:  # reported to the test, which fails with it
        results.put(("error", f"{type(exc).__name__}: {exc}"))
        raise
