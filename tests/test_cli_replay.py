"""`llmrelay --cassette` / `--record` with the real OpenRouter provider, and the installed console script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from llmrelay.core import PluginRegistry
from llmrelay.core.cli.cassettes import scan_cassette
from llmrelay.core.cli.main import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, main

from tests.support.fake_server import VALID_KEY, FakeOpenRouter, Reply

pytest.importorskip("llmrelay.providers.openrouter")

ROOT = Path(__file__).resolve().parent.parent
CASSETTES = ROOT / "cassettes" / "openrouter"
MODELS_2025 = CASSETTES / "models_2025-04.yaml"
LLMRELAY = Path(sys.executable).with_name("llmrelay")


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., tuple[int, str, str]]:
    """main() with the installed entry points (providers and layers), as a user gets them."""
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    monkeypatch.delenv("LLMRELAY_CONFIG", raising=False)

    def invoke(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv), registry=PluginRegistry())
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


def _row(out: str, model: str) -> list[str]:
    return next(line.split() for line in out.splitlines() if line.split()[:1] == [model])


def _errors(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("llmrelay: error:")]


# --------------------------------------------------------------------------- the quickstart command, offline


def test_quickstart_models_from_the_shipped_cassette_without_a_key(run: Callable[..., Any]) -> None:
    code, out, err = run("--cassette", str(MODELS_2025), "models")
    assert code == EXIT_OK
    assert _row(out, "openai/gpt-4o-mini")[-2:] == ["$0.15", "$0.60"]
    assert _row(out, "anthropic/claude-3.7-sonnet")[-2:] == ["$3.00", "$15.00"]
    assert _row(out, "openrouter/auto")[-2:] == ["variable", "variable"]
    assert out.rstrip().endswith("302 models; prices in USD per million tokens")
    assert f"no API key set; replaying {MODELS_2025} with a placeholder key" in err
    assert _errors(err) == []


def test_replay_with_a_key_set_uses_it_and_says_nothing(
    run: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-v1-" + "ab" * 32)
    code, out, err = run("--cassette", str(MODELS_2025), "models", "claude-3.7")
    assert code == EXIT_OK
    assert [line.split()[0] for line in out.splitlines()[1:-1]] == [
        "anthropic/claude-3.7-sonnet",
        "anthropic/claude-3.7-sonnet:beta",
        "anthropic/claude-3.7-sonnet:thinking",
    ]
    assert "placeholder" not in err


def test_replay_json_of_the_2026_shape(run: Callable[..., Any]) -> None:
    code, out, _ = run("--cassette", str(CASSETTES / "models_2026-08.yaml"), "models", "--json")
    data = json.loads(out)
    assert code == EXIT_OK and data["provider"] == "openrouter" and not data["fallback"]
    sonnet = next(m for m in data["models"] if m["id"] == "anthropic/claude-sonnet-4")
    assert (sonnet["prompt_per_million"], sonnet["completion_per_million"]) == ("3", "15")


def test_request_not_in_the_cassette_names_it(run: Callable[..., Any]) -> None:
    code, out, err = run("--cassette", str(MODELS_2025), "chat", "-m", "openai/gpt-4o-mini", "hi")
    assert code == EXIT_FAILURE and out == ""
    assert _errors(err) == [
        "llmrelay: error: request not in the cassette: POST https://openrouter.ai/api/v1/chat/completions "
        "(--cassette replays only; record it with --record PATH)"
    ]


def test_validate_against_a_cassette_without_key_check_names_the_request(run: Callable[..., Any]) -> None:
    code, out, err = run("--cassette", str(MODELS_2025), "validate")
    assert code == EXIT_FAILURE and out == ""
    assert _errors(err) == [
        "llmrelay: error: request not in the cassette: GET https://openrouter.ai/api/v1/key "
        "(--cassette replays only; record it with --record PATH)"
    ]


# --------------------------------------------------------------------------- record, then replay offline


def _config(tmp_path: Path, server: FakeOpenRouter) -> Path:
    config = tmp_path / "llmrelay.toml"
    config.write_text(
        'default_provider = "openrouter"\n'
        "[providers.openrouter]\n"
        f'base_url = "{server.base_url}"\n'
        'api_key = "${OPENROUTER_API_KEY:-}"\n'
    )
    return config


def test_record_then_replay_offline(run: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cassette = tmp_path / "recorded.yaml"
    commands = [
        ["models"],
        ["chat", "-m", "openai/gpt-4o-mini", "Say hi"],
        ["chat", "-m", "openai/gpt-4o-mini", "--stream", "Stream please"],
        ["validate"],
    ]
    with FakeOpenRouter() as server:
        config = _config(tmp_path, server)
        monkeypatch.setenv("OPENROUTER_API_KEY", VALID_KEY)
        live = []
        for number, command in enumerate(commands, 1):
            code, out, err = run("--config", str(config), "--record", str(cassette), *command)
            assert code == EXIT_OK, err
            assert f"recorded to {cassette}, which now holds {number} interaction(s) (keys and cookies filtered)" in err
            live.append(out)
        assert server.count() == len(commands)  # one request per command: no warm-up traffic recorded
    assert "Hello" in live[1] and live[2].strip() and "valid" in live[3]

    text = cassette.read_text()
    assert VALID_KEY not in text and VALID_KEY[9:] not in text
    assert scan_cassette(cassette, secrets=[VALID_KEY]) == []  # the masked key label was filtered too

    monkeypatch.delenv("OPENROUTER_API_KEY")  # server gone, no key: replay only
    for command, expected in zip(commands, live, strict=True):
        code, out, err = run("--config", str(config), "--cassette", str(cassette), *command)
        assert code == EXIT_OK, err
        if command[0] != "validate":  # its key label was scrubbed when recorded
            assert out == expected
        assert "placeholder key" in err


def test_record_into_a_missing_folder_is_a_usage_error(run: Callable[..., Any], tmp_path: Path) -> None:
    code, _, err = run("--record", str(tmp_path / "no" / "such" / "dir.yaml"), "models")
    assert code == EXIT_USAGE
    assert _errors(err) == [
        f"llmrelay: error: cannot record to {tmp_path / 'no/such/dir.yaml'}: folder "
        f"{tmp_path / 'no/such'} does not exist"
    ]


# --------------------------------------------------------------------------- live against a local server


def test_stream_cut_short_prints_what_arrived_then_the_error(
    run: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeOpenRouter() as server:
        server.stream_words = 6
        server.script(
            "POST",
            "/chat/completions",
            Reply(stream_error_after=3, error={"code": 400, "message": "Token limit reached"}),
        )
        monkeypatch.setenv("OPENROUTER_API_KEY", VALID_KEY)
        code, out, err = run(
            "--config", str(_config(tmp_path, server)), "chat", "-m", "openai/gpt-4o-mini", "--stream", "go"
        )
    assert code == EXIT_FAILURE
    assert out.endswith("\n") and out.strip()  # what arrived, on its own line
    (line,) = _errors(err)
    assert "Token limit reached" in line and "Traceback" not in err


def test_bad_key_is_one_line_exit_1(run: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeOpenRouter() as server:
        monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-v1-" + "0" * 64)
        code, out, err = run("--config", str(_config(tmp_path, server)), "-v", "chat", "-m", "openai/gpt-4o-mini", "hi")
    assert code == EXIT_FAILURE and out == ""
    (line,) = _errors(err)
    assert "(HTTP 401)" in line
    assert "0" * 64 not in err  # -v logs at DEBUG, and still never the key


def test_missing_key_without_cassette_is_a_usage_error(run: Callable[..., Any]) -> None:
    code, _, err = run("models")
    assert code == EXIT_USAGE
    (line,) = _errors(err)
    assert "OPENROUTER_API_KEY" in line


# --------------------------------------------------------------------------- the installed console script


def _script(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENROUTER_API_KEY", "LLMRELAY_CONFIG")}
    return subprocess.run(
        [str(LLMRELAY), *argv], capture_output=True, text=True, cwd=cwd, env=env, stdin=subprocess.DEVNULL, timeout=60
    )


@pytest.mark.skipif(not LLMRELAY.exists(), reason="console script not installed next to this interpreter")
def test_console_script_replays_the_quickstart(tmp_path: Path) -> None:
    result = _script("--cassette", str(MODELS_2025), "models", "gpt-4o-mini", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert _row(result.stdout, "openai/gpt-4o-mini")[-2:] == ["$0.15", "$0.60"]
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(not LLMRELAY.exists(), reason="console script not installed next to this interpreter")
@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["--provider", "openruter", "models"], 2, "Did you mean 'openrouter'?"),
        (["--config", "missing.toml", "models"], 2, "config file missing.toml does not exist"),
        (["chat"], 2, "chat needs a prompt"),
        (["--cassette", str(MODELS_2025), "chat", "-m", "x/y", "hi"], 1, "request not in the cassette"),
    ],
)
def test_console_script_mistakes_are_one_line_without_traceback(
    tmp_path: Path, argv: list[str], code: int, message: str
) -> None:
    result = _script(*argv, cwd=tmp_path)
    assert result.returncode == code
    assert "Traceback" not in result.stderr
    errors = _errors(result.stderr)
    assert len(errors) == 1 and message in errors[0], result.stderr


def test_cassette_answers_are_never_served_from_the_cache(run: Callable[..., Any]) -> None:
    # The cache layer (installed, on by default) keeps list_models across providers in one
    # process; under --cassette the command must show what the cassette holds.
    _, first, _ = run("--cassette", str(MODELS_2025), "models", "--json")
    _, second, _ = run("--cassette", str(CASSETTES / "models_2026-08.yaml"), "models", "--json")
    assert (len(json.loads(first)["models"]), len(json.loads(second)["models"])) == (302, 4)


@pytest.mark.skipif(not LLMRELAY.exists(), reason="console script not installed next to this interpreter")
def test_console_script_ctrl_c_mid_stream_exits_130_quietly(tmp_path: Path) -> None:
    import signal

    with FakeOpenRouter() as server:
        server.script("POST", "/chat/completions", Reply(stream_stall_after=2))
        config = _config(tmp_path, server)
        env = {k: v for k, v in os.environ.items() if k != "LLMRELAY_CONFIG"} | {"OPENROUTER_API_KEY": VALID_KEY}
        process = subprocess.Popen(
            [str(LLMRELAY), "--config", str(config), "chat", "-m", "openai/gpt-4o-mini", "--stream", "hi"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=tmp_path,
        )
        assert process.stdout is not None
        first = process.stdout.read1(100)  # type: ignore[attr-defined]  # the stream has started, then stalls
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    assert first
    assert process.returncode == 130
    assert "Traceback" not in err.decode() and _errors(err.decode()) == []
