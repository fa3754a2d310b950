"""The ``[plugins.metrics]`` section of the config file, and the health-grade thresholds."""

from typing import ClassVar, Literal

from llmrelay.core.envsettings import EnvAlias, switch
from llmrelay.core.settings import default_settings
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["LATENCY_BUCKETS", "TTFT_BUCKETS", "AlertThresholds", "GradeThresholds", "MetricsSettings"]

# LLM calls take from a few hundred milliseconds to minutes: buckets are
# dense around 1-10 s, where the health grade's thresholds are, and reach
# five minutes for long generations.
# Floats, as validation would make them: default_settings() uses them as they are.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.1,
    0.25,
    0.5,
    1.0,
    2.0,
    3.0,
    5.0,
    7.5,
    10.0,
    15.0,
    20.0,
    30.0,
    45.0,
    60.0,
    90.0,
    120.0,
    180.0,
    300.0,
)
# Time to first token is shorter: finer below 2 s.
TTFT_BUCKETS: tuple[float, ...] = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0)


# defer_build: each model builds its schema when it first validates (with no
# [plugins.metrics] section, default_settings() stands in and it never does).
_STRICT = ConfigDict(extra="forbid", validate_default=True, frozen=True, defer_build=True)


class GradeThresholds(BaseModel):
    """A-F health grade. Defaults from the original reports.

    Latency (the ``latency_percentile`` of non-streamed calls; time to first
    token for streams) under ``latency_seconds[0]`` / ``[1]`` / ``[2]`` is
    A / B / C, above is D. Error rate under ``error_rate[0]`` / ``[1]`` /
    ``[2]`` is A / B / C, above is D, and at or above ``failing_error_rate``
    it is F, as is an open circuit breaker. The grade is the worse of the two.
    """

    model_config = _STRICT

    latency_seconds: tuple[float, float, float] = (2.0, 3.0, 5.0)
    error_rate: tuple[float, float, float] = (0.01, 0.05, 0.15)
    failing_error_rate: float = Field(default=0.5, gt=0, le=1)
    latency_percentile: Literal["p50", "p90", "p99"] = "p90"
    min_requests: int = Field(default=1, ge=1, description="calls a series needs before it is graded")
    low_cache_hit_rate: float = Field(default=0.5, ge=0, le=1, description="below this, recommend caching")

    @field_validator("latency_seconds", "error_rate")
    @classmethod
    def _ascending(cls, value: tuple[float, float, float]) -> tuple[float, float, float]:
        if not (0 < value[0] < value[1] < value[2]):
            raise ValueError("needs three positive, strictly increasing values (A, B, C limits)")
        return value

    @model_validator(mode="after")
    def _failing_above_c(self) -> "GradeThresholds":
        if self.failing_error_rate <= self.error_rate[2]:
            raise ValueError("failing_error_rate must be above the C limit of error_rate")
        return self


class AlertThresholds(BaseModel):
    """Alert levels, from the original reports' alerting thresholds; ``false`` (``None``) switches an alert off.

    Judged per series (provider, model, operation) with at least
    ``min_requests`` calls: **critical** when its average latency over the
    rolling window (time to first token for streams, as the grade does) is
    above ``critical_latency_seconds``; **warning** when its error rate since
    the last reset is above ``warning_error_rate``; **info** when its cache
    hit rate (hits and stale answers over lookups, series the cache saw only)
    is below ``info_cache_hit_rate``.
    """

    model_config = _STRICT

    critical_latency_seconds: float | None = Field(default=5.0, gt=0, description="critical above this average")
    warning_error_rate: float | None = Field(default=0.05, ge=0, lt=1, description="warning above this error rate")
    info_cache_hit_rate: float | None = Field(default=0.2, gt=0, le=1, description="info below this cache hit rate")
    min_requests: int = Field(default=1, ge=1, description="calls a series needs before it can alert")

    @field_validator("critical_latency_seconds", "warning_error_rate", "info_cache_hit_rate", mode="before")
    @classmethod
    def _false_is_off(cls, value: object) -> object:
        # TOML has no null: `warning_error_rate = false` is how a config file switches an alert off.
        if value is False:
            return None
        if value is True:
            raise ValueError("a threshold, or false to switch this alert off")
        return value


class MetricsSettings(BaseModel):
    """Metrics settings. The first provider created under a name sets its collector's window and buckets."""

    model_config = _STRICT
    # The original reports' switch for the whole plugin (README, "Environment variables").
    env_aliases: ClassVar[tuple[EnvAlias, ...]] = (EnvAlias("PERFORMANCE_MONITORING_ENABLED", ("enabled",), switch),)

    window_size: int = Field(default=1000, ge=10, le=1_000_000, description="latency samples kept per series")
    window_seconds: float | None = Field(default=300.0, gt=0, description="samples older than this are ignored")
    latency_buckets: tuple[float, ...] = LATENCY_BUCKETS
    ttft_buckets: tuple[float, ...] = TTFT_BUCKETS
    grade: GradeThresholds = default_settings(GradeThresholds)
    alerts: AlertThresholds = default_settings(AlertThresholds)
    log_level: Literal["DEBUG", "INFO", "WARNING", "OFF"] = Field(
        default="DEBUG", description="level of the per-call log event on logger llmrelay.metrics"
    )
    snapshot_path: str | None = Field(
        default=None, description="write the process's metrics here as JSON ({pid} is replaced), for `llmrelay metrics`"
    )
    snapshot_interval: float = Field(default=10.0, gt=0, description="seconds between snapshot writes")

    @field_validator("latency_buckets", "ttft_buckets")
    @classmethod
    def _buckets(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not value or any(b <= 0 for b in value) or list(value) != sorted(set(value)):
            raise ValueError("buckets must be positive, strictly increasing upper bounds in seconds")
        return value
