"""The shipped model list as a last resort: opt-in, flagged, and never preferred to a list the cache holds.

``fallback_catalog`` is a provider setting. Called bare, the provider falls
back itself; built by create_provider, the pricing layer (outside the cache
and the breaker) does it, so a cached list, even a stale one within
``stale_if_error``, answers first, and an open breaker still gets the list.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from llmrelay.core import LayerContext, LayeredProvider, create_provider
from llmrelay.core.errors import APIConnectionError, AuthenticationError
from llmrelay.core.http.transport import MockTransport
from llmrelay.plugins import pricing as pricing_plugin
from llmrelay.plugins.cache import CacheSettings
from llmrelay.plugins.cache.keys import KeyBuilder
from llmrelay.plugins.cache.layer import CacheLayer
from llmrelay.providers.openrouter import OpenRouterProvider
from llmrelay.providers.pricing import PricingService

from tests.support.clock import FakeClock
from tests.support.openrouter_service import KEY, OpenRouterService, json_reply

LIVE_IDS = ["anthropic/claude-sonnet-4", "openai/gpt-4.1-mini", "openai/gpt-4o", "openai/gpt-3.5-turbo"]


def bare(service: OpenRouterService, **settings: Any) -> OpenRouterProvider:
    return OpenRouterProvider(api_key=KEY, transport=service.transport(), retry={"max_attempts": 1}, **settings)


def layered(service: OpenRouterService, instance: str, **plugins: Any) -> LayeredProvider:
    config = {
        "providers": {instance: {"type": "openrouter", "retry": {"max_attempts": 1}, "fallback_catalog": True}},
        "plugins": {"cache": {"background": False, "warm_up": [], "namespace": instance}, **plugins},
    }
    provider = create_provider(instance, api_key=KEY, config=config, transport=service.transport())
    assert isinstance(provider, LayeredProvider)
    return provider


def test_a_bare_provider_falls_back_only_when_asked_and_only_for_availability() -> None:
    service = OpenRouterService()
    service.down = True
    with pytest.raises(APIConnectionError):
        bare(service).list_models()  # off by default
    listing = bare(service, fallback_catalog=True).list_models()
    assert listing.fallback and len(listing) > 250 and listing.get("openai/gpt-4o-mini") is not None
    rejected = MockTransport(
        lambda r: json_reply(401, {"error": {"code": 401, "message": "No auth credentials found"}})
    )
    with pytest.raises(AuthenticationError):  # a bad key is never papered over
        OpenRouterProvider(api_key=KEY, transport=rejected, fallback_catalog=True).list_models()
    service.down = False
    assert bare(service, fallback_catalog=True).list_models().ids == LIVE_IDS


def test_the_setting_comes_from_the_environment_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENROUTER_FALLBACK_CATALOG", "true")
    service = OpenRouterService()
    service.down = True
    with create_provider(
        "openrouter", api_key=KEY, plugins=False, transport=service.transport(), retry={"max_attempts": 1}
    ) as provider:
        assert provider.list_models().fallback


def test_through_the_layers_a_cached_list_answers_before_the_shipped_one() -> None:
    service = OpenRouterService()
    with layered(service, "fallback-cached") as provider:
        assert provider.layer("pricing") is not None  # built for the fallback alone, markup 1
        fresh = provider.list_models()
        service.down = True
        cached = provider.list_models()
    assert not cached.fallback and cached.meta.cache == "hit" and cached.ids == fresh.ids == LIVE_IDS


def test_through_the_layers_nothing_cached_gives_the_shipped_list_with_the_markup() -> None:
    service = OpenRouterService()
    service.down = True
    with layered(service, "fallback-empty", pricing={"markup": "1.3"}) as provider:
        listing = provider.list_models()
        again = provider.list_models()
    assert listing.fallback and again.fallback and len(listing) > 250
    assert service.requests["/models"] == 2  # the shipped list is never cached: the service is asked again
    mini = listing.get("openai/gpt-4o-mini")
    assert mini is not None and listing.markup == Decimal("1.3")
    assert mini.pricing.prompt_per_million == Decimal("0.195") and mini.service_pricing.prompt_per_million == Decimal(
        "0.15"
    )


def test_an_open_breaker_still_gets_the_shipped_list_without_a_request() -> None:
    service = OpenRouterService()
    with layered(service, "fallback-breaker", breaker={"failure_threshold": 1}) as provider:
        service.down = True
        with pytest.raises(APIConnectionError):
            provider.execute({"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}]})
        listing = provider.list_models()  # the breaker is open: CircuitOpenError inside, the list outside
    assert listing.fallback and service.requests["/models"] == 0


def test_an_expired_cached_list_within_stale_if_error_beats_the_shipped_one() -> None:
    service = OpenRouterService()
    inner = bare(service, fallback_catalog=True)
    clock = FakeClock(1000.0)
    settings = CacheSettings.model_validate(
        {
            "background": False,
            "warm_up": [],
            "backend": "none",
            "operations": {
                "list_models": {
                    "l1_ttl": 60,
                    "l2_ttl": 60,
                    "stale_while_revalidate": 0,  # so that an expired entry is served only for an error
                    "stale_if_error": 600,
                    "refresh_every": 30,
                }
            },
        }
    )
    keys = KeyBuilder(namespace="fallback-stale", provider="openrouter", base_url=inner.base_url, api_key=KEY)
    cache = CacheLayer(settings, keys=keys, provider_name="openrouter", clock=clock)
    pricing = pricing_plugin.build_layer(LayerContext(inner, {}, "openrouter", inner.base_url))
    assert pricing is not None
    with LayeredProvider(inner, [pricing, cache]) as provider:
        provider.list_models()
        service.down = True
        clock.advance(120)  # expired, within stale_if_error
        stale = provider.list_models()
        assert service.requests["/models"] == 2  # the service was asked, and failed
        clock.advance(1000)  # past stale_if_error: nothing usable is cached
        shipped = provider.list_models()
    assert not stale.fallback and stale.meta.stale and stale.ids == LIVE_IDS
    assert shipped.fallback and len(shipped) > 250


def test_pricing_service_prefers_its_last_list_to_the_providers_shipped_one() -> None:
    service = OpenRouterService()
    clock = FakeClock()
    prices = PricingService(bare(service, fallback_catalog=True), ttl=60, clock=clock)
    assert prices.models().ids == LIVE_IDS
    service.down = True
    clock.advance(120)
    stale = prices.models()  # the provider answered with its shipped list: the last real one is better
    assert not stale.fallback and stale.meta.stale and stale.ids == LIVE_IDS

    empty = PricingService(bare(service, fallback_catalog=True), ttl=60, clock=clock)
    assert empty.models().fallback
    service.down = False
    assert empty.models().ids == LIVE_IDS  # the shipped list was not kept as if it were fresh
