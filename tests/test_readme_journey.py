"""A new user's path through README.md: its examples run as written, and a user's mistakes get one clear line.

The Python examples are read from README.md itself and run against a local
FakeOpenRouter: the only change is the one a user makes to point them at a
local server, ``OPENROUTER_BASE_URL`` (and a key the fake accepts). Where an
example's comments state a figure (a cost, a category), the figure is checked.
Then the mistakes a new user makes with ``llmrelay serve`` and ``llmrelay
config``: each is one ``llmrelay: error: ...`` line, no traceback, no secret.
"""

from __future__ import annotations

import ast
import json
import logging
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from llmrelay.core import PluginRegistry, Provider
from llmrelay.core.cli.main import main
from llmrelay.core.config import RelayConfig
from llmrelay.core.errors import ConfigurationError

from tests.support.fake_server import VALID_KEY, FakeOpenRouter, Reply
from tests.support.gateway import GATEWAY_KEY, free_port, start_gateway
from tests.support.openrouter_service import EMBEDDINGS, sample

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
SCRIPT = os.path.join(os.path.dirname(sys.executable), "llmrelay")
AUTH = {"Authorization": f"Bearer {GATEWAY_KEY}"}
CHAT = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}


# --------------------------------------------------------------------------- the README's examples


def readme_blocks(heading: str, language: str = "python") -> list[str]:
    """The ``language`` code blocks of the README section titled ``heading`` (up to the next heading as high)."""
    level = 0
    blocks: list[str] = []
    fence: tuple[str, int, list[str]] | None = None  # (language, indent, lines) of the block being read
    for line in README.splitlines():
        opening = re.match(r"^(\s*)```(\w*)\s*$", line)
        if fence is not None:  # inside a block: a "# comment" there is no heading
            if opening and not opening.group(2):
                if fence[0] == language and level:
                    blocks.append(textwrap.dedent("\n".join(fence[2])))
                fence = None
            else:
                fence[2].append(line[fence[1] :] if line[: fence[1]].isspace() else line)
        elif opening:
            fence = (opening.group(2), len(opening.group(1)), [])
        elif line.startswith("#"):
            depth = len(line) - len(line.lstrip("#"))
            if line[depth:].strip() == heading:
                level = depth
            elif level and depth <= level:
                break
    assert blocks, f"no {language} block under {heading!r}"
    return blocks


def run_example(source: str) -> tuple[list[tuple[str, Any]], dict[str, Any]]:
    """Run an example as a REPL would: the value of each bare expression is kept, with its source.

    Returns those values and the namespace; providers the example left open are closed.
    """
    values: list[tuple[str, Any]] = []

    class Capture(ast.NodeTransformer):
        def visit_Expr(self, node: ast.Expr) -> ast.AST:
            call = node.value
            if isinstance(call, ast.Constant) or (
                isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "print"
            ):
                return node
            show = ast.Call(ast.Name("_keep", ast.Load()), [call, ast.Constant(ast.unparse(call))], [])
            return ast.copy_location(ast.Expr(show), node)

    tree = ast.fix_missing_locations(Capture().visit(ast.parse(source)))
    namespace: dict[str, Any] = {"__name__": "__readme__", "_keep": lambda value, text: values.append((text, value))}
    try:
        exec(compile(tree, "README.md", "exec"), namespace)
    finally:
        for value in list(namespace.values()):
            if isinstance(value, Provider):
                value.close()
    return values, namespace


def value_of(values: list[tuple[str, Any]], text: str) -> Any:
    return next(value for source, value in values if source.startswith(text))


@pytest.fixture(scope="module")
def service() -> Iterator[FakeOpenRouter]:
    with FakeOpenRouter() as server:
        # The README's models: gpt-4o-mini (the fake's own list) and the recorded 2026 list (gpt-4o, claude-sonnet-4).
        server.models_payload = {"data": server.models_payload["data"] + sample("models_2026.json")["data"]}
        server.handle("POST", "/embeddings", lambda request: Reply(status=200, body=EMBEDDINGS))
        yield server


@pytest.fixture
def user(service: FakeOpenRouter, monkeypatch: pytest.MonkeyPatch) -> FakeOpenRouter:
    """A shell with only a key and the local server's URL set, as the README's examples expect."""
    for name in list(os.environ):
        if name.startswith(("OPENROUTER_", "LLMRELAY_", "OPENAI_", "ANTHROPIC_")) or name == "CACHE_DEFAULT_TTL":
            monkeypatch.delenv(name)
    monkeypatch.setenv("OPENROUTER_API_KEY", VALID_KEY)
    monkeypatch.setenv("OPENROUTER_BASE_URL", service.base_url)
    return service


