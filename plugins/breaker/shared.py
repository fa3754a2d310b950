"""Breaker state shared through Redis, so a fleet of processes trips and recovers together.

Keys, for a breaker named ``openrouter`` under the default prefix:

``llmrelay:breaker:openrouter``
    ``"open"`` with a TTL of the reset timeout while the circuit is open
    (its remaining TTL is every instance's ``retry_after``), ``"closed"``
    after a probe succeeded. Absent: nothing to share.
``llmrelay:breaker:openrouter:probe``
    A lease (``SET NX PX``) held by the one instance that probes the
    upstream when the open period ends; the others keep failing fast until
    the probe's result is published.

Time lives in Redis TTLs, not in timestamps, so instances need no
synchronised clocks. Counting failures stays local: each instance trips on
what it sees, and the fleet follows the first one to trip.

Any Redis error makes the store unavailable for ``retry_interval`` seconds:
breakers carry on with local state, and ONE warning says so (another after
Redis has come back and failed again). ``redis`` is imported only here, and
only when a store is built.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from llmrelay.core.errors import ConfigurationError

__all__ = ["RedisSharedState", "RemoteState"]

log = logging.getLogger("llmrelay.breaker")


@dataclass(frozen=True, slots=True)
class RemoteState:
    state: str | None
    remaining: float | None = None


class RedisSharedState:
    """A :class:`~.circuit.SharedState` backed by Redis."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "llmrelay:breaker",
        retry_interval: float = 30.0,
        socket_timeout: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
        client: Any = None,
    ) -> None:
        self.prefix = prefix
        self.retry_interval = retry_interval
        self._clock = clock
        self._token = uuid.uuid4().hex  # identifies this instance's probe lease
        self._lock = threading.Lock()
        self._down_until = float("-inf")
        self._warned = False
        if client is None:
            try:
                import redis
            except ImportError:
                raise ConfigurationError(
                    "plugins.breaker.redis_url is set but the redis package is not installed "
                    "(pip install 'llmrelay[redis]')"
                ) from None
            client = redis.Redis.from_url(
                url, socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout, decode_responses=True
            )
        self._client = client
        self._url_for_logs = url.split("@")[-1]  # never the password

    # ------------------------------------------------------------------ availability

    @property
    def available(self) -> bool:
        return self._clock() >= self._down_until

    def _run(self, what: str, fn: Callable[[], Any]) -> Any:
        if not self.available:
            return None
        try:
            result = fn()
        except Exception as exc:  # redis.RedisError, OSError: anything means "no shared state now"
            with self._lock:
                self._down_until = self._clock() + self.retry_interval
                first = not self._warned
                self._warned = True
            if first:
                log.warning(
                    "circuit breaker: Redis at %s failed (%s: %s) during %s; using local breaker state "
                    "and retrying Redis every %.0fs",
                    self._url_for_logs,
                    type(exc).__name__,
                    exc,
                    what,
                    self.retry_interval,
                )
            return None
        if self._warned:
            with self._lock:
                if self._warned:
                    self._warned = False
                    log.info("circuit breaker: Redis at %s is back; sharing breaker state again", self._url_for_logs)
        return result

    def _key(self, name: str) -> str:
        return f"{self.prefix}:{name}"

    # ------------------------------------------------------------------ SharedState

    def read(self, name: str) -> RemoteState | None:
        key = self._key(name)

        def read() -> RemoteState:
            pipe = self._client.pipeline(transaction=False)
            pipe.get(key)
            pipe.pttl(key)
            value, pttl = pipe.execute()
            if value == "open" and pttl is not None and pttl > 0:
                return RemoteState("open", pttl / 1000.0)
            if value == "closed":
                return RemoteState("closed")
            return RemoteState(None)

        return self._run("read", read)  # type: ignore[no-any-return]

    def publish_open(self, name: str, seconds: float) -> bool | None:
        ms = max(1, int(seconds * 1000))
        return self._run("publish_open", lambda: bool(self._client.set(self._key(name), "open", px=ms)))  # type: ignore[no-any-return]

    def publish_closed(self, name: str) -> bool | None:
        # A day is long enough for every instance to notice, short enough not to litter.
        return self._run("publish_closed", lambda: bool(self._client.set(self._key(name), "closed", ex=86400)))  # type: ignore[no-any-return]

    def try_probe_lease(self, name: str, seconds: float) -> bool | None:
        ms = max(1, int(seconds * 1000))
        key = self._key(name) + ":probe"
        return self._run("probe_lease", lambda: bool(self._client.set(key, self._token, nx=True, px=ms)))  # type: ignore[no-any-return]

    _RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"

    def release_probe_lease(self, name: str) -> bool | None:
        # Compare-and-delete: never release a lease another instance took after ours expired.
        key = self._key(name) + ":probe"
        return self._run("release_probe", lambda: bool(self._client.eval(self._RELEASE, 1, key, self._token)))  # type: ignore[no-any-return]

    def clear(self, name: str) -> None:
        """Forget the shared state of one breaker (tests, operators)."""
        self._run("clear", lambda: self._client.delete(self._key(name), self._key(name) + ":probe"))

    def close(self) -> None:
        close = getattr(self._client, "close", None)
        if close is not None:
            with contextlib.suppress(Exception):
                close()

    def __repr__(self) -> str:
        return f"<RedisSharedState {self._url_for_logs} prefix={self.prefix!r}>"
