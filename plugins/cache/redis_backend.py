"""The Redis L2 backend (redis-py, installed with ``pip install llmrelay[redis]``).

This module is imported only when ``backend = "redis"`` is configured, and
it imports ``redis`` only then, so the cache costs nothing to import for
users without Redis.

Values are the codec's versioned JSON with a Redis TTL (``SET ... PX``).
The refresh lock is ``SET name token NX PX ttl`` and is released by a Lua
compare-and-delete, so an instance whose lock expired mid-refresh never
deletes the lock a second instance took since. Every Redis failure
(connection refused, timeout, a server error) becomes
:class:`~.backends.BackendUnavailable`; the URL's password never appears in
a message.
"""

from __future__ import annotations

import contextlib
from typing import Any
from urllib.parse import urlsplit

from llmrelay.core.errors import ConfigurationError

from .backends import BackendUnavailable, L2Backend

__all__ = ["RedisBackend"]

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""
_SCAN_BATCH = 500


def _import_redis() -> Any:
    try:
        import redis
    except ImportError:
        raise ConfigurationError(
            "plugins.cache.backend = 'redis' needs the redis package: pip install 'llmrelay[redis]' "
            "(or set backend = 'memory')"
        ) from None
    return redis


class RedisBackend(L2Backend):
    """L2 entries in Redis, shared by every process using the same namespace."""

    shared = True

    def __init__(self, url: str, *, timeout: float = 0.25, client: Any = None) -> None:
        redis = _import_redis()
        self._errors: tuple[type[BaseException], ...] = (redis.exceptions.RedisError, OSError)
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ConfigurationError(
                f"plugins.cache.redis_url must start with redis://, rediss:// or unix:// (got scheme {parts.scheme!r})"
            )
        # Host, port and database only: the URL may carry a password.
        self._where = f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}{parts.path}"
        if client is None:
            try:
                client = redis.Redis.from_url(
                    url, socket_timeout=timeout, socket_connect_timeout=timeout, retry_on_timeout=False
                )
            except ValueError as exc:
                raise ConfigurationError(f"plugins.cache.redis_url is not a valid Redis URL ({self._where})") from exc
        self._client = client
        self._release = client.register_script(_RELEASE)

    def _fail(self, exc: BaseException) -> BackendUnavailable:
        return BackendUnavailable(f"Redis at {self._where}: {type(exc).__name__}")

    def get(self, key: str) -> bytes | None:
        try:
            value = self._client.get(key)
        except self._errors as exc:
            raise self._fail(exc) from None
        return value  # type: ignore[no-any-return]

    def set(self, key: str, data: bytes, ttl: float) -> None:
        try:
            self._client.set(key, data, px=max(1, int(ttl * 1000)))
        except self._errors as exc:
            raise self._fail(exc) from None

    def delete(self, key: str) -> None:
        try:
            self._client.delete(key)
        except self._errors as exc:
            raise self._fail(exc) from None

    def delete_prefix(self, prefix: str) -> int:
        # Keys are built from [A-Za-z0-9_.:-] only, so the prefix has no glob characters.
        removed = 0
        try:
            batch: list[Any] = []
            for key in self._client.scan_iter(match=prefix + "*", count=_SCAN_BATCH):
                batch.append(key)
                if len(batch) >= _SCAN_BATCH:
                    removed += self._client.unlink(*batch)
                    batch = []
            if batch:
                removed += self._client.unlink(*batch)
        except self._errors as exc:
            raise self._fail(exc) from None
        return removed

    def acquire_lock(self, name: str, ttl: float) -> str | None:
        import secrets

        token = secrets.token_hex(8)
        try:
            taken = self._client.set(name, token, nx=True, px=max(1, int(ttl * 1000)))
        except self._errors as exc:
            raise self._fail(exc) from None
        return token if taken else None

    def release_lock(self, name: str, token: str) -> bool:
        try:
            return bool(self._release(keys=[name], args=[token]))
        except self._errors as exc:
            raise self._fail(exc) from None

    def close(self) -> None:
        with contextlib.suppress(*self._errors):
            self._client.close()

    def describe(self) -> str:
        return self._where

    def __repr__(self) -> str:
        return f"<RedisBackend {self._where}>"
