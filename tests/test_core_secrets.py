"""API keys stay out of reprs, dumps, config errors and logs."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from llmrelay.core import ConfigurationError, ProviderSettings, create_provider
from llmrelay.core.secrets import mask, redact
from pydantic import SecretStr

KEY = "sk-or-v1-" + "fedcba9876543210" * 4


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"Bearer {KEY}", "Bearer ***"),
        ("Authorization: Bearer abcdefghijklmnop", "Authorization: Bearer ***"),
        ("https://api.test/v1?api_key=hunter2hunter2&x=1", "https://api.test/v1?api_key=***&x=1"),
        ("token=abc123 and key=xyz", "token=*** and key=***"),
        ("anthropic sk-ant-api03-" + "x" * 30, "anthropic ***"),
        ("groq gsk_" + "a" * 40, "groq ***"),
        ("nothing secret here: model gpt-4o", "nothing secret here: model gpt-4o"),
    ],
)
def test_redact_removes_key_shaped_text(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_redact_removes_known_secrets_of_any_shape() -> None:
    assert redact("the key is plainpassword1", secrets=["plainpassword1"]) == "the key is ***"
    # Too short to replace safely: "abc" would mangle ordinary words.
    assert redact("abc", secrets=["abc"]) == "abc"


def test_mask_tells_keys_apart_without_revealing_them() -> None:
    assert mask(KEY) == "sk-or-...210"
    assert mask("short") == "***"
    assert mask(None) == "<not set>"


def test_settings_keep_the_key_as_a_secret() -> None:
    settings = ProviderSettings(api_key=KEY, base_url="https://openrouter.ai/api/v1/")
    assert isinstance(settings.api_key, SecretStr)
    assert settings.key() == KEY
    assert settings.base_url == "https://openrouter.ai/api/v1"
    for shown in (repr(settings), str(settings), settings.model_dump_json(), str(settings.public_dict())):
        assert KEY not in shown
    assert settings.public_dict()["api_key"] == "**********"


def test_the_key_does_not_belong_in_headers() -> None:
    with pytest.raises(ConfigurationError) as info:
        create_provider("fake", registry=_registry(), headers={"Authorization": f"Bearer {KEY}"})
    assert "put the API key in api_key, not in headers" in str(info.value)
    assert KEY not in str(info.value)


def _registry():  # type: ignore[no-untyped-def]
    from llmrelay.core import PluginRegistry

    from tests.support import fake_provider

    registry = PluginRegistry(load_entry_points=False)
    registry.register(fake_provider, name="fake")
    return registry


def test_a_bad_key_value_is_described_by_type_only(tmp_path: Path) -> None:
    config = tmp_path / "relay.toml"
    config.write_text('[providers.fake]\napi_key = ["' + KEY + '"]\n')
    with pytest.raises(ConfigurationError) as info:
        create_provider("fake", config=config, registry=_registry())
    message = str(info.value)
    assert message == f"{config}: providers.fake.api_key: Input should be a valid string (got list)"
    assert KEY not in message


def test_a_key_pasted_into_the_wrong_field_is_redacted(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as info:
        create_provider("fake", registry=_registry(), base_url=KEY)
    assert KEY not in str(info.value)
    assert "base_url must start with http:// or https://" in str(info.value)


def test_provider_repr_and_debug_logs_do_not_show_the_key(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="llmrelay"):
        provider = create_provider("fake", registry=_registry(), api_key=KEY)
        provider.execute({"messages": [{"role": "user", "content": "hi"}]})
    assert KEY not in repr(provider)
    assert KEY not in repr(provider.inner)
    assert KEY not in caplog.text
    provider.close()


@pytest.mark.parametrize(
    "text",
    ["pass api_key=..., or add api_key to [providers.x]", "monkey=banana", "token= (empty)"],
)
def test_redact_leaves_advice_and_ordinary_words_alone(text: str) -> None:
    assert redact(text) == text