def test_quickstart_example_runs(user: FakeOpenRouter, capsys: pytest.CaptureFixture[str]) -> None:
    (example,) = readme_blocks("Quickstart")
    run_example(example)
    out = capsys.readouterr().out
    assert "Hello there! 0.0000042" in out  # reply.text, reply.usage.cost
    assert "word0 word1" in out and "openai/gpt-4o-mini 0.15" in out  # the stream, then the model list


def test_async_example_runs(user: FakeOpenRouter, capsys: pytest.CaptureFixture[str]) -> None:
    (example,) = readme_blocks("Async")
    run_example(example)
    out = capsys.readouterr().out
    assert str(["Hello there!"] * 5) in out and "word0 word1" in out


def test_embeddings_example_gives_what_its_comments_say(user: FakeOpenRouter) -> None:
    (example,) = readme_blocks("Embeddings")
    values, _ = run_example(example)
    assert value_of(values, "result.embeddings") == [[0.5, 0.75, -0.25], [0.25, -0.5, 0.125]]  # in input order
    assert value_of(values, "result.id").startswith("gen-emb-")
    assert value_of(values, "result.served_by") == "Nebius"
    assert value_of(values, "result.usage.prompt_tokens") == 9
    assert value_of(values, "result.cost") == Decimal("0.00000018")


def test_pricing_example_gives_the_figures_its_comments_say(
    user: FakeOpenRouter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # "the markup configured below": the section's own [plugins.pricing] block, as the config file.
    (markup,) = readme_blocks("Pricing: costs, categories, markup, fallback", "toml")
    config = tmp_path / "llmrelay.toml"
    config.write_text(markup)
    monkeypatch.setenv("LLMRELAY_CONFIG", str(config))
    (example,) = readme_blocks("Pricing: costs, categories, markup, fallback")
    values, _ = run_example(example)
    with_markup, without = (value for source, value in values if source.startswith("pricing.calculate_cost"))
    assert with_markup == Decimal("0.000585") and without == Decimal("0.00045")
    prices = value_of(values, "pricing.per_million")
    assert prices["anthropic/claude-sonnet-4"].prompt_per_million == Decimal("3.9")  # $3 with the 1.3x markup
    assert value_of(values, "pricing.cost_of(reply)").source == "reported"
    assert value_of(values, "calculate_cost(") == Decimal("0.000585")
    assert value_of(values, "catalog.get(") == "Budget"


def test_cache_example_runs(user: FakeOpenRouter) -> None:
    values, _ = run_example(readme_blocks("Caching")[0])
    assert value_of(values, "cache.invalidate_all()") >= 1
    assert value_of(values, "cache.stats()").l1.hits >= 1  # the second opted-in call was a hit


def test_metrics_examples_run(user: FakeOpenRouter, caplog: pytest.LogCaptureFixture) -> None:
    snapshot_example, insights_example, event_example = readme_blocks("Metrics")
    values, _ = run_example(snapshot_example)
    assert value_of(values, "snapshot.get(") > 0  # the p90 latency of the call the example made
    values, _ = run_example(insights_example)
    assert value_of(values, "insights.status") in {"healthy", "degraded", "unhealthy"}
    caplog.set_level("INFO", logger="llmrelay.metrics")
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        run_example(event_example)  # its logging.basicConfig must not outlive the test
    finally:
        root.handlers[:], root.level = handlers, level
    (record,) = [r for r in caplog.records if getattr(r, "llmrelay_event", {}).get("event") == "llmrelay.custom"]
    assert record.getMessage() == "event document_generation duration_ms=1250 success=True pages=3"
    assert record.llmrelay_event == {
        "event": "llmrelay.custom",
        "name": "document_generation",
        "duration_ms": 1250,
        "success": True,
        "pages": 3,
    }


def test_breaker_example_runs(user: FakeOpenRouter) -> None:
    from llmrelay.plugins.breaker import unlisten

    values, _ = run_example(readme_blocks("Circuit breaker")[0])
    try:
        assert value_of(values, "permit.record()") == "success"
    finally:
        unlisten(print)  # the example's listen(print) is process-wide


def test_token_management_examples_run(user: FakeOpenRouter, capsys: pytest.CaptureFixture[str]) -> None:
    clamp_example, rechunk_example = readme_blocks("Token management")
    run_example(clamp_example)
    assert "TokenClamp(field='max_tokens', requested=100000, sent=16384)" in capsys.readouterr().out
    run_example(rechunk_example)
    assert capsys.readouterr().out.splitlines() == ["['Hello ', 'world']", "Hello world"]


# --------------------------------------------------------------------------- llmrelay serve


def serve(config: str, tmp_path: Path, env: dict[str, str], *python_prelude: str) -> subprocess.CompletedProcess[str]:
    """``llmrelay --config FILE serve`` on a free port, expected to stop by itself."""
    path = tmp_path / "llmrelay.toml"
    path.write_text(config)
    command = [SCRIPT, "--config", str(path), "serve", "--port", str(free_port())]
    if python_prelude:  # run the CLI in a Python that first does the prelude (hides a package, say)
        code = "; ".join([*python_prelude, "from llmrelay.core.cli.main import main", "sys.exit(main(sys.argv[1:]))"])
        command = [sys.executable, "-c", f"import sys; {code}", *command[1:]]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)


