"""The A-F health grade and concrete recommendations, from a metrics snapshot.

Each series (provider, model, operation) with enough calls gets a grade:
the worse of its latency letter and its error-rate letter (thresholds in
:class:`~.settings.GradeThresholds`); an open circuit breaker is an F.
A provider's grade is the worst of its series' and the overall grade the
worst of all. Recommendations name the series, the figure that triggered
them and what to change.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from .settings import GradeThresholds

if TYPE_CHECKING:  # a snapshot grades itself (MetricsSnapshot.grade): grading only reads one
    from .snapshot import BreakerSnapshot, MetricsSnapshot, SeriesSnapshot

__all__ = ["GRADES", "HealthReport", "SeriesGrade", "grade"]

GRADES = "ABCDF"

_STREAM = "stream_execute"
_MODELS = "list_models"


class SeriesGrade(BaseModel):
    model_config = ConfigDict(defer_build=True)

    provider: str
    model: str | None
    operation: str
    grade: str
    latency_seconds: float | None  # the graded latency (TTFT for streams)
    error_rate: float
    reasons: list[str] = Field(default_factory=list)


class HealthReport(BaseModel):
    """``grade`` is ``None`` when no series had enough calls to grade."""

    model_config = ConfigDict(defer_build=True)

    grade: str | None
    providers: dict[str, str] = Field(default_factory=dict)
    series: list[SeriesGrade] = Field(default_factory=list)
    recommendations: list[str] = Field(default_factory=list)

    def text(self, *, with_recommendations: bool = True) -> str:
        """A short human-readable report (``llmrelay metrics --format grade`` prints it, then the insights)."""
        lines = [f"overall grade: {self.grade or 'n/a (no calls yet)'}"]
        for provider, letter in sorted(self.providers.items()):
            lines.append(f"  {provider}: {letter}")
        for item in self.series:
            latency = "n/a" if item.latency_seconds is None else f"{item.latency_seconds:.2f}s"
            label = f"{item.provider} {item.model or '-'} {item.operation}"
            why = f" ({'; '.join(item.reasons)})" if item.reasons else ""
            lines.append(f"    {item.grade} {label}: latency {latency}, errors {item.error_rate:.1%}{why}")
        if with_recommendations and self.recommendations:
            lines.append("recommendations:")
            lines += [f"  - {text}" for text in self.recommendations]
        return "\n".join(lines)


def _letter(value: float, limits: tuple[float, float, float]) -> str:
    for letter, limit in zip("ABC", limits, strict=True):
        if value < limit:
            return letter
    return "D"


def _worst(letters: list[str]) -> str:
    return max(letters, key=GRADES.index)


def _label(series: SeriesSnapshot) -> str:
    return f"{series.provider}/{series.model}" if series.model else series.provider


def grade(snapshot: MetricsSnapshot, thresholds: GradeThresholds | None = None) -> HealthReport:
    limits = thresholds or GradeThresholds()
    open_breakers = {b.provider: b for b in snapshot.breakers if b.state == "open"}
    graded: list[SeriesGrade] = []
    for series in snapshot.series:
        if series.requests < limits.min_requests:
            continue
        reasons = []
        quantiles = series.ttft if series.operation == _STREAM else series.latency
        latency = quantiles.get(limits.latency_percentile)
        letters = []
        if latency is not None:
            letter = _letter(latency, limits.latency_seconds)
            letters.append(letter)
            if letter != "A":
                what = "time to first token" if series.operation == _STREAM else "latency"
                reasons.append(f"{limits.latency_percentile} {what} {latency:.2f}s")
        rate = series.error_rate
        if rate >= limits.failing_error_rate:
            letters.append("F")
        else:
            letters.append(_letter(rate, limits.error_rate))
        if rate >= limits.error_rate[0]:
            reasons.append(f"error rate {rate:.1%}")
        breaker = open_breakers.get(series.provider)
        if breaker is not None and (breaker.model is None or breaker.model == series.model):
            letters.append("F")
            reasons.append(f"circuit breaker {breaker.breaker} open")
        graded.append(
            SeriesGrade(
                provider=series.provider,
                model=series.model,
                operation=series.operation,
                grade=_worst(letters),
                latency_seconds=latency,
                error_rate=rate,
                reasons=reasons,
            )
        )
    providers: dict[str, str] = {}
    for item in graded:
        providers[item.provider] = _worst([providers.get(item.provider, "A"), item.grade])
    for provider in open_breakers:
        providers[provider] = "F"
    overall = _worst(list(providers.values())) if providers else None
    return HealthReport(grade=overall, providers=providers, series=graded, recommendations=recommend(snapshot, limits))


def recommend(snapshot: MetricsSnapshot, limits: GradeThresholds) -> list[str]:
    """Concrete advice, most important first."""
    advice = [_open_breaker_advice(b) for b in snapshot.breakers if b.state == "open"]
    for series in snapshot.series:
        if series.requests < limits.min_requests:
            continue
        label = f"{_label(series)} {series.operation}"
        advice += _error_advice(series, label, limits)
        advice += _retry_advice(series, label)
        advice += _cache_advice(series, label, limits)
        advice += _latency_advice(series, label, limits)
    return advice


def _open_breaker_advice(breaker: BreakerSnapshot) -> str:
    why = f" ({breaker.last_reason})" if breaker.last_reason else ""
    return (
        f"circuit breaker {breaker.breaker} is open{why}: calls fail fast with CircuitOpenError; "
        "add a fallback provider or model, and check the upstream's status page"
    )


def _error_advice(series: SeriesSnapshot, label: str, limits: GradeThresholds) -> Iterator[str]:
    """What the failures of one series point at, by error type."""
    errors = series.errors_by_type
    n = series.requests
    # Refused calls are worth a word at any rate; transient ones only once they are frequent.
    frequent = limits.error_rate[0]
    if errors.get("AuthenticationError"):
        yield (
            f"{label}: {errors['AuthenticationError']} of {n} calls were refused for the API key (401): "
            "check the key (`llmrelay validate`)"
        )
    if errors.get("PaymentRequiredError"):
        yield (
            f"{label}: {errors['PaymentRequiredError']} calls failed for lack of credits (402): "
            "add credits or raise the key's limit"
        )
    bad = errors.get("BadRequestError", 0) + errors.get("ModelNotFoundError", 0) + errors.get("NotFoundError", 0)
    if bad:
        yield f"{label}: {bad} calls were rejected as invalid (400/404/422): check the model id and request parameters"
    limited = errors.get("RateLimitError", 0)
    if limited and limited / n >= frequent:
        yield (
            f"{label}: {limited / n:.0%} of calls were rate limited (429): lower concurrency, "
            "enable the cache for repeated requests, or raise the key's rate limit"
        )
    timeouts = errors.get("APITimeoutError", 0)
    if timeouts and timeouts / n >= frequent:
        yield (
            f"{label}: {timeouts} of {n} calls timed out: raise timeout.read for {series.provider}, "
            "lower max_tokens, or use stream_execute"
        )
    upstream = (
        errors.get("ServerError", 0) + errors.get("APIConnectionError", 0) + errors.get("StreamInterruptedError", 0)
    )
    if upstream and upstream / n >= frequent:
        yield (
            f"{label}: {upstream / n:.0%} of calls failed upstream (5xx / connection): "
            "configure a fallback model or provider"
        )


def _retry_advice(series: SeriesSnapshot, label: str) -> Iterator[str]:
    if series.breaker_rejections:
        yield f"{label}: {series.breaker_rejections} calls were rejected by the open circuit breaker"
    if series.retries and series.retries / series.requests >= 0.1:
        yield (
            f"{label}: {series.retries} retries for {series.requests} calls: "
            "the upstream is flaky; consider another provider route"
        )


def _cache_advice(series: SeriesSnapshot, label: str, limits: GradeThresholds) -> Iterator[str]:
    hit_rate = series.cache_hit_rate
    if series.operation == _MODELS and series.requests >= 3:
        if hit_rate is None:
            yield (
                f"{series.provider} list_models was called {series.requests} times and never served from cache: "
                "enable the cache plugin for it ([plugins.cache] enabled = true)"
            )
        elif hit_rate < limits.low_cache_hit_rate:
            yield (
                f"{series.provider} list_models cache hit rate is {hit_rate:.0%} "
                f"over {series.cache_lookups} lookups: "
                "raise the cache TTL for model listings"
            )
    elif hit_rate is not None and series.cache_lookups >= 10 and hit_rate < 0.05 and series.operation != _STREAM:
        yield (
            f"{label}: cache hit rate {hit_rate:.0%} over {series.cache_lookups} lookups: "
            "these requests rarely repeat; turn caching off for them to save memory"
        )


def _latency_advice(series: SeriesSnapshot, label: str, limits: GradeThresholds) -> Iterator[str]:
    op = series.operation
    if op == _STREAM:
        ttft = series.ttft.get(limits.latency_percentile)
        if ttft is not None and ttft >= limits.latency_seconds[1]:
            yield (
                f"{_label(series)} streams: {limits.latency_percentile} time to first token is {ttft:.1f}s: "
                "shorten the prompt or pick a faster model or provider route"
            )
        return
    latency = series.latency.get(limits.latency_percentile)
    if latency is not None and latency >= limits.latency_seconds[1]:
        hint = (
            "use stream_execute to show the first tokens sooner, lower max_tokens, or pick a faster model"
            if op == "execute"
            else "cache the result or call it less often"
        )
        yield f"{label}: {limits.latency_percentile} latency is {latency:.1f}s: {hint}"
