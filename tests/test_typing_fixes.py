"""Bugs ``mypy --strict`` found, each pinned by what a user would have seen."""

from __future__ import annotations

import importlib
import json
import types
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import pytest
from llmrelay.core.compose.tools import ToolRegistry
from llmrelay.core.errors import CircuitOpenError, ServerError
from llmrelay.core.models import FunctionCall, ToolCall
from pydantic import Field

from tests.support.clock import FakeClock
from tests.support.redis_fixture import REDIS_URL, redis_client, redis_namespace

__all__ = ["redis_client", "redis_namespace"]  # fixtures, imported to be found by pytest


# --------------------------------------------------------------------------- tools: arguments json cannot decode


def _add_tool() -> ToolRegistry:
    tools = ToolRegistry()

    @tools.tool
    def add(a: int, b: int = 0) -> int:
        return a + b

    return tools


@pytest.mark.parametrize(
    "arguments, text",
    [
        # Valid JSON, but longer than int() converts (sys.get_int_max_str_digits): a
        # ValueError that is not a JSONDecodeError, which has no .msg / .pos.
        ('{"a": ' + "1" * 5000 + "}", "Exceeds the limit"),
        # Nested deeper than the decoder's recursion allows: RecursionError.
        ("[" * 100_000, "maximum recursion depth"),
    ],
    ids=["integer-too-long", "nesting-too-deep"],
)
def test_arguments_json_cannot_decode_are_an_error_result_not_an_exception(arguments: str, text: str) -> None:
    # The model wrote them; one bad call must not end the agent's turn, and
    # the other calls of the turn still answer.
    with _add_tool() as tools:
        bad, good = tools.execute_results(
            [
                ToolCall(id="c1", function=FunctionCall(name="add", arguments=arguments)),
                ToolCall(id="c2", function=FunctionCall(name="add", arguments='{"a": 1, "b": 2}')),
            ]
        )
    assert bad.is_error and bad.error_type == "invalid_arguments"
    message = json.loads(bad.content)["error"]["message"]
    assert message.startswith("arguments for 'add' cannot be decoded (") and text in message
    assert not good.is_error and good.content == "3"


def test_invalid_json_arguments_still_say_where() -> None:
    with _add_tool() as tools:
        result = tools.run("add", '{"a": 1,')
    assert json.loads(result.content)["error"]["message"] == (
        "arguments for 'add' are not valid JSON (Expecting property name enclosed in double quotes at position 8)"
    )


def test_run_by_name_builds_a_real_tool_call() -> None:
    with _add_tool() as tools:
        assert tools.run("add", {"a": 2, "b": 3}).content == "5"
        assert tools.run("add", '{"a": 4}').content == "4"


def test_annotated_description_keeps_the_other_metadata() -> None:
    # Built without star-unpacking in a subscript (Python 3.11 syntax to mypy).
    from llmrelay.core.compose.tools import schema_from_function

    def pick(count: Annotated[int, "how many", Field(ge=1, le=5)], tag: Annotated[str, Field(max_length=3)] = "a"):
        return count

    schema = schema_from_function(pick)
    assert schema["properties"]["count"] == {"type": "integer", "description": "how many", "minimum": 1, "maximum": 5}
    assert schema["properties"]["tag"] == {"type": "string", "maxLength": 3, "default": "a"}
    with ToolRegistry() as tools:
        tools.register(pick)
        assert tools.run("pick", {"count": 2}).content == "2"
        assert "count: Input should be less than or equal to 5" in tools.run("pick", {"count": 9}).content


# --------------------------------------------------------------------------- metrics settings


def test_metrics_settings_built_without_validation_have_a_grade_model() -> None:
    from llmrelay.plugins.metrics.settings import GradeThresholds, MetricsSettings

    # model_construct runs default factories without validating their result:
    # the default was a dict, so .grade.latency_seconds failed.
    grade = MetricsSettings.model_construct().grade
    assert isinstance(grade, GradeThresholds) and grade == GradeThresholds()
    assert MetricsSettings().grade == GradeThresholds()
    assert MetricsSettings(grade={"min_requests": 5}).grade.min_requests == 5


# --------------------------------------------------------------------------- pricing: the built-in model list


class _OneChildTraversable:
    """A resource folder as Python 3.10 defines Traversable: ``joinpath`` takes one child.

    3.10's own namespace-package reader (MultiplexedPath) is one; a zip or
    frozen install may use another.
    """

    def __init__(self, path: Path) -> None:
        self._path = path

    def joinpath(self, child: str) -> _OneChildTraversable:
        return _OneChildTraversable(self._path / child)

    def __truediv__(self, child: str) -> _OneChildTraversable:
        return self.joinpath(child)

    def read_text(self, encoding: str | None = None) -> str:
        return self._path.read_text(encoding)


def test_the_fallback_model_list_loads_through_a_python_310_traversable(monkeypatch: pytest.MonkeyPatch) -> None:
    from llmrelay.providers import openrouter_models

    package = Path(str(resources.files("llmrelay.providers")))

    def files(name: str) -> _OneChildTraversable:
        assert name == "llmrelay.providers"
        return _OneChildTraversable(package)

    monkeypatch.setattr(openrouter_models, "resources", types.SimpleNamespace(files=files))
    listing = openrouter_models.load_fallback_models()
    assert listing.fallback and len(listing) > 100
    assert listing.get("openai/gpt-4o-mini") is not None


# --------------------------------------------------------------------------- breaker: Redis as the SharedState


@pytest.mark.redis
def test_breaker_boards_share_state_through_redis_as_the_shared_state_protocol(
    redis_client: Any, redis_namespace: str
) -> None:
    from llmrelay.plugins.breaker import BreakerBoard, BreakerSettings, CircuitState, SharedState
    from llmrelay.plugins.breaker.shared import RedisSharedState

    settings = BreakerSettings(failure_threshold=2, reset_timeout=30.0, redis_sync_interval=0.5)
    clock = FakeClock()
    prefix = f"{redis_namespace}:breaker"

    def board() -> BreakerBoard:
        shared: SharedState = RedisSharedState(REDIS_URL, prefix=prefix, clock=clock)  # as the board takes it
        return BreakerBoard("upstream", settings, clock=clock, shared=shared)

    first, second = board(), board()
    try:
        second.get().acquire().record(None)  # second has read the shared state once
        for _ in range(2):
            first.get().acquire().record(ServerError("down", status=503))
        assert first.get().state is CircuitState.OPEN
        assert redis_client.get(f"{prefix}:upstream") == b"open"
        clock.now += 0.5  # second's next read of the shared state is due
        with pytest.raises(CircuitOpenError) as info:
            second.get().acquire()
        assert 0 < info.value.retry_after <= 30.0  # the key's TTL in Redis
        assert second.get().state is CircuitState.OPEN
        assert [event["reason"] for event in second.drain_events()] == ["opened by another instance"]
    finally:
        first.close()
        second.close()


# --------------------------------------------------------------------------- the CLI's public names


def test_command_context_is_importable_from_the_cli_package_and_its_old_module() -> None:
    from llmrelay.core import cli
    from llmrelay.core.cli.context import CommandContext

    cli_main = importlib.import_module("llmrelay.core.cli.main")  # the package's `main` is the function

    assert cli.CommandContext is cli_main.CommandContext is CommandContext
    assert cli.main is cli_main.main