def user_environment(**extra: str) -> dict[str, str]:
    keep = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("OPENROUTER_", "LLMRELAY_", "ANTHROPIC_", "OPENAI_"))
    }
    return {**keep, "OPENROUTER_API_KEY": VALID_KEY, "LLMRELAY_GATEWAY_KEY": GATEWAY_KEY, **extra}


def test_serve_with_nothing_configured_serves_openrouter_from_the_environment(service: FakeOpenRouter) -> None:
    # The README's "Start it": a key, a gateway key, `llmrelay serve`; no [providers.*] section at all.
    port = free_port()
    env = {"OPENROUTER_API_KEY": VALID_KEY, "OPENROUTER_BASE_URL": service.base_url}
    with start_gateway(f"[gateway]\nport = {port}\napi_keys = [{json.dumps(GATEWAY_KEY)}]\n", port, env=env) as gw:
        assert gw.get("/healthz").json()["providers"] == ["openrouter"]
        reply = requests.post(
            gw.url + "/v1/chat/completions",
            json={"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]},
            headers={"Authorization": f"Bearer {GATEWAY_KEY}"},
            timeout=30,
        )
        assert reply.status_code == 200 and reply.json()["choices"][0]["message"]["content"] == "Hello there!"


def children(pid: int) -> set[int]:
    """The processes whose parent is ``pid`` (Linux /proc)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # ended while being read
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def eventually(check: Callable[[], bool], what: str, limit: float = 20.0) -> None:
    """Poll until ``check()`` holds (what other processes do on their own time)."""
    deadline = time.monotonic() + limit
    while not check():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.05)


def test_a_worker_restarting_leaves_the_workers_sharing_their_figures(service: FakeOpenRouter) -> None:
    # README, "Several workers and machines": without Redis the workers share their figures through a directory
    # the master makes and removes. A worker is a fork of the master's call, so it used to remove it as it exited.
    port = free_port()
    config = (
        f'[providers.openrouter]\napi_key = "{VALID_KEY}"\nbase_url = "{service.base_url}"\n'
        f"[gateway]\nport = {port}\nworkers = 2\npublish_interval = 0.05\napi_keys = [{json.dumps(GATEWAY_KEY)}]\n"
    )
    with start_gateway(config, port) as gateway:
        eventually(lambda: len(children(gateway.process.pid)) == 2, "two workers")
        first = children(gateway.process.pid)
        os.kill(min(first), signal.SIGTERM)  # gunicorn starts another in its place
        eventually(
            lambda: len(children(gateway.process.pid) - first) == 1 and len(children(gateway.process.pid)) == 2,
            "the worker replaced",
        )
        for _ in range(12):  # a new connection each, so both workers get some
            reply = gateway.post("/v1/chat/completions", CHAT, headers=AUTH)
            assert reply.status_code == 200
        eventually(
            lambda: gateway.get("/api/performance", headers=AUTH).json()["metrics"]["requestCount"] == 12,
            "both workers' calls counted in /api/performance",
        )
        assert "cannot publish" not in gateway.stderr()


SECRET = "sk-or-v1-user-secret-4b7e0c2d9a1f"
PROVIDER = '[providers.openrouter]\napi_key = "${OPENROUTER_API_KEY}"\n'


@pytest.mark.parametrize(
    ("config", "env", "expected"),
    [
        ("[providers.openrouter]\n", {"OPENROUTER_API_KEY": ""}, "providers.openrouter.api_key: required, but not set"),
        (PROVIDER, {"OPENROUTER_TIMEOUT__READ": "abc"}, "OPENROUTER_TIMEOUT__READ): Input should be a valid number"),
        (PROVIDER + "[plugins.cahce]\n", {}, "Did you mean [plugins.cache]?"),
        (PROVIDER + "[providers.openrouter.timeout]\nraed = 5\n", {}, "timeout.raed: unknown setting"),
        (PROVIDER + '[gateway]\nrouting = [{ sufix = "-x" }]\n', {}, "routing rule #1"),
        ('default_provider = "openruoter"\n', {}, "Did you mean 'openrouter'?"),
        ("", {"LLMRELAY_CAHCE__BACKEND": "redis"}, "Did you mean LLMRELAY_CACHE__...?"),
    ],
    ids=["missing-key", "bad-variable", "typo-plugin", "typo-setting", "bad-rule", "unknown-provider", "typo-variable"],
)
def test_serve_reports_a_config_mistake_in_one_line_before_starting(
    config: str, env: dict[str, str], expected: str, tmp_path: Path
) -> None:
    done = serve(config, tmp_path, {**user_environment(OPENROUTER_API_KEY=SECRET), **env})
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("llmrelay: error: ") and done.stderr.count("\n") == 1, done.stderr
    assert expected in done.stderr
    assert "Traceback" not in done.stderr and "listening" not in done.stderr  # gunicorn never started
    assert SECRET not in done.stderr and GATEWAY_KEY not in done.stderr


def test_a_worker_that_cannot_build_its_providers_stops_the_gateway_with_one_line(tmp_path: Path) -> None:
    # What the check before the fork cannot see: a layer's missing optional dependency, found when it is built.
    env = user_environment(LLMRELAY_CACHE__BACKEND="redis")
    done = serve(PROVIDER, tmp_path, env, "sys.modules['redis'] = None")
    assert done.returncode == 4, done.stderr  # gunicorn: the application failed to load
    assert "llmrelay: error: plugins.cache.backend = 'redis' needs the redis package" in done.stderr
    assert "Traceback" not in done.stderr


def test_gateway_redis_url_without_redis_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from llmrelay.core.gateway.settings import gateway_settings

    monkeypatch.setitem(sys.modules, "redis", None)  # as if the redis extra were not installed
    config = RelayConfig(source="llmrelay.toml", gateway={"api_keys": ["k"], "redis_url": "redis://127.0.0.1:6379/0"})
    with pytest.raises(ConfigurationError, match=r"gateway.redis_url is set but the redis package is not installed"):
        gateway_settings(config)


# --------------------------------------------------------------------------- llmrelay config, the cache's settings


def test_config_shows_numbers_whose_names_sound_secret(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("LLMRELAY_CONFIG", raising=False)
    assert main(["config", "--json"], registry=PluginRegistry()) == 0
    plugins = {plugin["name"]: plugin for plugin in json.loads(capsys.readouterr().out)["plugins"]}
    assert plugins["tokens"]["settings"]["bytes_per_token"]["value"] == 4.0  # a ratio, not a token


def test_a_bad_cache_default_ttl_is_reported_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from llmrelay.core.config import effective_plugin_settings

    monkeypatch.setenv("LLMRELAY_CACHE__DEFAULT_TTL", "-5")
    with pytest.raises(ConfigurationError) as caught:
        effective_plugin_settings(config={})
    assert str(caught.value).count("greater than 0") == 1  # not once more per chat operation it would fill in
    assert "plugins.cache.default_ttl (from environment variable LLMRELAY_CACHE__DEFAULT_TTL)" in str(caught.value)


def test_a_program_that_never_closes_its_provider_exits_after_stopping_the_refresh_thread() -> None:
    # A daemon thread still running Python when the interpreter finalizes can abort the process (in pydantic-core,
    # "FATAL: exception not rethrown"); atexit stops the cache's refresh thread before that. Handlers run last
    # registered first, so the one registered here, before llmrelay is imported, sees the state after llmrelay's.
    code = textwrap.dedent(
        """
        import atexit, threading
        atexit.register(lambda: print("refresh threads at exit:", [t.name for t in threading.enumerate()
                                                                   if t.name.startswith("llmrelay-cache")]))
        from llmrelay.plugins.cache.refresher import Refresher
        started = threading.Event()
        refresher = Refresher(clock=lambda: 0.0, background=True)
        refresher.schedule("k", 0.0, started.set)
        started.wait(10)
        print("started:", started.is_set())
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["started: True", "refresh threads at exit: []"]
