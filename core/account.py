"""The account: credits, generation stats, and what ``validate_config`` found."""

from decimal import Decimal
from typing import Literal

from pydantic import Field

from .models import ResponseMeta, _Model

__all__ = ["Credits", "GenerationStats", "Outcome", "ValidationReport"]


class Credits(_Model):
    total_credits: Decimal
    total_usage: Decimal
    provider: str | None = None
    meta: ResponseMeta = Field(default_factory=ResponseMeta)

    @property
    def remaining(self) -> Decimal:
        return self.total_credits - self.total_usage


class GenerationStats(_Model):
    """Stats of one finished generation (OpenRouter ``/generation``)."""

    id: str
    model: str | None = None
    provider_name: str | None = None
    total_cost: Decimal | None = None
    tokens_prompt: int | None = None
    tokens_completion: int | None = None
    native_tokens_prompt: int | None = None
    native_tokens_completion: int | None = None
    native_tokens_reasoning: int | None = None
    native_tokens_cached: int | None = None
    latency: float | None = None
    generation_time: float | None = None
    finish_reason: str | None = None
    native_finish_reason: str | None = None
    streamed: bool | None = None
    cancelled: bool | None = None
    created_at: str | None = None
    meta: ResponseMeta = Field(default_factory=ResponseMeta)


Outcome = Literal["valid", "config_error", "invalid_key", "no_credits", "unreachable", "error"]


class ValidationReport(_Model):
    """What ``validate_config`` found. ``ok`` is True only for ``outcome == "valid"``."""

    provider: str
    outcome: Outcome
    message: str
    problems: list[str] = Field(default_factory=list)
    key_label: str | None = None
    limit: Decimal | None = None
    limit_remaining: Decimal | None = None
    usage: Decimal | None = None
    is_free_tier: bool | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == "valid"
