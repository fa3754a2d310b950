"""`llmrelay config`: each provider's and plugin's effective settings, where each came from, secrets masked."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from llmrelay.core import PluginRegistry
from llmrelay.core.cli.main import EXIT_OK, EXIT_USAGE, main

KEY = "sk-or-v1-" + "0123456789abcdef" * 4
HEADER_TOKEN = "team-token-5f1c2e9a"
CONFIG = f"""
[providers.openrouter]
timeout = {{ connect = 5 }}
headers = {{ X-Team-Token = "{HEADER_TOKEN}" }}

[providers.local]
type = "openai"
base_url = "http://user:hunter2hunter2@127.0.0.1:8000/v1"

[plugins.breaker]
redis_url = "redis://:redispass123@127.0.0.1:6379/0"
"""


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith(("OPENROUTER_", "ANTHROPIC_", "OPENAI_", "LLMRELAY_")) or name == "CACHE_DEFAULT_TTL":
            monkeypatch.delenv(name)
    yield


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "llmrelay.toml"
    path.write_text(CONFIG)
    return path


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    def invoke(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv), registry=PluginRegistry())  # the installed providers and plugins
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", KEY)
    monkeypatch.setenv("OPENROUTER_TIMEOUT__READ", "30")
    monkeypatch.setenv("OPENROUTER_MAX_RETRIES", "3")
    monkeypatch.setenv("CACHE_DEFAULT_TTL", "60000")
    monkeypatch.setenv("LLMRELAY_CACHE__BACKEND", "none")


def row(out: str, section: str, setting: str) -> list[str]:
    """The value and origin printed for one setting of one section (``provider openrouter``)."""
    block = out.split(f"\n{section} (", 1)[1].split("\n\n", 1)[0]
    for line in block.splitlines()[1:]:
        name, value, origin = re.split(r"\s{2,}", line.strip(), maxsplit=2)
        if name == setting:
            return [value, origin]
    raise AssertionError(f"{setting} not shown under {section}:\n{block}")


def test_every_value_is_shown_with_where_it_came_from(
    run: Callable[..., tuple[int, str, str]], config_file: Path, environment: None
) -> None:
    code, out, err = run("--config", str(config_file), "config")
    assert (code, err) == (EXIT_OK, "")
    assert out.startswith(f"Effective settings (config {config_file}; precedence: argument > config > environment")
    assert row(out, "provider openrouter", "timeout.connect") == ["5.0", f"config {config_file}"]
    assert row(out, "provider openrouter", "timeout.read") == ["30.0", "environment OPENROUTER_TIMEOUT__READ"]
    assert row(out, "provider openrouter", "retry.max_attempts") == [
        "4",
        "environment OPENROUTER_MAX_RETRIES, in retries after the first attempt",
    ]
    assert row(out, "provider openrouter", "timeout.stream_idle") == ["60.0", "default"]
    assert row(out, "provider local", "stream_usage") == ["true", "default"]  # a second instance, of type openai
    assert "provider local (type openai, variables OPENAI_...)" in out
    assert "provider anthropic (variables ANTHROPIC_...)" in out  # installed, not configured: still shown
    assert row(out, "plugin cache", "backend") == ["none", "environment LLMRELAY_CACHE__BACKEND"]
    assert row(out, "plugin cache", "default_ttl") == ["60.0", "environment CACHE_DEFAULT_TTL, in milliseconds"]
    assert row(out, "plugin cache", "operations.execute.l2_ttl")[0] == "60.0"  # what default_ttl sets
    assert row(out, "plugin cache", "enabled") == ["true", "default"]
    assert row(out, "plugin breaker", "failure_threshold") == ["5", "default"]
    assert row(out, "plugin metrics", "window_size") == ["1000", "default"]


def test_secrets_are_masked(run: Callable[..., tuple[int, str, str]], config_file: Path, environment: None) -> None:
    code, out, _ = run("--config", str(config_file), "config")
    assert code == EXIT_OK
    assert row(out, "provider openrouter", "api_key") == ["**********", "environment OPENROUTER_API_KEY"]
    assert row(out, "provider openrouter", "headers.X-Team-Token")[0] == "**********"
    assert row(out, "provider local", "base_url")[0] == "http://user:***@127.0.0.1:8000/v1"
    assert row(out, "plugin cache", "redis_url")[0] == "**********"  # a SecretStr
    assert row(out, "plugin breaker", "redis_url")[0] == "redis://:***@127.0.0.1:6379/0"
    assert row(out, "provider anthropic", "default_max_tokens")[0] == "4096"  # "tokens" is not a secret's name
    for secret in (KEY, HEADER_TOKEN, "hunter2hunter2", "redispass123"):
        assert secret not in out


def test_json_output(run: Callable[..., tuple[int, str, str]], config_file: Path, environment: None) -> None:
    code, out, _ = run("--config", str(config_file), "config", "--json")
    assert code == EXIT_OK
    data: dict[str, Any] = json.loads(out)
    assert data["config"] == str(config_file)
    providers = {p["name"]: p for p in data["providers"]}
    assert providers["local"]["type"] == "openai"
    settings = providers["openrouter"]["settings"]
    assert settings["timeout.read"] == {"value": 30.0, "origin": "environment", "source": "OPENROUTER_TIMEOUT__READ"}
    assert settings["timeout.connect"] == {"value": 5.0, "origin": "config", "source": str(config_file)}
    assert settings["retry.retry_statuses"]["value"] == [408, 429, 500, 502, 503, 504]
    assert settings["api_key"]["value"] == "**********"
    plugins = {p["name"]: p for p in data["plugins"]}
    assert list(plugins) == ["pricing", "metrics", "tokens", "cache", "breaker"]  # outermost first
    assert plugins["cache"]["enabled"] is True
    assert plugins["tokens"]["enabled"] is False  # opt-in
    assert plugins["cache"]["settings"]["backend"]["source"] == "LLMRELAY_CACHE__BACKEND"
    for secret in (KEY, HEADER_TOKEN, "hunter2hunter2", "redispass123"):
        assert secret not in out


def test_one_instance_with_provider_and_no_config_file(
    run: Callable[..., tuple[int, str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMRELAY_METRICS__ENABLED", "false")
    code, out, _ = run("--provider", "openrouter", "config", "--json")
    assert code == EXIT_OK
    data = json.loads(out)
    assert data["config"] is None
    assert [p["name"] for p in data["providers"]] == ["openrouter"]
    assert data["providers"][0]["settings"]["api_key"] == {"value": None, "origin": "default", "source": None}
    metrics = next(p for p in data["plugins"] if p["name"] == "metrics")
    assert metrics["enabled"] is False
    assert metrics["settings"]["enabled"] == {
        "value": False,
        "origin": "environment",
        "source": "LLMRELAY_METRICS__ENABLED",
    }


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("OPENROUTER_TIMEOUT__RAED", "30", "environment variable OPENROUTER_TIMEOUT__RAED: "),
        ("OPENROUTER_TIMEOUT__READ", KEY, "(from environment variable OPENROUTER_TIMEOUT__READ)"),
        (
            "LLMRELAY_CACHE__BACKEND",
            "disk",
            "plugins.cache.backend (from environment variable LLMRELAY_CACHE__BACKEND)",
        ),
    ],
)
def test_a_bad_variable_is_one_error_line_and_exit_2(
    run: Callable[..., tuple[int, str, str]], monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    code, out, err = run("config")
    assert (code, out) == (EXIT_USAGE, "")
    assert err.startswith("llmrelay: error: ") and err.count("\n") == 1
    assert expected in err
    assert KEY not in err
