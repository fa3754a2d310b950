"""The pricing service: costs, markup, per-million display prices, batch, fallback list."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from llmrelay.core.catalog import Pricing
from llmrelay.core.errors import APIConnectionError, AuthenticationError, ConfigurationError
from llmrelay.core.http.transport import HTTPRequest, HTTPResponse, MockTransport
from llmrelay.core.models import ChatResponse, Message, Usage
from llmrelay.providers.openrouter import OpenRouterProvider
from llmrelay.providers.pricing import PricingService, compute_cost, load_fallback_models

SAMPLES = Path(__file__).parent / "data" / "openrouter_samples"
KEY = "sk-or-v1-0123456789abcdef0123456789abcdef0123456789abcdef"


class Switchable:
    """A /models endpoint that can be taken down."""

    def __init__(self, payload: dict) -> None:
        self.payload = payload
        self.error: Exception | None = None
        self.calls = 0

    def __call__(self, request: HTTPRequest) -> HTTPResponse:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return HTTPResponse(200, {"content-type": "application/json"}, json.dumps(self.payload).encode())


def service(payload: dict | None = None, **kw: object) -> tuple[PricingService, Switchable, list[float]]:
    endpoint = Switchable(payload or json.loads((SAMPLES / "models_2026.json").read_text()))
    clock = [0.0]
    provider = OpenRouterProvider(
        api_key=KEY, transport=MockTransport(endpoint), sleep=lambda s: None, retry={"max_attempts": 1}
    )
    return PricingService(provider, clock=lambda: clock[0], **kw), endpoint, clock  # type: ignore[arg-type]


def test_compute_cost_from_usage_and_prices() -> None:
    pricing = Pricing(prompt="0.000003", completion="0.000015", input_cache_read="0.0000003", request="0.001")
    usage = Usage(prompt_tokens=1000, completion_tokens=200, cached_tokens=400)
    # 600 uncached x 3e-6 + 400 cached x 3e-7 + 200 x 1.5e-5 + 0.001 per request
    assert compute_cost(usage, pricing) == Decimal("0.0018") + Decimal("0.00012") + Decimal("0.003") + Decimal("0.001")
    assert compute_cost(usage, Pricing(prompt="-1", completion="-1")) is None


def test_reported_cost_preferred_and_markup_applied() -> None:
    pricing_service, _, _ = service(markup="1.3")
    reported = Usage(prompt_tokens=10, completion_tokens=10, cost=Decimal("0.002"))
    estimate = pricing_service.cost(reported, "anthropic/claude-sonnet-4")
    assert estimate.source == "reported" and estimate.base == Decimal("0.002") and estimate.total == Decimal("0.0026")


def test_computed_cost_when_not_reported() -> None:
    pricing_service, _, _ = service(markup=Decimal("1.3"))
    usage = Usage(prompt_tokens=1_000_000, completion_tokens=0)
    estimate = pricing_service.cost(usage, "anthropic/claude-sonnet-4")
    assert estimate.source == "computed" and estimate.base == Decimal("3") and estimate.total == Decimal("3.9")
    assert pricing_service.cost(usage, "no/such-model").source == "unknown"
    response = ChatResponse(model="anthropic/claude-sonnet-4", message=Message.assistant("x"), usage=usage)
    assert pricing_service.cost_of(response, markup=1).total == Decimal("3")


def test_per_million_batch_in_one_fetch() -> None:
    pricing_service, endpoint, _ = service()
    ids = ["anthropic/claude-sonnet-4", "openai/gpt-4o-mini", "not/listed"]
    prices = pricing_service.per_million(ids)
    assert endpoint.calls == 1
    sonnet = prices["anthropic/claude-sonnet-4"]
    assert sonnet.prompt_per_million == Decimal("3") and sonnet.completion_per_million == Decimal("15")
    assert prices["not/listed"].found is False
    assert set(pricing_service.prices(ids)) == set(ids) and endpoint.calls == 1  # cached


def test_list_is_refreshed_after_ttl() -> None:
    pricing_service, endpoint, clock = service(ttl=60)
    pricing_service.models()
    clock[0] = 59
    pricing_service.models()
    assert endpoint.calls == 1
    clock[0] = 61
    pricing_service.models()
    assert endpoint.calls == 2


def test_fallback_only_when_unreachable_and_nothing_cached() -> None:
    pricing_service, endpoint, clock = service(ttl=10)
    endpoint.error = APIConnectionError("down")
    models = pricing_service.models()
    assert models.fallback and len(models) > 250
    assert pricing_service.per_million(["openrouter/auto"])["openrouter/auto"].fallback
    endpoint.error = None
    fresh = pricing_service.models()  # the fallback is not kept as if it were fresh
    assert not fresh.fallback
    endpoint.error = APIConnectionError("down again")
    clock[0] = 100
    stale = pricing_service.models()
    assert not stale.fallback and stale.meta.stale and stale.ids == fresh.ids


def test_client_errors_are_not_hidden_by_the_fallback() -> None:
    pricing_service, endpoint, _ = service()
    endpoint.error = AuthenticationError("bad key", status=401)
    with pytest.raises(AuthenticationError):
        pricing_service.models()


def test_builtin_fallback_list_is_real_data_with_quirks() -> None:
    models = load_fallback_models()
    assert models.fallback
    auto = models.get("openrouter/auto")
    assert auto is not None and auto.pricing.is_unknown
    assert any(m.pricing.is_free for m in models)
    assert models.get("anthropic/claude-sonnet-4") is not None


def test_markup_must_be_positive() -> None:
    with pytest.raises(ConfigurationError, match="markup"):
        service(markup="-2")
