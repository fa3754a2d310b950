"""One markup, configured once in [plugins.pricing], on every price and cost shown, and only once.

The provider is the real OpenRouter provider answering from recorded bodies
(tests/support/openrouter_service.py), built by create_provider with the
installed plugins, so the cache and the metrics sit where they always do.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from llmrelay.core import CallOptions, LayeredProvider, PluginRegistry, create_provider
from llmrelay.core.cli.main import EXIT_OK, main
from llmrelay.providers.pricing import PricingService, configured_markup

from tests.support.openrouter_service import KEY, OpenRouterService

MARKUP = Decimal("1.3")
CHAT = {"model": "openai/gpt-5-mini", "messages": [{"role": "user", "content": "hi"}]}
SERVICE_COST = Decimal("0.00435825")  # usage.cost of the recorded chat body
STREAM_COST = Decimal("0.00333825")  # usage.cost of the recorded stream's usage chunk


def build(service: OpenRouterService, instance: str, *, markup: str | None = "1.3", **cache: Any) -> LayeredProvider:
    """``instance``: its own metrics series and, with ``cache["namespace"]``, its own cache entries."""
    config: dict[str, Any] = {
        "providers": {instance: {"type": "openrouter", "retry": {"max_attempts": 1}}},
        "plugins": {"cache": {"background": False, "warm_up": [], "namespace": instance, **cache}},
    }
    if markup is not None:
        config["plugins"]["pricing"] = {"markup": markup}
    provider = create_provider(instance, api_key=KEY, config=config, transport=service.transport())
    assert isinstance(provider, LayeredProvider)
    return provider


def test_model_prices_carry_the_markup_once_and_the_cache_keeps_the_service_prices() -> None:
    service = OpenRouterService()
    with build(service, "priced-list") as provider:
        first = provider.list_models()
        hit = provider.list_models()
    assert hit.meta.cache == "hit" and service.requests["/models"] == 1
    for listing in (first, hit):
        sonnet = listing.get("anthropic/claude-sonnet-4")
        assert sonnet is not None and listing.markup == MARKUP
        assert sonnet.pricing.prompt_per_million == Decimal("3.9")  # $3 x 1.3, not x 1.69 on the hit
        assert sonnet.base_pricing is not None and sonnet.base_pricing.prompt_per_million == Decimal(3)
        assert sonnet.category == "Fast"  # from the service's $3 / $15
    # Another provider on the same shared cache entry, without a markup: the entry holds the service's prices.
    with build(service, "priced-list", markup=None) as plain:
        stored = plain.list_models()
    assert stored.meta.cache == "hit" and service.requests["/models"] == 1
    assert stored.markup == 1 and stored.get("anthropic/claude-sonnet-4").pricing.prompt == Decimal("0.000003")  # type: ignore[union-attr]  # listed


def test_chat_and_stream_costs_carry_the_markup_once_and_metrics_count_the_service_cost() -> None:
    service = OpenRouterService()
    with build(service, "priced-chat") as provider:
        reply = provider.execute(CHAT)
        cached = [provider.execute(CHAT, options=CallOptions(cache=True)) for _ in range(2)]
        with provider.stream_execute(CHAT) as stream:
            usage_chunks = [chunk.usage for chunk in stream if chunk.usage is not None]
        metrics = provider.layer("metrics")
        assert metrics is not None
        counted = metrics.collector.snapshot().for_provider("priced-chat").totals.cost  # type: ignore[attr-defined]  # the metrics layer
    assert cached[1].meta.cache == "hit" and service.requests["/chat/completions"] == 3
    for response in (reply, *cached):
        assert response.usage is not None
        assert response.usage.cost == SERVICE_COST * MARKUP and response.usage.base_cost == SERVICE_COST
    assert [u.cost for u in usage_chunks] == [STREAM_COST * MARKUP]  # the chunk the caller saw
    assert stream.usage is not None and stream.usage.cost == STREAM_COST * MARKUP
    assert stream.usage.base_cost == STREAM_COST and stream.completed
    # Metrics sit inside the pricing layer: they add up what the service charged.
    assert counted == 3 * SERVICE_COST + STREAM_COST


def test_a_cached_stream_replays_with_the_markup_once() -> None:
    service = OpenRouterService()
    with build(service, "priced-stream") as provider:
        costs = []
        for _ in range(2):
            stream = provider.stream_execute(CHAT, options=CallOptions(cache=True))
            response = stream.final_response()
            assert response.usage is not None
            costs.append((response.usage.cost, stream.meta.cache))
    assert costs == [(STREAM_COST * MARKUP, "miss"), (STREAM_COST * MARKUP, "hit")]
    assert service.requests["/chat/completions"] == 1


def test_pricing_service_uses_the_configured_markup_and_never_stacks_another() -> None:
    service = OpenRouterService()
    with build(service, "priced-service") as provider:
        assert configured_markup(provider) == MARKUP and configured_markup(provider.inner) == 1
        pricing = PricingService(provider)
        assert pricing.markup == MARKUP
        sonnet = pricing.per_million(["anthropic/claude-sonnet-4"])["anthropic/claude-sonnet-4"]
        assert (sonnet.prompt_per_million, sonnet.completion_per_million) == (Decimal("3.9"), Decimal("19.5"))
        base = pricing.per_million(["anthropic/claude-sonnet-4"], with_markup=False)["anthropic/claude-sonnet-4"]
        assert base.prompt_per_million == Decimal(3) and base.markup == 1
        # (1000 x $3 + 1000 x $15) / 1e6 = 0.018, x 1.3
        assert pricing.calculate_cost("anthropic/claude-sonnet-4", 1000, 1000) == Decimal("0.0234")
        reply = provider.execute(CHAT)
        assert pricing.cost_of(reply).total == reply.cost  # the reported cost, marked up once
        doubled = PricingService(provider, markup=2)  # replaces the configured markup for its own figures
        assert doubled.per_million(["anthropic/claude-sonnet-4"])["anthropic/claude-sonnet-4"].prompt_per_million == 6
        assert doubled.cost_of(reply).total == SERVICE_COST * 2
        assert doubled.calculate_cost("anthropic/claude-sonnet-4", 1000, 1000, markup_rate="1") == Decimal("0.018")


def test_without_a_markup_the_plugin_adds_no_layer() -> None:
    with build(OpenRouterService(), "unpriced", markup=None) as provider:
        assert provider.layer("pricing") is None
        assert [layer.name for layer in provider.layers] == ["metrics", "cache", "breaker"]
    with build(OpenRouterService(), "priced-order") as provider:
        assert [layer.name for layer in provider.layers] == ["pricing", "metrics", "cache", "breaker"]


@pytest.mark.parametrize("bad", [0, -1.3, "a lot", "inf"])
def test_a_bad_markup_is_a_configuration_error_naming_the_field(bad: Any) -> None:
    from llmrelay.core.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match=r"plugins\.pricing\.markup"):
        build(OpenRouterService(), "priced-bad", markup=bad)


def test_the_models_command_shows_marked_up_prices_from_the_config_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from llmrelay.plugins.pricing import hooks

    from tests.support import fake_provider

    registry = PluginRegistry(load_entry_points=False)
    registry.register(fake_provider, name="fake")
    registry.register(hooks, name="pricing")
    config = tmp_path / "llmrelay.toml"
    config.write_text("[plugins.pricing]\nmarkup = 1.3\n")
    assert main(["--config", str(config), "--provider", "fake", "models"], registry=registry) == EXIT_OK
    out = capsys.readouterr().out
    small = next(line for line in out.splitlines() if line.startswith("fake/small"))
    assert small.split()[-3:] == ["Standard", "$1.30", "$2.60"]  # the fake's $1 / $2, x 1.3; tier from $1 / $2
    assert "with a 1.3x markup" in out
    assert main(["--config", str(config), "--provider", "fake", "models", "small", "--json"], registry=registry) == 0
    data = json.loads(capsys.readouterr().out)
    row = data["models"][0]
    assert data["markup"] == "1.3" and row["category"] == "Standard"
    assert (row["prompt_per_million"], row["base_prompt_per_million"]) == ("1.3", "1")
