"""Every setting from the environment: nested names, plugins, the reports' legacy variables, precedence, errors."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from llmrelay.core import PluginRegistry, create_provider
from llmrelay.core.config import effective_plugin_settings, effective_provider_settings, settings_from_env
from llmrelay.core.errors import CircuitOpenError, ConfigurationError, ServerError
from llmrelay.providers.openrouter import OpenRouterSettings

from tests.support import fake_provider

KEY = "sk-or-v1-" + "0123456789abcdef" * 4
REQUEST = {"model": "fake/small", "messages": [{"role": "user", "content": "hi"}]}
LEGACY = (
    "OPENROUTER_REQUEST_TIMEOUT",
    "OPENROUTER_MAX_RETRIES",
    "OPENROUTER_RETRY_DELAY",
    "CACHE_DEFAULT_TTL",
    "CIRCUIT_BREAKER_THRESHOLD",
    "PERFORMANCE_MONITORING_ENABLED",
)
# One-shot builds: no cache warm-up thread calling list_models in the background.
NO_WARM_UP: dict[str, Any] = {"plugins": {"cache": {"warm_up": []}}}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith(("OPENROUTER_", "ANTHROPIC_", "OPENAI_", "LLMRELAY_", "FAKE_")) or name in LEGACY:
            monkeypatch.delenv(name)
    yield


@pytest.fixture
def reg() -> PluginRegistry:
    """The installed providers and plugins (made after the test's variables are set), and the fake provider."""
    registry = PluginRegistry()
    registry.register(fake_provider, name="fake")
    return registry


def build(reg: PluginRegistry, name: str = "fake", config: Any = None, **settings: Any) -> Any:
    provider = create_provider(name, registry=reg, config=config or NO_WARM_UP, **settings)
    provider.close()  # the settings and layers stay readable; nothing is called
    return provider


def message(excinfo: pytest.ExceptionInfo[ConfigurationError]) -> str:
    text = str(excinfo.value)
    assert "\n" not in text  # one readable line
    return text


# --------------------------------------------------------------------------- nested names


def test_nested_provider_settings_for_two_prefixes(reg: PluginRegistry, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", KEY)
    monkeypatch.setenv("OPENROUTER_TIMEOUT__READ", "30")
    monkeypatch.setenv("OPENROUTER_RETRY__MAX_ATTEMPTS", "4")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-" + "x" * 30)
    monkeypatch.setenv("ANTHROPIC_POOL__MAXSIZE", "8")
    monkeypatch.setenv("ANTHROPIC_RETRY__RESPECT_RETRY_AFTER", "false")

    openrouter = build(reg, "openrouter", plugins=False).settings
    assert (openrouter.timeout.read, openrouter.retry.max_attempts) == (30.0, 4)
    assert openrouter.timeout.connect == 10.0  # the rest of the table keeps its defaults
    assert openrouter.key() == KEY

    anthropic = build(reg, "anthropic", plugins=False).settings
    assert anthropic.pool.maxsize == 8
    assert anthropic.retry.respect_retry_after is False
    assert 529 in anthropic.retry.retry_statuses  # Anthropic's own default retry table is kept
    assert anthropic.timeout.read == 120.0  # OPENROUTER_ variables are OpenRouter's only


def test_complex_values_are_json_and_a_whole_table_is_refined_by_its_fields(
    reg: PluginRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_RETRY__RETRY_STATUSES", "[429, 503]")
    monkeypatch.setenv("FAKE_HEADERS", '{"X-Team": "search"}')
    monkeypatch.setenv("FAKE_TIMEOUT", '{"connect": 2, "read": 3}')
    monkeypatch.setenv("FAKE_TIMEOUT__READ", "7")
    settings = build(reg, plugins=False).settings
    assert settings.retry.retry_statuses == frozenset({429, 503})
    assert settings.headers == {"X-Team": "search"}
    assert (settings.timeout.connect, settings.timeout.read) == (2.0, 7.0)
    assert settings_from_env(type(settings), "FAKE_")["timeout"] == {"connect": 2, "read": "7"}


def test_null_sets_an_optional_setting_to_none(reg: PluginRegistry, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMRELAY_BREAKER__FAILURE_RATE_THRESHOLD", "null")
    monkeypatch.setenv("LLMRELAY_METRICS__WINDOW_SECONDS", "null")
    plugins = {p.name: p.settings for p in effective_plugin_settings(config=NO_WARM_UP, registry=reg)}
    assert plugins["breaker"].failure_rate_threshold is None
    assert plugins["metrics"].window_seconds is None


def test_plugin_settings_and_switches_from_the_environment(
    reg: PluginRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMRELAY_CACHE__BACKEND", "none")
    monkeypatch.setenv("LLMRELAY_CACHE__OPERATIONS__EXECUTE__ENABLED", "true")
    monkeypatch.setenv("LLMRELAY_CACHE__OPERATIONS__EXECUTE__L1_TTL", "45")
    monkeypatch.setenv("LLMRELAY_BREAKER__FAILURE_THRESHOLD", "2")
    monkeypatch.setenv("LLMRELAY_METRICS__ENABLED", "false")
    provider = build(reg)
    cache = provider.layer("cache").settings
    assert cache.backend == "none"
    execute = cache.operations["execute"]
    assert (execute.enabled, execute.l1_ttl, execute.l2_ttl) == (True, 45.0, 3600.0)  # l2_ttl keeps its default
    assert provider.layer("breaker").board.settings.failure_threshold == 2
    assert provider.layer("metrics") is None


# --------------------------------------------------------------------------- the reports' variables


@pytest.mark.parametrize(
    ("variable", "value", "field", "expected"),
    [
        ("OPENROUTER_REQUEST_TIMEOUT", "30000", ("timeout", "read"), 30.0),
        ("OPENROUTER_REQUEST_TIMEOUT", "1500", ("timeout", "read"), 1.5),
        ("OPENROUTER_MAX_RETRIES", "3", ("retry", "max_attempts"), 4),  # 3 retries after the first attempt
        ("OPENROUTER_MAX_RETRIES", "0", ("retry", "max_attempts"), 1),
        ("OPENROUTER_RETRY_DELAY", "1000", ("retry", "initial_backoff"), 1.0),
        ("OPENROUTER_RETRY_DELAY", "250", ("retry", "initial_backoff"), 0.25),
    ],
)
def test_the_reports_openrouter_variables_in_their_units(
    reg: PluginRegistry, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, field: Any, expected: Any
) -> None:
    monkeypatch.setenv(variable, value)
    settings = build(reg, "openrouter", plugins=False, api_key=KEY).settings
    assert getattr(getattr(settings, field[0]), field[1]) == expected
    assert OpenRouterSettings.model_validate({}).timeout.read == 120.0  # the default itself is untouched


def test_cache_default_ttl_is_milliseconds_for_cached_chat_results(
    reg: PluginRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CACHE_DEFAULT_TTL", "300000")  # the reports' five minutes
    operations = build(reg).layer("cache").settings.operations
    for name in ("execute", "stream_execute"):
        assert (operations[name].l1_ttl, operations[name].l2_ttl) == (300.0, 300.0)
    assert operations["list_models"].l2_ttl == 3600.0  # the model list keeps its own lifetime


def test_llmrelay_cache_default_ttl_is_seconds_and_an_operations_own_ttl_wins(
    reg: PluginRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMRELAY_CACHE__DEFAULT_TTL", "120")
    operations = build(reg).layer("cache").settings.operations
    assert (operations["execute"].l1_ttl, operations["execute"].l2_ttl) == (120.0, 120.0)
    config = {"plugins": {"cache": {"warm_up": [], "operations": {"stream_execute": {"l1_ttl": 10}}}}}
    provider = create_provider("fake", registry=reg, config=config)
    streamed = provider.layer("cache").settings.operations["stream_execute"]
    assert (streamed.l1_ttl, streamed.l2_ttl) == (10.0, 120.0)  # the file's own l1_ttl, default_ttl for the rest
    provider.close()
    monkeypatch.setenv("LLMRELAY_CACHE__DEFAULT_TTL", "0")
    with pytest.raises(ConfigurationError, match="LLMRELAY_CACHE__DEFAULT_TTL"):
        build(reg)


def test_circuit_breaker_threshold_opens_the_circuit_after_that_many_failures(
    reg: PluginRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CIRCUIT_BREAKER_THRESHOLD", "2")
    provider = create_provider("fake", registry=reg, plugins=["breaker"])
    provider.inner.errors = [ServerError("down", status=503) for _ in range(2)]
    for _ in range(2):
        with pytest.raises(ServerError):
            provider.execute(REQUEST)
    with pytest.raises(CircuitOpenError):
        provider.execute(REQUEST)
    assert provider.inner.count("execute") == 2  # the third call never reached the provider
    provider.close()


def test_performance_monitoring_enabled_switches_the_metrics_plugin(
    reg: PluginRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PERFORMANCE_MONITORING_ENABLED", "false")
    assert build(reg).layer("metrics") is None
    monkeypatch.setenv("PERFORMANCE_MONITORING_ENABLED", "true")
    assert build(reg).layer("metrics") is not None
    monkeypatch.setenv("LLMRELAY_METRICS__ENABLED", "false")  # the new name wins over the legacy one
    assert build(reg).layer("metrics") is None


def test_a_new_style_name_wins_over_its_legacy_alias(reg: PluginRegistry, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", KEY)
    monkeypatch.setenv("OPENROUTER_REQUEST_TIMEOUT", "30000")
    monkeypatch.setenv("OPENROUTER_TIMEOUT__READ", "12")
    monkeypatch.setenv("CIRCUIT_BREAKER_THRESHOLD", "9")
    monkeypatch.setenv("LLMRELAY_BREAKER__FAILURE_THRESHOLD", "3")
    effective = effective_provider_settings("openrouter", registry=reg)
    assert effective.settings.timeout.read == 12.0
    assert effective.origin(("timeout", "read")).source == "OPENROUTER_TIMEOUT__READ"
    breaker = next(p for p in effective_plugin_settings(config=NO_WARM_UP, registry=reg) if p.name == "breaker")
    assert breaker.settings.failure_threshold == 3


# --------------------------------------------------------------------------- precedence


def test_precedence_at_the_nested_level(reg: PluginRegistry, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "llmrelay.toml"
    config.write_text("[providers.fake]\ntimeout = { connect = 5, read = 6 }\n")
    monkeypatch.setenv("FAKE_TIMEOUT__CONNECT", "1")
    monkeypatch.setenv("FAKE_TIMEOUT__READ", "2")
    monkeypatch.setenv("FAKE_TIMEOUT__STREAM_IDLE", "3")
    effective = effective_provider_settings("fake", config=config, registry=reg, timeout={"connect": 9})
    timeout = effective.settings.timeout
    assert (timeout.connect, timeout.read, timeout.stream_idle) == (9.0, 6.0, 3.0)
    assert str(effective.origin(("timeout", "connect"))) == "argument keyword argument"
    assert str(effective.origin(("timeout", "read"))) == f"config {config}"
    assert str(effective.origin(("timeout", "stream_idle"))) == "environment FAKE_TIMEOUT__STREAM_IDLE"
    assert str(effective.origin(("retry", "max_attempts"))) == "default"
    # create_provider builds with exactly these settings
    built = build(reg, config=config, plugins=False, timeout={"connect": 9}).settings
    assert built.timeout == timeout


def test_a_file_sets_one_nested_field_and_the_environment_another(
    reg: PluginRegistry, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "llmrelay.toml"
    config.write_text(
        "[providers.fake]\ntimeout = { connect = 5 }\n"
        "[plugins.breaker]\nreset_timeout = 30\n"
        "[plugins.cache]\nwarm_up = []\n"
    )
    monkeypatch.setenv("FAKE_TIMEOUT__READ", "30")
    monkeypatch.setenv("LLMRELAY_BREAKER__FAILURE_THRESHOLD", "4")
    monkeypatch.setenv("CIRCUIT_BREAKER_THRESHOLD", "8")
    provider = build(reg, config=config)
    assert (provider.settings.timeout.connect, provider.settings.timeout.read) == (5.0, 30.0)
    breaker = provider.layer("breaker").board.settings
    assert (breaker.reset_timeout, breaker.failure_threshold) == (30.0, 4)


def test_the_file_overrides_the_environment_for_a_plugin(reg: PluginRegistry, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMRELAY_BREAKER__FAILURE_THRESHOLD", "4")
    monkeypatch.setenv("LLMRELAY_CACHE__ENABLED", "false")
    provider = build(reg, config={"plugins": {"breaker": {"failure_threshold": 6}, "cache": {"enabled": True}}})
    assert provider.layer("breaker").board.settings.failure_threshold == 6
    assert provider.layer("cache") is not None


# --------------------------------------------------------------------------- mistakes


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        (
            "FAKE_TIMEOUT__READ",
            "fast",
            "providers.fake.timeout.read (from environment variable FAKE_TIMEOUT__READ): "
            "Input should be a valid number",
        ),
        (
            "OPENROUTER_REQUEST_TIMEOUT",
            "soon",
            "environment variable OPENROUTER_REQUEST_TIMEOUT: expected a number of milliseconds",
        ),
        (
            "OPENROUTER_MAX_RETRIES",
            "-1",
            "environment variable OPENROUTER_MAX_RETRIES: expected a whole number of retries",
        ),
        (
            "FAKE_RETRY__RETRY_STATUSES",
            "429,503",
            "environment variable FAKE_RETRY__RETRY_STATUSES: providers.fake.retry.retry_statuses takes JSON",
        ),
        (
            "LLMRELAY_CACHE__MAX_ENTRIES",
            "lots",
            "plugins.cache.max_entries (from environment variable LLMRELAY_CACHE__MAX_ENTRIES)",
        ),
        (
            "PERFORMANCE_MONITORING_ENABLED",
            "maybe",
            "environment variable PERFORMANCE_MONITORING_ENABLED: expected true or false",
        ),
        (
            "OPENROUTER_REQUEST_TIMEOUT",
            "-5",
            "providers.fake.timeout.read (from environment variable OPENROUTER_REQUEST_TIMEOUT, in milliseconds)",
        ),
    ],
)
def test_a_malformed_value_is_one_error_naming_the_variable(
    reg: PluginRegistry, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    name = "openrouter" if variable.startswith("OPENROUTER_") else "fake"
    with pytest.raises(ConfigurationError) as excinfo:
        build(reg, name, api_key=KEY)
    assert expected.replace("providers.fake", f"providers.{name}") in message(excinfo)


@pytest.mark.parametrize(
    ("variable", "expected"),
    [
        (
            "OPENROUTER_TIMEOUT__RAED",
            "providers.openrouter.timeout.raed: unknown setting (did you mean OPENROUTER_TIMEOUT__READ?)",
        ),
        ("OPENROUTER_TIMOUT__READ", "unknown setting (did you mean OPENROUTER_TIMEOUT__READ?)"),
        ("OPENROUTER_TIMEOUT_READ", "did you mean OPENROUTER_TIMEOUT__READ?"),
        ("OPENROUTER_API_KEY__X", "providers.openrouter.api_key is one value, not a table of settings"),
        ("LLMRELAY_CACHE__BACKNED", "plugins.cache.backned: unknown setting (did you mean LLMRELAY_CACHE__BACKEND?)"),
        ("LLMRELAY_CAHCE__BACKEND", "names no plugin with settings. Did you mean LLMRELAY_CACHE__...?"),
        ("LLMRELAY_OPENROUTER__TIMEOUT__READ", "openrouter is a provider, not a plugin"),
    ],
)
def test_a_variable_that_names_no_setting_is_reported(
    reg: PluginRegistry, monkeypatch: pytest.MonkeyPatch, variable: str, expected: str
) -> None:
    monkeypatch.setenv(variable, "3")
    with pytest.raises(ConfigurationError) as excinfo:
        build(reg, "openrouter", api_key=KEY)
    text = message(excinfo)
    assert text.startswith(f"environment variable {variable}: ")
    assert expected in text


def test_variables_of_other_programs_sharing_a_prefix_are_left_alone(
    reg: PluginRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {
        "OPENROUTER_SOMETHING_ELSE": "1",
        "LLMRELAY_REQUIRE_REDIS": "1",
        "LLMRELAY_GATEWAY_KEY": "gateway-secret-1234",
        "LLMRELAY_RECORD": "none",
        "OPENAI_LOG": "debug",
        "ANTHROPIC_MODEL": "claude-x",
        "FAKE_": "x",
    }.items():
        monkeypatch.setenv(name, value)
    provider = build(reg, "openrouter", api_key=KEY)
    assert provider.settings.timeout.read == 120.0
    assert [layer.name for layer in provider.layers] == ["metrics", "cache", "breaker"]


def test_a_disabled_plugins_variables_are_quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMRELAY_DISABLE_PLUGINS", "cache")
    monkeypatch.setenv("LLMRELAY_CACHE__BACKNED", "whatever")  # not read: the plugin is not loaded
    registry = PluginRegistry()
    registry.register(fake_provider, name="fake")
    provider = create_provider("fake", registry=registry)
    assert provider.layer("cache") is None
    provider.close()


def test_secrets_never_appear_in_environment_errors(reg: PluginRegistry, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_TIMEOUT__READ", KEY)  # a key pasted into the wrong variable
    with pytest.raises(ConfigurationError) as excinfo:
        build(reg)
    assert "FAKE_TIMEOUT__READ" in message(excinfo) and KEY not in message(excinfo)

    monkeypatch.delenv("FAKE_TIMEOUT__READ")
    monkeypatch.setenv("FAKE_HEADERS", '{"X-Token": "tok-secret-value-1234"')  # broken JSON
    with pytest.raises(ConfigurationError) as excinfo:
        build(reg)
    assert "FAKE_HEADERS" in message(excinfo) and "tok-secret-value-1234" not in message(excinfo)

    monkeypatch.setenv("FAKE_HEADERS", '{"Authorization": "hunter2hunter2"}')  # refused by the validator
    with pytest.raises(ConfigurationError) as excinfo:
        build(reg)
    text = message(excinfo)
    assert "put the API key in api_key" in text and "FAKE_HEADERS" in text
    assert "hunter2hunter2" not in text


def test_a_partial_table_merges_over_the_fields_own_default(
    reg: PluginRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    # AnthropicSettings.retry defaults to a table that also retries 529 (overloaded):
    # changing one field of it, from a file or a variable, keeps the rest.
    monkeypatch.setenv("ANTHROPIC_RETRY__MAX_BACKOFF", "2")
    config = {"providers": {"anthropic": {"retry": {"max_attempts": 5}}}}
    retry = build(reg, "anthropic", config=config, plugins=False, api_key="sk-ant-" + "x" * 30).settings.retry
    assert (retry.max_attempts, retry.max_backoff) == (5, 2.0)
    assert 529 in retry.retry_statuses
