"""The `llmrelay` command line, run in-process against the tests' fake provider."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from llmrelay.core import (
    AuthenticationError,
    ChatStream,
    PluginRegistry,
    RateLimitError,
    StreamChunk,
    StreamInterruptedError,
    ValidationReport,
    hookimpl,
)
from llmrelay.core.cli.main import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, main

FAKE_KEY = "sk-or-v1-" + "0123456789abcdef" * 4


@pytest.fixture
def cli_registry() -> PluginRegistry:
    """The fake provider alone: the installed layers (cache, breaker) keep state across
    calls in one process, which would leak between these tests. Their CLI use is
    covered by the `providers` tests and the subprocess tests in test_cli_replay.py."""
    from tests.support import fake_provider

    reg = PluginRegistry(load_entry_points=False)
    reg.register(fake_provider, name="fake")
    return reg


@pytest.fixture
def run(cli_registry: PluginRegistry, capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    def invoke(*argv: str, registry: PluginRegistry | None = None) -> tuple[int, str, str]:
        code = main(list(argv), registry=registry or cli_registry)
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> Callable[[Callable[[str, Any], Any]], list[Any]]:
    """Install a script on every FakeProvider the CLI builds; returns the built instances."""
    from tests.support.fake_provider import FakeProvider

    built: list[Any] = []
    original = FakeProvider.__init__

    def install(script: Callable[[str, Any], Any]) -> list[Any]:
        def init(self: FakeProvider, *args: Any, **kwargs: Any) -> None:
            original(self, *args, **kwargs)
            self.script = script
            built.append(self)

        monkeypatch.setattr(FakeProvider, "__init__", init)
        return built

    return install


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("llmrelay: error: "), err
    assert "Traceback" not in err
    return lines[0]


# --------------------------------------------------------------------------- providers


def test_providers_lists_providers_layers_and_failed_plugins(run: Callable[..., Any], registry: PluginRegistry) -> None:
    from llmrelay.core.plugins import FailedPlugin

    registry.failed.append(FailedPlugin("broken", "broken-dist", "broken_pkg.plugin", "ImportError: no module x"))
    code, out, _ = run("providers", registry=registry)
    assert code == EXIT_OK
    assert "fake" in out and "tests.support.fake_provider:FakeProvider" in out
    failed_section = out.split("Plugins that failed to load:")[1]
    assert (
        "broken" in failed_section and "broken-dist" in failed_section and "ImportError: no module x" in failed_section
    )


def test_providers_json_names_distribution_of_each_entry_point(
    run: Callable[..., Any], registry: PluginRegistry
) -> None:
    code, out, _ = run("providers", "--json", registry=registry)
    data = json.loads(out)
    assert code == EXIT_OK
    fake_entry = next(p for p in data["providers"] if p["name"] == "fake")
    assert fake_entry["plugin"] == "fake" and fake_entry["distribution"] is None
    from_entry_points = [p for p in data["plugins"] if p["distribution"] is not None]
    for plugin in from_entry_points:
        assert plugin["distribution"] == "llmrelay" and plugin["version"]
    assert [f["name"] for f in data["failed"]] == [f.name for f in registry.failed]
    # every entry point llmrelay itself declares shows up, loaded or failed with a reason
    seen = {p["name"] for p in data["plugins"]} | {f["name"] for f in data["failed"]}
    assert {"openrouter", "openai", "anthropic", "cache", "metrics", "breaker"} <= seen
    assert all(f["error"] for f in data["failed"])
    positions = [layer["position"] for layer in data["layers"]]
    assert positions == sorted(positions)


# --------------------------------------------------------------------------- models


def test_models_prints_prices_per_million(run: Callable[..., Any]) -> None:
    code, out, _ = run("--provider", "fake", "models")
    assert code == EXIT_OK
    small = next(line for line in out.splitlines() if line.startswith("fake/small"))
    assert small.split()[-2:] == ["$1.00", "$2.00"]  # 0.000001 and 0.000002 per token
    auto = next(line for line in out.splitlines() if line.startswith("fake/auto"))
    assert auto.split()[-2:] == ["variable", "variable"]  # "-1": unknown, not negative money


def test_models_filter_and_json(run: Callable[..., Any]) -> None:
    code, out, _ = run("--provider", "fake", "models", "SMALL", "--json")
    data = json.loads(out)
    assert code == EXIT_OK
    assert [m["id"] for m in data["models"]] == ["fake/small"]
    assert data["models"][0]["prompt_per_million"] == "1"
    assert data["models"][0]["completion_per_million"] == "2"


def test_models_filter_matching_nothing_exits_1(run: Callable[..., Any]) -> None:
    code, out, err = run("--provider", "fake", "models", "nothing-like-this")
    assert code == EXIT_FAILURE
    assert out == "" and "no model matches 'nothing-like-this'" in err


def test_models_flags_fallback_data(run: Callable[..., Any], scripted: Callable[..., Any]) -> None:
    from llmrelay.core import ModelInfo, ModelList

    scripted(lambda op, _: ModelList(models=[ModelInfo(id="a/b")], fallback=True) if op == "list_models" else None)
    code, out, err = run("--provider", "fake", "models")
    assert code == EXIT_OK and "a/b" in out
    assert "fallback list" in err


# --------------------------------------------------------------------------- chat


def test_chat_prompt_argument_system_and_model(run: Callable[..., Any], scripted: Callable[..., Any]) -> None:
    built = scripted(lambda op, request: None)
    code, out, _ = run("--provider", "fake", "chat", "--model", "fake/small", "--system", "be brief", "hi there")
    assert code == EXIT_OK
    assert out == "hello: hi there\n"
    ((_, request),) = built[0].calls
    assert request.model == "fake/small"
    assert [(m.role, m.text) for m in request.messages] == [("system", "be brief"), ("user", "hi there")]


def test_chat_reads_stdin(run: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("from stdin\n"))
    code, out, _ = run("--provider", "fake", "chat", "-m", "fake/small")
    assert code == EXIT_OK
    assert out == "hello: from stdin\n\n"


def test_chat_json(run: Callable[..., Any]) -> None:
    code, out, _ = run("--provider", "fake", "chat", "-m", "fake/small", "--json", "hi")
    data = json.loads(out)
    assert code == EXIT_OK
    assert data["message"]["content"] == "hello: hi" and data["usage"]["total_tokens"] == 5


def test_chat_stream_prints_as_it_arrives(run: Callable[..., Any]) -> None:
    code, out, _ = run("--provider", "fake", "chat", "-m", "fake/small", "--stream", "one two")
    assert code == EXIT_OK
    assert out == "hello one two\n"


def test_chat_stream_json_lines(run: Callable[..., Any]) -> None:
    code, out, _ = run("--provider", "fake", "chat", "-m", "fake/small", "--stream", "--json", "x")
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == EXIT_OK
    assert "".join(line.get("text", "") for line in lines) == "hello x"
    assert lines[-2]["finish_reason"] == "stop" and lines[-1]["usage"]["total_tokens"] == 5


def test_stream_cut_short_prints_what_arrived_then_the_error(
    run: Callable[..., Any], scripted: Callable[..., Any]
) -> None:
    def chunks() -> Iterator[StreamChunk]:
        yield StreamChunk(text="partial ")
        yield StreamChunk(text="answer")
        raise StreamInterruptedError("Token limit reached", provider="fake", upstream_code=400)

    scripted(lambda op, _: ChatStream(chunks(), provider="fake") if op == "stream_execute" else None)
    code, out, err = run("--provider", "fake", "chat", "-m", "fake/small", "--stream", "go")
    assert code == EXIT_FAILURE
    assert out == "partial answer\n"
    assert one_error_line(err) == "llmrelay: error: [fake] Token limit reached"


def test_chat_without_model_is_a_usage_error(run: Callable[..., Any]) -> None:
    code, out, err = run("--provider", "fake", "chat", "hi")
    assert code == EXIT_USAGE and out == ""
    assert "no model: pass --model" in one_error_line(err)


def test_chat_uses_default_model_from_config(
    run: Callable[..., Any], tmp_path: Any, scripted: Callable[..., Any]
) -> None:
    config = tmp_path / "llmrelay.toml"
    config.write_text('default_provider = "fake"\n[providers.fake]\ndefault_model = "fake/from-config"\nreply = "yo"\n')
    built = scripted(lambda op, request: None)
    code, out, _ = run("--config", str(config), "chat", "hi")
    assert code == EXIT_OK and out == "yo: hi\n"
    assert built[0].calls[0][1].model == "fake/from-config"


def test_empty_prompt_is_a_usage_error(run: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("   \n"))
    code, _, err = run("--provider", "fake", "chat", "-m", "x")
    assert code == EXIT_USAGE and "the prompt is empty" in one_error_line(err)


# --------------------------------------------------------------------------- validate


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [("valid", EXIT_OK), ("invalid_key", EXIT_FAILURE), ("unreachable", EXIT_FAILURE), ("config_error", EXIT_USAGE)],
)
def test_validate_exit_code_is_zero_only_when_valid(
    run: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, outcome: str, expected: int
) -> None:
    from tests.support.fake_provider import FakeProvider

    def validate(self: Any) -> ValidationReport:
        return ValidationReport(
            provider="fake",
            outcome=outcome,
            message=f"it is {outcome}",
            key_label="sk-or-v1-0fa...240",
            problems=["first problem"],
        )

    monkeypatch.setattr(FakeProvider, "validate_config", validate)
    code, out, _ = run("--provider", "fake", "validate")
    assert code == expected
    assert f"outcome:   {outcome}" in out and "key:       sk-or-v1-0fa...240" in out and "- first problem" in out


def test_validate_json(run: Callable[..., Any]) -> None:
    code, out, _ = run("--provider", "fake", "validate", "--json")
    assert code == EXIT_OK and json.loads(out)["outcome"] == "valid"


# --------------------------------------------------------------------------- user mistakes: one line, right code


def test_unknown_provider_suggests_the_close_one(run: Callable[..., Any]) -> None:
    code, out, err = run("--provider", "fkae", "models")
    line = one_error_line(err)
    assert code == EXIT_USAGE and out == ""
    assert "unknown provider 'fkae'" in line and "Did you mean 'fake'?" in line


def test_unknown_command_suggests_the_close_one(run: Callable[..., Any]) -> None:
    code, _, err = run("modles")
    assert code == EXIT_USAGE and "did you mean 'models'?" in one_error_line(err)


def test_bad_option_and_missing_command(run: Callable[..., Any]) -> None:
    code, _, err = run("--provider", "fake", "models", "--bogus")
    assert code == EXIT_USAGE and "unrecognized arguments: --bogus" in one_error_line(err)
    code, _, err = run()
    assert code == EXIT_USAGE and "required: COMMAND" in one_error_line(err)


def test_cassette_and_record_are_exclusive(run: Callable[..., Any], tmp_path: Any) -> None:
    code, _, err = run("--cassette", "a.yaml", "--record", "b.yaml", "models")
    assert code == EXIT_USAGE and "not allowed with argument" in one_error_line(err)


def test_missing_config_file(run: Callable[..., Any], tmp_path: Any) -> None:
    missing = tmp_path / "nope.toml"
    code, _, err = run("--config", str(missing), "--provider", "fake", "models")
    assert code == EXIT_USAGE
    assert one_error_line(err) == f"llmrelay: error: config file {missing} does not exist"


def test_bad_config_value_names_file_and_field(run: Callable[..., Any], tmp_path: Any) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[providers.fake]\ntimeout = { connect = "soon" }\n')
    code, _, err = run("--config", str(config), "--provider", "fake", "models")
    line = one_error_line(err)
    assert code == EXIT_USAGE
    assert str(config) in line and "providers.fake.timeout.connect" in line


def test_missing_key_is_a_config_error(run: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.support.fake_provider import FakeProvider

    monkeypatch.setattr(FakeProvider, "requires_api_key", True)
    monkeypatch.delenv("FAKE_API_KEY", raising=False)
    code, _, err = run("--provider", "fake", "models")
    assert code == EXIT_USAGE and "api_key: required, but not set (set FAKE_API_KEY" in one_error_line(err)


def test_missing_cassette_file_is_a_usage_error(run: Callable[..., Any], tmp_path: Any) -> None:
    code, _, err = run("--cassette", str(tmp_path / "none.yaml"), "--provider", "fake", "models")
    assert code == EXIT_USAGE and "does not exist" in one_error_line(err)


@pytest.mark.parametrize(
    "error",
    [
        RateLimitError("slow down", provider="fake", status=429, retry_after=3.0),
        AuthenticationError("invalid key", provider="fake", status=401),
    ],
)
def test_upstream_failure_exits_1_with_one_line(
    run: Callable[..., Any], scripted: Callable[..., Any], error: Exception
) -> None:
    def fail(op: str, _: Any) -> Any:
        raise error

    scripted(fail)
    code, out, err = run("--provider", "fake", "models")
    assert code == EXIT_FAILURE and out == ""
    assert one_error_line(err) == f"llmrelay: error: {error}"


def test_internal_bug_is_one_line_unless_verbose(run: Callable[..., Any], scripted: Callable[..., Any]) -> None:
    def bug(op: str, _: Any) -> Any:
        raise ZeroDivisionError("division by zero")

    scripted(bug)
    code, _, err = run("--provider", "fake", "models")
    assert code == EXIT_FAILURE
    assert "internal error: ZeroDivisionError: division by zero" in one_error_line(err)
    code, _, err = run("-v", "--provider", "fake", "models")
    assert code == EXIT_FAILURE and "Traceback" in err  # -v asks for it


def test_ctrl_c_exits_130_quietly(run: Callable[..., Any], scripted: Callable[..., Any]) -> None:
    def interrupted(op: str, _: Any) -> Any:
        raise KeyboardInterrupt

    built = scripted(interrupted)
    code, out, err = run("--provider", "fake", "models")
    assert (code, out, err) == (EXIT_INTERRUPTED, "", "")
    assert built[0].closed  # the provider was still closed


# --------------------------------------------------------------------------- keys never shown


def test_verbose_logging_and_errors_never_show_the_key(
    run: Callable[..., Any], scripted: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_API_KEY", FAKE_KEY)

    def leaky(op: str, request: Any) -> Any:
        # A careless library logging the header, and an upstream echoing it back.
        logging.getLogger("urllib3.fake").debug("sending Authorization: Bearer %s", FAKE_KEY)
        logging.getLogger("somelib").debug("key is %s", FAKE_KEY[::-1][::-1])
        raise AuthenticationError(f"key {FAKE_KEY} was rejected", provider="fake", status=401)

    scripted(leaky)
    code, out, err = run("-v", "--provider", "fake", "models")
    assert code == EXIT_FAILURE
    assert "sending Authorization: Bearer ***" in err and "key is ***" in err  # DEBUG really is on
    assert FAKE_KEY not in out + err
    assert FAKE_KEY[9:30] not in out + err


# --------------------------------------------------------------------------- plugin commands


class GreetPlugin:
    """A third-party plugin adding `llmrelay greet` that uses the context to build a provider."""

    @hookimpl
    def llmrelay_register_commands(self, register: Callable[..., None]) -> None:
        def add_arguments(parser: Any) -> None:
            parser.add_argument("who")

        def run(args: Any, context: Any) -> int:
            provider = context.provider()
            reply = provider.execute({"model": "fake/small", "messages": [{"role": "user", "content": args.who}]})
            context.stdout.write(f"greeted via {provider.instance_name}: {reply.text}\n")
            return 7

        register("greet", "say hello through a provider", add_arguments, run)
        register("models", "tries to replace a built-in command", None, run)


class BrokenCommandPlugin:
    @hookimpl
    def llmrelay_register_commands(self, register: Callable[..., None]) -> None:
        raise RuntimeError("cannot register")


def test_plugin_command_runs_with_context(cli_registry: PluginRegistry, capsys: pytest.CaptureFixture[str]) -> None:
    registry = cli_registry
    registry.register(GreetPlugin(), name="greet")
    registry.register(BrokenCommandPlugin(), name="broken-commands")
    code = main(["--provider", "fake", "greet", "world"], registry=registry)
    out, err = capsys.readouterr()
    assert code == 7
    assert out == "greeted via fake: hello: world\n"
    assert "'broken-commands' failed to register its commands: RuntimeError: cannot register" in err
    assert "command name 'models' is empty or already taken" in err
    # the built-in `models` is still the built-in one
    assert main(["--provider", "fake", "models", "small"], registry=registry) == EXIT_OK
    assert "fake/small" in capsys.readouterr().out


def test_plugin_command_listed_in_help(cli_registry: PluginRegistry, capsys: pytest.CaptureFixture[str]) -> None:
    registry = cli_registry
    registry.register(GreetPlugin(), name="greet")
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"], registry=registry)
    assert exit_info.value.code == 0
    assert "say hello through a provider [plugin greet]" in capsys.readouterr().out


def test_importing_the_cli_is_cheap() -> None:
    import subprocess
    import sys

    code = (
        "import sys, llmrelay.core.cli.main; "
        "heavy = [m for m in ('pydantic', 'vcr', 'yaml', 'requests', 'redis', 'pluggy') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


def test_cassette_without_vcrpy_installed_says_what_to_install(
    run: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    import sys

    cassette = tmp_path / "c.yaml"
    cassette.write_text("interactions: []\nversion: 1\n")
    monkeypatch.setitem(sys.modules, "vcr", None)  # as on a machine without the dev extra
    code, _, err = run("--cassette", str(cassette), "--provider", "fake", "models")
    assert code == EXIT_USAGE
    assert (
        one_error_line(err)
        == "llmrelay: error: cassettes need vcrpy: pip install 'llmrelay[dev]' (or pip install vcrpy)"
    )
