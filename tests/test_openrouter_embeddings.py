"""OpenRouter's POST /embeddings: the OpenAI-compatible code path, with OpenRouter's id, upstream and cost.

No public recording of an OpenRouter embeddings call with a traceable source
was found (two response bodies quoted in public code, with vectors cut short
by their authors, confirm the shape but not where they came from), so the
response here is built from the documented shape (the OpenRouter OpenAPI
spec's embeddings response, summarised in the team's API notes): OpenAI's
``{"object": "list", "data": [...], "model", "usage"}`` plus ``usage.cost``
(a JSON number), ``provider`` (the upstream) and ``id`` (``gen-emb-...``).
The ``model`` answered is the upstream's name for it, not the slug asked for.
"""

from __future__ import annotations

import base64
import json
import struct
from decimal import Decimal
from typing import Any

import pytest
from llmrelay.core import CallOptions, EmbeddingRequest, create_provider
from llmrelay.core.errors import ConfigurationError, InvalidResponseError, PaymentRequiredError
from llmrelay.core.http.transport import HTTPRequest, HTTPResponse, MockTransport
from llmrelay.providers.openrouter import OpenRouterProvider
from llmrelay.providers.pricing import PricingService

from tests.support.openrouter_service import EMBEDDINGS, KEY, OpenRouterService, json_reply

MODEL = "qwen/qwen3-embedding-8b"


def provider_for(handler: Any, **settings: Any) -> tuple[OpenRouterProvider, MockTransport]:
    transport = MockTransport(handler)
    return OpenRouterProvider(api_key=KEY, transport=transport, retry={"max_attempts": 1}, **settings), transport


def body_of(request: HTTPRequest) -> Any:
    return json.loads(request.body or b"null")


def test_embed_returns_vectors_in_input_order_with_id_upstream_and_cost() -> None:
    provider, transport = provider_for(lambda r: json_reply(200, EMBEDDINGS), app_title="Indexer")
    result = provider.embed({"model": MODEL, "input": ["first", "second"]})
    sent = transport.requests[0]
    assert sent.method == "POST" and sent.url == "https://openrouter.ai/api/v1/embeddings"
    assert body_of(sent) == {"model": MODEL, "input": ["first", "second"]}
    assert sent.headers["Authorization"] == f"Bearer {KEY}" and sent.headers["X-OpenRouter-Title"] == "Indexer"
    assert result.embeddings == [[0.5, 0.75, -0.25], [0.25, -0.5, 0.125]]
    assert result.id == "gen-emb-1750000000-AbCdEfGhIjKlMnOpQrSt"
    assert result.served_by == "Nebius" and result.provider == "openrouter"
    assert result.model == "Qwen/Qwen3-Embedding-8B"
    assert result.usage is not None and result.usage.prompt_tokens == 9 and result.usage.total_tokens == 9
    # The JSON number 1.8e-7 becomes the Decimal it prints as: no binary-float residue.
    assert result.cost == Decimal("0.00000018") and isinstance(result.cost, Decimal)


def test_request_extras_pass_through_and_base64_vectors_are_decoded() -> None:
    packed = base64.b64encode(struct.pack("<3f", 0.5, -1.0, 2.0)).decode()
    reply = {**EMBEDDINGS, "data": [{"object": "embedding", "embedding": packed, "index": 0}]}
    provider, transport = provider_for(lambda r: json_reply(200, reply))
    request = EmbeddingRequest.model_validate(
        {"model": MODEL, "input": "one", "dimensions": 3, "encoding_format": "base64"}
    )
    request.extra_body["provider"] = {"order": ["nebius"], "allow_fallbacks": False}
    result = provider.embed(request)
    assert body_of(transport.requests[0]) == {
        "model": MODEL,
        "input": "one",
        "dimensions": 3,
        "encoding_format": "base64",
        "provider": {"order": ["nebius"], "allow_fallbacks": False},
    }
    assert result.embeddings == [[0.5, -1.0, 2.0]]


def test_the_generation_header_gives_the_id_when_the_body_has_none() -> None:
    reply = {key: value for key, value in EMBEDDINGS.items() if key != "id"}
    provider, _ = provider_for(lambda r: json_reply(200, reply, {"X-Generation-Id": "gen-emb-from-header"}))
    assert provider.embed({"model": MODEL, "input": "x"}).id == "gen-emb-from-header"


def test_errors_are_typed() -> None:
    out_of_credits = {"error": {"code": 402, "message": "Insufficient credits. Add more using https://openrouter.ai"}}
    provider, _ = provider_for(lambda r: json_reply(402, out_of_credits))
    with pytest.raises(PaymentRequiredError, match="Insufficient credits"):
        provider.embed({"model": MODEL, "input": "x"})
    # An error object inside HTTP 200 is the same typed error, not an empty result.
    provider, _ = provider_for(lambda r: json_reply(200, out_of_credits))
    with pytest.raises(PaymentRequiredError):
        provider.embed({"model": MODEL, "input": "x"})
    provider, _ = provider_for(lambda r: json_reply(200, {"data": [{"embedding": "not base64!"}]}))
    with pytest.raises(InvalidResponseError, match="base64"):
        provider.embed({"model": MODEL, "input": "x"})
    provider, transport = provider_for(lambda r: json_reply(200, EMBEDDINGS))
    with pytest.raises(ConfigurationError, match="names no model"):
        provider.embed({"input": "x"})
    assert transport.requests == []


def test_embedding_cost_carries_the_configured_markup_once_even_from_the_cache() -> None:
    service = OpenRouterService({"/embeddings": EMBEDDINGS})
    config = {
        "plugins": {
            "pricing": {"markup": "1.3"},
            "cache": {"background": False, "warm_up": [], "namespace": "embeddings-markup", "backend": "none"},
        }
    }
    with create_provider(
        "openrouter", api_key=KEY, config=config, transport=service.transport(), plugins=["pricing", "cache"]
    ) as provider:
        request = {"model": MODEL, "input": ["first", "second"]}
        first = provider.embed(request, options=CallOptions(cache=True))
        again = provider.embed(request, options=CallOptions(cache=True))
        pricing = PricingService(provider)
        estimate = pricing.cost_of(first)
    assert service.requests["/embeddings"] == 1 and again.meta.cache == "hit"
    for result in (first, again):
        assert result.usage is not None
        assert result.usage.cost == Decimal("0.000000234") and result.usage.base_cost == Decimal("0.00000018")
    assert (estimate.base, estimate.total, estimate.markup) == (Decimal("0.00000018"), first.cost, Decimal("1.3"))


def test_an_openai_compatible_subclass_without_embeddings_still_refuses() -> None:
    from llmrelay.core import Capability
    from llmrelay.core.errors import CapabilityNotSupportedError

    class ChatOnly(OpenRouterProvider):
        capabilities = OpenRouterProvider.capabilities - {Capability.EMBEDDINGS}

    transport = MockTransport(lambda r: HTTPResponse(500, {}, b""))
    with pytest.raises(CapabilityNotSupportedError):
        ChatOnly(api_key=KEY, transport=transport).embed({"model": MODEL, "input": "x"})
    assert transport.requests == []
