"""Breaker state shared through the real Redis on 127.0.0.1:6379.

Skipped with a reason when Redis is unreachable, unless
LLMRELAY_REQUIRE_REDIS=1 (CI), which turns the skip into a failure.
"""

from __future__ import annotations

import logging
import os
import uuid

import pytest
from llmrelay.core.errors import CircuitOpenError, ServerError
from llmrelay.plugins.breaker import BreakerSettings, CircuitBreaker, CircuitState

from tests.support.clock import FakeClock

REDIS_URL = "redis://127.0.0.1:6379/0"

pytestmark = pytest.mark.redis


@pytest.fixture
def redis_client():
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=0.5, socket_connect_timeout=0.5, decode_responses=True)
    try:
        client.ping()
    except Exception as exc:
        if os.environ.get("LLMRELAY_REQUIRE_REDIS") == "1":
            pytest.fail(f"LLMRELAY_REQUIRE_REDIS=1 but Redis at {REDIS_URL} is unreachable: {exc}")
        pytest.skip(
            f"Redis at {REDIS_URL} is unreachable ({type(exc).__name__}); set LLMRELAY_REQUIRE_REDIS=1 to fail instead"
        )
    yield client
    client.close()


@pytest.fixture
def prefix(redis_client):
    value = f"llmrelay-test:{uuid.uuid4().hex}"
    yield value
    for key in redis_client.scan_iter(f"{value}:*"):
        redis_client.delete(key)


def instance(prefix: str, clock: FakeClock, url: str = REDIS_URL) -> CircuitBreaker:
    from llmrelay.plugins.breaker.shared import RedisSharedState

    settings = BreakerSettings(reset_timeout=2.0, redis_url=url, redis_sync_interval=0.5)
    shared = RedisSharedState(url, prefix=prefix, clock=clock, retry_interval=30)
    return CircuitBreaker("fleet", settings, clock=clock, shared=shared)


def test_fleet_trips_together(prefix, redis_client) -> None:
    clock_a, clock_b = FakeClock(), FakeClock()
    a, b = instance(prefix, clock_a), instance(prefix, clock_b)
    b.acquire().record(None)  # b has read the shared state once
    for _ in range(5):
        a.acquire().record(ServerError("down", status=503))
    assert a.state is CircuitState.OPEN
    assert redis_client.get(f"{prefix}:fleet") == "open"
    clock_b.now += 0.5  # b's next read of the shared state is due
    with pytest.raises(CircuitOpenError) as info:
        b.acquire()
    assert 0 < info.value.retry_after <= 2.0  # from the key's TTL in Redis
    assert b.state is CircuitState.OPEN


def test_one_instance_probes_and_the_fleet_recovers(prefix, redis_client) -> None:
    clock_a, clock_b = FakeClock(), FakeClock()
    a, b = instance(prefix, clock_a), instance(prefix, clock_b)
    a.trip()
    clock_b.now += 0.5
    with pytest.raises(CircuitOpenError):
        b.acquire()
    redis_client.delete(f"{prefix}:fleet")  # the open period ended (TTL expiry, without waiting)
    clock_a.now += 3
    clock_b.now += 3
    probe = a.acquire()
    assert probe.probe
    with pytest.raises(CircuitOpenError, match="another instance is probing"):
        b.acquire()  # b found a's probe lease
    probe.record(None)
    assert a.state is CircuitState.CLOSED
    assert redis_client.get(f"{prefix}:fleet") == "closed"
    assert redis_client.get(f"{prefix}:fleet:probe") is None  # lease released
    clock_b.now += 0.5
    b.acquire().record(None)  # b follows the fleet and closes without probing itself
    assert b.state is CircuitState.CLOSED


def test_failed_probe_reopens_the_fleet(prefix, redis_client) -> None:
    clock = FakeClock()
    a = instance(prefix, clock)
    a.trip()
    redis_client.delete(f"{prefix}:fleet")
    clock.now += 3
    a.acquire().record(ServerError("still down", status=502))
    assert a.state is CircuitState.OPEN
    assert redis_client.get(f"{prefix}:fleet") == "open"
    assert 0 < redis_client.pttl(f"{prefix}:fleet") <= 2000


def test_unreachable_redis_falls_back_to_local_state_with_one_warning(caplog) -> None:
    clock = FakeClock()
    # port 1 on loopback: connection refused at once
    breaker = instance("llmrelay-test:unreachable", clock, url="redis://127.0.0.1:1/0")
    with caplog.at_level(logging.WARNING, logger="llmrelay.breaker"):
        for _ in range(5):
            clock.now += 1  # every call would read the shared state
            breaker.acquire().record(ServerError("down", status=503))
        assert breaker.state is CircuitState.OPEN  # local state still works
        with pytest.raises(CircuitOpenError):
            breaker.acquire()
    warnings = [r for r in caplog.records if "Redis" in r.getMessage()]
    assert len(warnings) == 1
    assert "local breaker state" in warnings[0].getMessage()


def test_configured_through_the_config_file(registry, prefix) -> None:
    from llmrelay.core import create_provider

    config = {"plugins": {"breaker": {"redis_url": REDIS_URL, "redis_prefix": prefix, "failure_threshold": 2}}}
    first = create_provider("fake", registry=registry, plugins=["breaker"], config=config)
    second = create_provider("fake", registry=registry, plugins=["breaker"], config=config)  # another process
    clock = FakeClock()
    first.layer("breaker").board.set_clock(clock)
    second.layer("breaker").board.set_clock(clock)
    request = {"model": "fake/small", "messages": [{"role": "user", "content": "hi"}]}
    second.execute(request)  # second has synced with Redis once
    first.inner.errors = [ServerError("down", status=503), ServerError("down", status=503)]
    for _ in range(2):
        with pytest.raises(ServerError):
            first.execute(request)
    clock.now += 1.0  # the default sync interval
    with pytest.raises(CircuitOpenError):
        second.execute(request)
    assert second.inner.count("execute") == 1  # the second instance made no call
    first.close()
    second.close()
