"""Routing by model-name suffix/prefix and by request content, with cached decisions."""

from __future__ import annotations

import pytest
from llmrelay.core import ChatRequest, ConfigurationError, Message, create_provider
from llmrelay.core.compose.routing import (
    ContentRule,
    ModelPrefixRule,
    ModelSuffixRule,
    RequestFeatures,
    Router,
    rules_from_config,
)


@pytest.fixture
def pair(registry):
    openai = create_provider("fake", registry=registry, plugins=False, reply="openai")
    anthropic = create_provider("fake", registry=registry, plugins=False, reply="anthropic")
    return openai, anthropic


def variant_router(pair, **kwargs) -> Router:
    openai, anthropic = pair
    return Router(
        {"openai": openai, "anthropic": anthropic},
        rules=[
            ModelSuffixRule("-openai", provider="openai"),
            ModelSuffixRule("-anthropic", provider="anthropic"),
            ContentRule("images", model="glm-4.5v"),
        ],
        **kwargs,
    )


def ask(model: str, images: list[str] | None = None) -> dict:
    return ChatRequest(model=model, messages=[Message.user("hi", images=images)])


def test_suffix_picks_provider_and_upstream_sees_base_model(pair):
    openai, anthropic = pair
    router = variant_router(pair)

    reply = router.execute(ask("glm-4.5-anthropic"))

    assert reply.text == "anthropic: hi"
    assert anthropic.calls[0][1].model == "glm-4.5"
    assert openai.calls == []
    assert reply.meta.answered_by == "anthropic/glm-4.5"

    router.execute(ask("glm-4.5-openai"))
    assert openai.calls[0][1].model == "glm-4.5"


def test_images_go_to_the_vision_model_on_the_provider_the_suffix_chose(pair):
    openai, anthropic = pair
    router = variant_router(pair, default_provider="openai")

    router.execute(ask("glm-4.5-anthropic", images=["https://example.test/cat.png"]))
    router.execute(ask("glm-4.5", images=["data:image/png;base64,AAAA"]))
    router.execute(ask("glm-4.5"))

    assert anthropic.calls[0][1].model == "glm-4.5v"
    assert [c[1].model for c in openai.calls] == ["glm-4.5v", "glm-4.5"]


def test_text_rule_and_stop(pair):
    openai, anthropic = pair
    router = Router(
        {"openai": openai, "anthropic": anthropic},
        rules=[
            ContentRule("images", provider="anthropic", model="vision-model", stop=True),
            ContentRule("text", provider="openai", model="text-model"),
            ModelPrefixRule("anthropic/", provider="anthropic"),
        ],
    )
    assert router.route(ask("anthropic/claude-x", images=["https://x.test/a.png"])).model == "vision-model"
    route = router.route(ask("anthropic/claude-x"))
    # The text rule matched first, then the prefix rule looked at the model it chose.
    assert (route.provider, route.model) == ("openai", "text-model")


def test_prefix_rule_strips_or_keeps():
    features = RequestFeatures("openai/gpt-4o", False, False)
    from llmrelay.core.compose.routing import Route

    start = Route(None, "openai/gpt-4o")
    assert ModelPrefixRule("openai/", "openai").apply(features, start).model == "gpt-4o"
    assert ModelPrefixRule("openai/", "openai", strip=False).apply(features, start).model == "openai/gpt-4o"
    assert ModelPrefixRule("anthropic/", "anthropic").apply(features, start) is None
    # A model that is only the suffix has no base name: no match, no empty model upstream.
    assert ModelSuffixRule("-openai", "openai").apply(features, Route(None, "-openai")) is None


def test_decisions_are_cached_by_request_features(pair):
    calls = []

    def counting(features: RequestFeatures) -> bool:
        calls.append(features)
        return features.has_tools

    openai, anthropic = pair
    router = Router(
        {"openai": openai, "anthropic": anthropic},
        rules=[ContentRule(counting, provider="anthropic")],
        default_provider="openai",
    )
    for _ in range(5):
        router.execute(ask("m"))
    router.execute(ask("other"))

    assert len(calls) == 2
    assert router.cache_info() == {"hits": 4, "misses": 2, "size": 2}


