"""The ``[plugins.cache]`` config section.

Example::

    [plugins.cache]
    backend = "redis"                         # "memory" (default), "redis" or "none"
    redis_url = "redis://127.0.0.1:6379/0"
    namespace = "myapp"

    default_ttl = 300                         # cached chat results stay fresh 5 minutes

    [plugins.cache.operations.list_models]    # only the fields you change
    l1_ttl = 30

    [plugins.cache.operations.execute]
    enabled = true                            # cache chat calls for everyone

Durations are seconds. Freshness follows RFC 5861: an entry is fresh for its
TTL, then may be served while it is revalidated in the background for
``stale_while_revalidate`` seconds, and served when the upstream is
unavailable for ``stale_if_error`` seconds.
"""

from typing import Any, ClassVar, Literal

from llmrelay.core.envsettings import EnvAlias, milliseconds
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

__all__ = [
    "CACHEABLE_OPERATIONS",
    "CHAT_OPERATIONS",
    "DEFAULT_POLICIES",
    "WARMABLE_OPERATIONS",
    "CacheSettings",
    "OperationPolicy",
]

#: Operations the cache knows how to store. ``validate_config`` is never cached:
#: it exists to check the key against the service right now.
CACHEABLE_OPERATIONS = (
    "list_models",
    "get_credits",
    "get_generation_stats",
    "execute",
    "stream_execute",
    "embed",
)
#: The operations whose results ``default_ttl`` sets the freshness of.
CHAT_OPERATIONS = ("execute", "stream_execute")
#: Operations without a request, which can be loaded at startup and refreshed ahead.
WARMABLE_OPERATIONS = ("list_models", "get_credits")

_NAMESPACE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")


class OperationPolicy(BaseModel):
    """How one operation is cached."""

    # defer_build: CacheSettings validates its policies through its own schema,
    # so this model's validator is built only if a program makes one directly.
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    enabled: bool = Field(description="cache this operation without a per-call opt-in")
    l1_ttl: float = Field(gt=0, description="seconds an entry is served from this process before L2 is asked again")
    l2_ttl: float = Field(gt=0, description="seconds an entry is fresh (the shared tier's freshness)")
    stale_while_revalidate: float = Field(
        default=0.0, ge=0, description="after expiry: serve stale, refresh in background"
    )
    stale_if_error: float = Field(
        default=0.0, ge=0, description="after expiry: serve stale when the upstream is unavailable"
    )
    refresh_every: float | None = Field(
        default=None, gt=0, description="refresh-ahead period for warmed-up operations (before l2_ttl ends)"
    )

    @property
    def retention(self) -> float:
        """How long past freshness an entry is kept at all."""
        return max(self.stale_while_revalidate, self.stale_if_error)


# The original reports' figures: model list and pricing 60 s in process, 1 h
# shared, refreshed every 55 min; credits move with every call, so briefly;
# generation stats never change once final.
# Floats, as validation would make them: _default_policies() uses them as they are.
DEFAULT_POLICIES: dict[str, dict[str, Any]] = {
    "list_models": dict(
        enabled=True,
        l1_ttl=60.0,
        l2_ttl=3600.0,
        stale_while_revalidate=600.0,
        stale_if_error=86400.0,
        refresh_every=3300.0,
    ),
    "get_credits": dict(enabled=True, l1_ttl=10.0, l2_ttl=30.0, stale_while_revalidate=30.0, stale_if_error=600.0),
    "get_generation_stats": dict(enabled=True, l1_ttl=3600.0, l2_ttl=86400.0, stale_if_error=86400.0),
    "execute": dict(enabled=False, l1_ttl=300.0, l2_ttl=3600.0, stale_if_error=3600.0),
    "stream_execute": dict(enabled=False, l1_ttl=300.0, l2_ttl=3600.0, stale_if_error=3600.0),
    "embed": dict(enabled=False, l1_ttl=3600.0, l2_ttl=86400.0, stale_if_error=86400.0),
}


def _default_policies() -> dict[str, OperationPolicy]:
    # The defaults are valid as written (tested): built without validating,
    # like every settings default (llmrelay.core.settings.default_settings).
    return {name: OperationPolicy.model_construct(**policy) for name, policy in DEFAULT_POLICIES.items()}


def _positive_number(value: Any) -> bool:
    try:
        return value is not None and not isinstance(value, bool) and float(value) > 0
    except (TypeError, ValueError):
        return False


