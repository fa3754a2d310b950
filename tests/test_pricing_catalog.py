"""The catalog's pricing rules: categories, markup on prices, and calculate_cost."""

from __future__ import annotations

from decimal import Decimal

import pytest
from llmrelay.core.catalog import ModelInfo, ModelList, Pricing, price_category
from llmrelay.core.errors import ConfigurationError
from llmrelay.providers.openrouter_models import load_fallback_models, parse_model_list
from llmrelay.providers.pricing import UnknownPriceError, calculate_cost

from tests.support.openrouter_service import sample

M = Decimal(1_000_000)


def per_million(prompt: str, completion: str) -> Pricing:
    return Pricing(prompt=Decimal(prompt) / M, completion=Decimal(completion) / M)


@pytest.mark.parametrize(
    ("prompt", "completion", "category"),
    [
        ("0", "0", "Budget"),  # free models are Budget in the reports' rule
        ("0.15", "0.6", "Budget"),  # mean 0.375
        ("0.5", "1.49", "Budget"),  # mean 0.995
        ("0.5", "1.5", "Standard"),  # mean exactly 1: the bound belongs to the tier above
        ("3", "6.99", "Standard"),
        ("3", "15", "Fast"),  # mean 9
        ("5", "15", "Premium"),  # mean 10
        ("15", "75", "Premium"),  # mean 45
        ("60", "240", "Reasoning"),  # mean 150
        ("-1", "-1", "Unknown"),  # OpenRouter's "variable" price
    ],
)
def test_category_is_the_reports_mean_price_tier(prompt: str, completion: str, category: str) -> None:
    pricing = per_million(prompt, completion)
    assert price_category(pricing) == category
    assert ModelInfo(id="a/b", pricing=pricing).category == category


def test_category_of_real_models_and_a_missing_price() -> None:
    models = load_fallback_models()
    assert models.get("openai/gpt-4o-mini").category == "Budget"  # type: ignore[union-attr]  # listed
    assert models.get("anthropic/claude-sonnet-4").category == "Fast"  # type: ignore[union-attr]  # $3 / $15
    assert models.get("openrouter/auto").category == "Unknown"  # type: ignore[union-attr]  # "-1"
    assert ModelInfo(id="no/prices").category == "Unknown"


def test_scaled_multiplies_every_known_price_once_and_keeps_the_rest() -> None:
    raw = sample("models_2026.json")
    models, _ = parse_model_list(raw, provider="openrouter")
    sonnet = next(m for m in models if m.id == "anthropic/claude-sonnet-4").pricing
    marked = sonnet.scaled(Decimal("1.3"))
    assert marked.prompt == Decimal("0.0000039") and marked.completion == Decimal("0.0000195")
    assert marked.web_search == Decimal("0.013") and marked.input_cache_read == Decimal("0.00000039")
    extra = marked.model_extra or {}
    assert extra["input_cache_write_1h"] == "0.0000078"  # a price llmrelay has no field for
    assert extra["overrides"][0]["prompt"] == "0.0000078" and extra["overrides"][0]["min_prompt_tokens"] == 200000
    assert sonnet.prompt == Decimal("0.000003")  # the original is unchanged
    variable = Pricing(prompt="-1", completion="-1", discount=0.25)
    assert variable.scaled(Decimal(2)).prompt == Decimal(-1)  # unknown stays unknown
    assert (variable.scaled(Decimal(2)).model_extra or {})["discount"] == 0.25  # a fraction, not a price
    assert sonnet.scaled(Decimal(1)) is sonnet


def test_with_markup_never_compounds_and_keeps_the_service_prices() -> None:
    listing = load_fallback_models()
    marked = listing.with_markup(Decimal("1.3"))
    mini = marked.get("openai/gpt-4o-mini")
    assert mini is not None and marked.markup == Decimal("1.3")
    assert mini.pricing.prompt_per_million == Decimal("0.195") and mini.base_pricing is not None
    assert mini.base_pricing.prompt_per_million == Decimal("0.15")
    again = marked.with_markup(Decimal("1.3"))
    assert again.get("openai/gpt-4o-mini").pricing.prompt_per_million == Decimal("0.195")  # type: ignore[union-attr]  # listed
    other = marked.with_markup(Decimal("2"))
    assert other.get("openai/gpt-4o-mini").pricing.prompt_per_million == Decimal("0.30")  # type: ignore[union-attr]  # listed
    back = marked.with_markup(Decimal(1))
    plain = back.get("openai/gpt-4o-mini")
    assert plain is not None and plain.base_pricing is None and plain.pricing.prompt_per_million == Decimal("0.15")
    assert listing.get("openai/gpt-4o-mini").base_pricing is None  # type: ignore[union-attr]  # the source list is untouched


def test_calculate_cost_from_the_catalog_with_the_reports_markup() -> None:
    catalog = load_fallback_models()
    # gpt-4o-mini: $0.15 / $0.60 per million. (1000 x 0.15 + 500 x 0.60) / 1e6 = 0.00045, x 1.3
    cost = calculate_cost("openai/gpt-4o-mini", 1000, 500, markup_rate=1.3, catalog=catalog)
    assert cost == Decimal("0.000585") and isinstance(cost, Decimal)
    assert calculate_cost("openai/gpt-4o-mini", 1000, 500, catalog=catalog) == Decimal("0.00045")
    # The catalog's own markup is the default, and an explicit one replaces it (never 1.3 x 1.3).
    marked = catalog.with_markup(Decimal("1.3"))
    assert calculate_cost("openai/gpt-4o-mini", 1000, 500, catalog=marked) == Decimal("0.000585")
    assert calculate_cost("openai/gpt-4o-mini", 1000, 500, "1", catalog=marked) == Decimal("0.00045")
    free = next(m.id for m in catalog if m.pricing.is_free)
    assert calculate_cost(free, 10_000, 10_000, markup_rate=1.3, catalog=catalog) == 0


def test_calculate_cost_includes_a_per_request_price() -> None:
    model = ModelInfo(id="x/y", pricing=Pricing(prompt="0.000001", completion="0.000002", request="0.005"))
    assert calculate_cost("x/y", 1000, 1000, catalog=ModelList(models=[model])) == Decimal("0.008")


def test_calculate_cost_refuses_what_it_cannot_price() -> None:
    catalog = load_fallback_models()
    with pytest.raises(UnknownPriceError, match="did you mean 'openai/gpt-4o-mini'") as unknown:
        calculate_cost("openai/gpt-4o-mni", 1, 1, catalog=catalog)
    assert unknown.value.reason == "not listed" and unknown.value.suggestion == "openai/gpt-4o-mini"
    assert isinstance(unknown.value, LookupError)
    with pytest.raises(UnknownPriceError, match="variable") as variable:
        calculate_cost("openrouter/auto", 1, 1, catalog=catalog)
    assert variable.value.reason == "variable"
    with pytest.raises(ConfigurationError, match="input_tokens"):
        calculate_cost("openai/gpt-4o-mini", -1, 1, catalog=catalog)
    with pytest.raises(ConfigurationError, match="output_tokens"):
        calculate_cost("openai/gpt-4o-mini", 1, True, catalog=catalog)  # type: ignore[arg-type]  # the mistake tested
    with pytest.raises(ConfigurationError, match="markup_rate"):
        calculate_cost("openai/gpt-4o-mini", 1, 1, markup_rate=0, catalog=catalog)