def test_streaming_is_routed(pair):
    _, anthropic = pair
    router = variant_router(pair)
    with router.stream_execute(ask("glm-4.5-anthropic")) as stream:
        text = "".join(c.text for c in stream)
    assert text == "anthropic hi"
    assert stream.meta.answered_by == "anthropic/glm-4.5"
    assert anthropic.calls[0][0] == "stream_execute"


def test_unrouted_model_without_default_is_a_clear_error(pair):
    router = variant_router(pair)
    with pytest.raises(ConfigurationError, match=r"no routing rule matched model 'glm-4\.5'"):
        router.execute(ask("glm-4.5"))


def test_rules_naming_unknown_providers_are_rejected(pair):
    openai, _ = pair
    with pytest.raises(ConfigurationError, match="names provider 'anthropic'"):
        Router({"openai": openai}, rules=[ModelSuffixRule("-anthropic", "anthropic")])
    with pytest.raises(ConfigurationError, match="default_provider 'nope'"):
        Router({"openai": openai}, default_provider="nope")


def test_rules_from_config(pair):
    rules = rules_from_config(
        [
            {"suffix": "-openai", "provider": "openai"},
            {"prefix": "claude-", "provider": "anthropic", "strip": False},
            {"when": "images", "model": "glm-4.5v"},
        ]
    )
    openai, anthropic = pair
    router = Router({"openai": openai, "anthropic": anthropic}, rules)
    assert router.route(ask("claude-3-haiku")).model == "claude-3-haiku"
    assert router.route(ask("claude-3-haiku")).provider == "anthropic"
    assert router.route(ask("glm-4.5-openai", images=["https://x.test/i.png"])).model == "glm-4.5v"


@pytest.mark.parametrize(
    "item, message",
    [
        ({"provider": "x"}, "exactly one of 'suffix', 'prefix' or 'when'"),
        ({"suffix": "-a", "prefix": "b", "provider": "x"}, "exactly one"),
        ({"suffix": "-a"}, "needs provider"),
        ({"suffix": "-a", "provider": "x", "colour": "red"}, "unknown key"),
        ({"when": "sometimes", "model": "m"}, "unknown condition 'sometimes'"),
        ({"when": "images"}, "give a model, a provider or both"),
    ],
)
def test_bad_rule_config_is_a_clear_error(item, message):
    with pytest.raises(ConfigurationError, match=message):
        rules_from_config([item])


def test_router_validates_and_lists_all_providers(pair):
    router = variant_router(pair)
    assert router.validate_config().ok
    models = router.list_models()
    assert {m.provider for m in models} == {"openai", "anthropic"}


def test_a_provider_that_cannot_list_its_models_is_left_out_and_named(pair, caplog):
    from llmrelay.core.errors import AuthenticationError, ServerError

    openai, anthropic = pair
    router = variant_router(pair)
    anthropic.errors = [ServerError("anthropic is down (key sk-ant-api03-secretsecretsecret)", status=503)]
    with caplog.at_level("WARNING", logger="llmrelay.routing"):
        models = router.list_models()
    assert {m.provider for m in models} == {"openai"}
    assert list(models.unavailable) == ["anthropic"] and "down" in models.unavailable["anthropic"]
    assert "secretsecretsecret" not in models.unavailable["anthropic"] + caplog.text  # redacted
    assert "anthropic could not list its models" in caplog.text

    assert router.list_models().unavailable == {}  # it answers again: nothing is missing
    openai.errors = [AuthenticationError("bad key", status=401)]
    anthropic.errors = [ServerError("down", status=503)]
    with pytest.raises(AuthenticationError):  # no provider answered: the first one's error
        router.list_models()