class CacheSettings(BaseModel):
    """Settings of the cache plugin (``[plugins.cache]``)."""

    # defer_build: with no [plugins.cache] section, default_settings()
    # stands in and this schema is never built.
    model_config = ConfigDict(extra="forbid", validate_default=True, defer_build=True)
    # The original reports' CACHE_DEFAULT_TTL (milliseconds; 300000, five minutes) was the lifetime of
    # a cached response: here default_ttl, in seconds (README, "Environment variables").
    env_aliases: ClassVar[tuple[EnvAlias, ...]] = (
        EnvAlias("CACHE_DEFAULT_TTL", ("default_ttl",), milliseconds, "milliseconds"),
    )

    default_ttl: float | None = Field(
        default=None,
        gt=0,
        description=(
            "seconds cached chat results (execute, stream_execute) stay fresh in both tiers, "
            "where operations.<op> sets no l1_ttl / l2_ttl of its own"
        ),
    )

    backend: Literal["memory", "redis", "none"] = Field(
        default="memory", description="the shared L2 tier: in-process memory, Redis, or none (L1 only)"
    )
    redis_url: SecretStr = Field(
        default=SecretStr("redis://127.0.0.1:6379/0"), description="used when backend = 'redis'; may hold a password"
    )
    redis_timeout: float = Field(default=0.25, gt=0, description="seconds per Redis command before L2 counts as down")
    l2_retry_interval: float = Field(default=10.0, gt=0, description="seconds L2 is skipped after it failed")
    namespace: str = Field(default="llmrelay", description="prefix of every L2 key; instances sharing it share entries")
    max_entries: int = Field(default=1024, ge=1, description="L1 capacity, in entries (least recently used go first)")
    memory_max_entries: int = Field(default=10_000, ge=1, description="capacity of the in-memory L2")
    warm_up: list[str] = Field(
        default_factory=lambda: ["list_models"], description="operations loaded at startup and refreshed ahead"
    )
    background: bool = Field(default=True, description="run refreshes on a daemon thread (off: call run_pending())")
    lock_ttl: float = Field(default=30.0, gt=0, description="seconds a fleet-wide refresh lock is held at most")
    lock_wait: float = Field(default=10.0, ge=0, description="seconds a miss waits for another instance's load")
    lock_poll_interval: float = Field(default=0.05, gt=0, description="seconds between checks while waiting")
    key_salt: SecretStr | None = Field(
        default=None, description="salt for the API-key fingerprint in cache keys; same across a fleet"
    )
    operations: dict[str, OperationPolicy] = Field(default_factory=_default_policies)

    @model_validator(mode="before")
    @classmethod
    def _default_ttl(cls, data: Any) -> Any:
        # Fills the chat operations' TTLs before they are validated, so an explicit
        # operations.<op>.l1_ttl / l2_ttl in the same config still wins.
        if not isinstance(data, dict) or not _positive_number(data.get("default_ttl")):
            return data  # unset, or wrong: default_ttl's own validation reports it, once
        operations = dict(data.get("operations") or {})
        for name in CHAT_OPERATIONS:
            policy = operations.get(name, {})
            if isinstance(policy, dict):
                operations[name] = {"l1_ttl": data["default_ttl"], "l2_ttl": data["default_ttl"], **policy}
        return {**data, "operations": operations}

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        # A set, not a regex: this runs when every provider is built, and a
        # regex would be compiled for it in every process.
        if not 0 < len(value) <= 64 or not _NAMESPACE_CHARS.issuperset(value):
            raise ValueError("namespace must be 1-64 characters of letters, digits, '_', '.' or '-'")
        return value

    @field_validator("operations", mode="before")
    @classmethod
    def _merge_defaults(cls, value: Any) -> Any:
        # A config names only the fields it changes; the rest keep their defaults.
        if not isinstance(value, dict):
            return value
        unknown = sorted(set(value) - set(CACHEABLE_OPERATIONS))
        if unknown:
            raise ValueError(f"unknown operation(s) {unknown}; cacheable operations are {list(CACHEABLE_OPERATIONS)}")
        merged: dict[str, Any] = {}
        for name, defaults in DEFAULT_POLICIES.items():
            override = value.get(name, {})
            if isinstance(override, OperationPolicy):
                merged[name] = override
            elif isinstance(override, dict):
                merged[name] = {**defaults, **override}
            else:
                raise ValueError(f"operations.{name} must be a table of settings")
        return merged

    @field_validator("warm_up")
    @classmethod
    def _warmable(cls, value: list[str]) -> list[str]:
        bad = [name for name in value if name not in WARMABLE_OPERATIONS]
        if bad:
            raise ValueError(
                f"cannot warm up {bad}: only operations without a request can be, {list(WARMABLE_OPERATIONS)}"
            )
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _refresh_before_expiry(self) -> "CacheSettings":
        for name, policy in self.operations.items():
            if policy.refresh_every is not None and policy.refresh_every >= policy.l2_ttl + policy.retention:
                raise ValueError(
                    f"operations.{name}.refresh_every ({policy.refresh_every:g}) must be shorter than how long "
                    f"an entry is kept (l2_ttl + stale windows = {policy.l2_ttl + policy.retention:g}), "
                    "or entries expire between refreshes"
                )
        return self

    def policy(self, operation: str) -> OperationPolicy | None:
        return self.operations.get(operation)
