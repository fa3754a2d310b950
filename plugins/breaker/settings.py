"""The ``[plugins.breaker]`` section of the config file.

Defaults follow the original reports (5 consecutive failures open the
circuit, 60 s before a probe) plus a failure-rate rule in the manner of
resilience4j: over the last ``window_size`` calls, once ``minimum_calls``
have been seen, a failure rate at or above ``failure_rate_threshold`` opens
it too, which catches a flapping upstream that never fails five times in a
row.
"""

from typing import ClassVar

from llmrelay.core.envsettings import EnvAlias
from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["BreakerSettings"]


class BreakerSettings(BaseModel):
    """Circuit-breaker settings, shared by every breaker of one provider."""

    # defer_build: with no [plugins.breaker] section, default_settings()
    # stands in and this schema is never built.
    model_config = ConfigDict(extra="forbid", validate_default=True, frozen=True, defer_build=True)
    # The original reports' variable (README, "Environment variables").
    env_aliases: ClassVar[tuple[EnvAlias, ...]] = (EnvAlias("CIRCUIT_BREAKER_THRESHOLD", ("failure_threshold",)),)

    failure_threshold: int = Field(default=5, ge=1, description="consecutive failures that open the circuit")
    reset_timeout: float = Field(default=60.0, gt=0, description="seconds open before probes are let through")
    failure_rate_threshold: float | None = Field(
        default=0.5, gt=0, le=1, description="failure rate over the window that opens it; null turns the rule off"
    )
    window_size: int = Field(default=20, ge=1, description="calls in the sliding window for the failure rate")
    minimum_calls: int = Field(default=10, ge=1, description="calls in the window before the rate rule applies")
    half_open_probes: int = Field(default=1, ge=1, description="probe calls admitted while half-open")
    count_rate_limits: bool = Field(default=True, description="whether 429 responses count as failures")
    per_model: bool = Field(default=False, description="one breaker per model instead of one per provider")
    redis_url: str | None = Field(default=None, description="share breaker state through this Redis")
    redis_prefix: str = Field(default="llmrelay:breaker", min_length=1)
    redis_sync_interval: float = Field(default=1.0, gt=0, description="seconds between reads of the shared state")
    redis_retry_interval: float = Field(default=30.0, gt=0, description="seconds before retrying an unreachable Redis")

    @model_validator(mode="after")
    def _window_holds_minimum(self) -> "BreakerSettings":
        if self.minimum_calls > self.window_size:
            raise ValueError(
                f"minimum_calls ({self.minimum_calls}) cannot exceed window_size ({self.window_size}); "
                "raise window_size or lower minimum_calls"
            )
        if self.redis_url is not None and not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("redis_url must start with redis://, rediss:// or unix://")
        return self
