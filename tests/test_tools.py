"""Tool registry: schemas from type hints, parallel execution, dedup, cache, timeout, breaker."""

from __future__ import annotations

import json
import threading
from typing import Annotated, Literal

import pytest
from llmrelay.core import ConfigurationError, FunctionCall, ToolCall
from llmrelay.core.compose.tools import ToolRegistry, schema_from_function
from pydantic import BaseModel

from tests.support.clock import FakeClock


def call(name: str, arguments: dict | str, call_id: str | None = None) -> ToolCall:
    raw = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return ToolCall(id=call_id or f"call_{name}_{raw}", function=FunctionCall(name=name, arguments=raw))


class Address(BaseModel):
    street: str
    city: str


def test_schema_from_type_hints():
    def find(
        query: Annotated[str, "what to look for"],
        limit: int = 10,
        unit: Literal["C", "F"] = "C",
        tags: list[str] | None = None,
        near: Address | None = None,
    ) -> list[str]:
        """Search the index.

        Longer text that is not part of the description.
        """
        return []

    schema = schema_from_function(find)
    props = schema["properties"]
    assert schema["type"] == "object"
    assert schema["required"] == ["query"]
    assert props["query"] == {"type": "string", "description": "what to look for"}
    assert props["limit"] == {"type": "integer", "default": 10}
    assert props["unit"]["enum"] == ["C", "F"]
    assert "title" not in json.dumps(props["query"])

    tools = ToolRegistry()
    spec = tools.register(find)
    definition = tools.definitions()[0]
    assert definition.function.name == "find"
    assert definition.function.description == "Search the index."
    assert definition.function.parameters == spec.parameters


def test_results_come_back_in_call_order_as_tool_messages():
    tools = ToolRegistry()

    @tools.tool
    def add(a: int, b: int) -> int:
        return a + b

    @tools.tool
    def shout(text: str) -> dict:
        return {"text": text.upper()}

    messages = tools.execute([call("shout", {"text": "hi"}, "c1"), call("add", {"a": 2, "b": 3}, "c2")])

    assert [(m.role, m.tool_call_id, m.name, m.content) for m in messages] == [
        ("tool", "c1", "shout", '{"text": "HI"}'),
        ("tool", "c2", "add", "5"),
    ]


def test_calls_of_one_turn_run_concurrently():
    # Each call waits at a barrier for all the others: run one after another,
    # the first would wait alone and time out, turning every result into an error.
    barrier = threading.Barrier(4, timeout=5)
    tools = ToolRegistry(max_workers=8)

    @tools.tool
    def meet(n: int) -> int:
        barrier.wait()
        return n

    results = tools.execute_results([call("meet", {"n": n}) for n in range(4)])

    assert [r.content for r in results] == ["0", "1", "2", "3"]
    assert not any(r.is_error for r in results)


def test_identical_calls_run_once_and_share_the_result():
    tools = ToolRegistry()
    runs = []

    @tools.tool
    def lookup(key: str, exact: bool = True) -> str:
        runs.append(key)
        return f"value of {key}"

    results = tools.execute_results(
        [
            call("lookup", '{"key": "a", "exact": true}', "c1"),
            call("lookup", '{"exact": true, "key": "a"}', "c2"),  # same call, keys in another order
            call("lookup", {"key": "b"}, "c3"),
        ]
    )

    assert sorted(runs) == ["a", "b"]
    assert [r.call_id for r in results] == ["c1", "c2", "c3"]
    assert [r.deduplicated for r in results] == [False, True, False]
    assert results[0].content == results[1].content == "value of a"


def test_identical_call_in_flight_in_another_thread_is_shared():
    tools = ToolRegistry()
    entered, release = threading.Event(), threading.Event()
    runs = []

    @tools.tool
    def slow(x: int) -> int:
        runs.append(x)
        entered.set()
        release.wait(5)
        return x * 2

    first: list = []
    worker = threading.Thread(target=lambda: first.extend(tools.execute([call("slow", {"x": 1})])))
    worker.start()
    assert entered.wait(5)
    second: list = []
    other = threading.Thread(target=lambda: second.extend(tools.execute([call("slow", {"x": 1})])))
    other.start()
    for _ in range(500):  # let the second thread reach the running call before it finishes
        if tools.stats("slow")["joined"]:
            break
        threading.Event().wait(0.01)
    release.set()
    worker.join(5)
    other.join(5)

    assert runs == [1]
    assert tools.stats("slow")["joined"] == 1
    assert first[0].content == second[0].content == "2"


def test_failing_tool_becomes_an_error_result_the_model_can_read():
    tools = ToolRegistry()

    @tools.tool
    def explode(city: str) -> str:
        raise ValueError(f"no weather station in {city}")

    @tools.tool
    def fine() -> str:
        return "ok"

    results = tools.execute_results([call("explode", {"city": "Atlantis"}), call("fine", {})])

    assert results[0].is_error and results[0].error_type == "tool_error"
    assert isinstance(results[0].exception, ValueError)
    assert json.loads(results[0].content) == {
        "error": {"type": "tool_error", "message": "ValueError: no weather station in Atlantis"}
    }
    assert results[1].content == "ok" and not results[1].is_error


def test_tool_error_text_does_not_leak_keys():
    tools = ToolRegistry()

    @tools.tool
    def leak() -> str:
        raise RuntimeError("auth failed for Bearer sk-or-v1-0123456789abcdef0123456789")

    result = tools.run("leak")
    assert "sk-or-v1" not in result.content and "***" in result.content


@pytest.mark.parametrize(
    "name, arguments, kind, text",
    [
        ("nope", "{}", "unknown_tool", "no tool named 'nope'; available tools: add"),
        ("add", "{not json", "invalid_arguments", "not valid JSON"),
        ("add", "[1, 2]", "invalid_arguments", "must be a JSON object"),
        ("add", '{"a": 1}', "invalid_arguments", "b: Field required"),
        ("add", '{"a": "x", "b": 2}', "invalid_arguments", "a: Input should be a valid integer"),
    ],
)
def test_bad_calls_become_error_results(name, arguments, kind, text):
    tools = ToolRegistry()

    @tools.tool
    def add(a: int, b: int) -> int:
        return a + b

    result = tools.execute_results([call(name, arguments)])[0]
    assert result.error_type == kind
    assert text in json.loads(result.content)["error"]["message"]


def test_hand_written_schema_is_used_and_arguments_bound():
    tools = ToolRegistry()
    schema = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}

    def search(**kwargs):
        return kwargs

    def echo(q):
        return q

    tools.register(search, parameters=schema)
    tools.register(echo, parameters=schema, name="echo-tool")
    assert tools.definitions(["search"])[0].function.parameters == schema
    assert tools.run("search", {"q": "x"}).content == '{"q": "x"}'
    assert tools.run("echo-tool", {"zzz": 1}).error_type == "invalid_arguments"


def test_timeout_gives_an_error_result_and_the_rest_still_answer():
    tools = ToolRegistry()
    release = threading.Event()

    @tools.tool(timeout=0.05)
    def hang() -> str:
        release.wait(5)
        return "late"

    @tools.tool
    def quick() -> str:
        return "quick"

    try:
        results = tools.execute_results([call("hang", {}), call("quick", {})])
    finally:
        release.set()
    assert results[0].error_type == "timeout"
    assert "did not finish within 0.05 seconds" in results[0].content
    assert results[1].content == "quick"
    assert tools.stats("hang")["failures"] == 1


def test_cache_ttl_with_a_fake_clock():
    clock = FakeClock(1000.0)
    tools = ToolRegistry(clock=clock)
    runs = []

    @tools.tool(cache_ttl=60)
    def price(symbol: str) -> float:
        runs.append(symbol)
        return 1.5

    assert not tools.run("price", {"symbol": "X"}).cached
    clock.now += 59
    assert tools.run("price", {"symbol": "X"}).cached
    assert not tools.run("price", {"symbol": "Y"}).cached
    clock.now += 2
    assert not tools.run("price", {"symbol": "X"}).cached
    assert runs == ["X", "Y", "X"]
    assert tools.stats("price") == {"calls": 3, "failures": 0, "cache_hits": 1, "joined": 0}


def test_failures_are_not_cached():
    tools = ToolRegistry()
    outcomes = [RuntimeError("down"), "up"]

    @tools.tool(cache_ttl=60)
    def flaky() -> str:
        item = outcomes.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    assert tools.run("flaky").is_error
    assert tools.run("flaky").content == "up"


def test_breaker_opens_after_consecutive_failures_and_probes_after_cooldown():
    clock = FakeClock(1000.0)
    tools = ToolRegistry(clock=clock)
    healthy = {"value": False}
    runs = []

    @tools.tool(breaker_threshold=2, breaker_cooldown=30)
    def backend(n: int) -> str:
        runs.append(n)
        if not healthy["value"]:
            raise ConnectionError("backend down")
        return "fine"

    assert tools.run("backend", {"n": 1}).error_type == "tool_error"
    assert tools.run("backend", {"n": 2}).error_type == "tool_error"
    rejected = tools.run("backend", {"n": 3})
    assert rejected.error_type == "unavailable"
    assert "try again in 30 seconds" in rejected.content
    assert runs == [1, 2]

    clock.now += 31
    assert tools.run("backend", {"n": 4}).error_type == "tool_error"  # the probe fails: open again
    assert tools.run("backend", {"n": 5}).error_type == "unavailable"
    clock.now += 31
    healthy["value"] = True
    assert tools.run("backend", {"n": 6}).content == "fine"  # the probe succeeds: closed
    assert tools.run("backend", {"n": 7}).content == "fine"
    assert runs == [1, 2, 4, 6, 7]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"cache_ttl": 0}, "cache_ttl must be > 0"),
        ({"timeout": -1}, "timeout must be > 0"),
        ({"breaker_threshold": -1}, "breaker_threshold"),
        ({"name": "has space"}, "not valid"),
        ({"parameters": {"type": "array"}}, "type 'object'"),
    ],
)
def test_bad_registration_is_a_clear_error(kwargs, message):
    with pytest.raises(ConfigurationError, match=message):
        ToolRegistry().register(lambda: None, **{"name": "t", **kwargs})


def test_duplicate_names_are_rejected():
    tools = ToolRegistry()
    tools.register(lambda: 1, name="one")
    with pytest.raises(ConfigurationError, match="already registered"):
        tools.register(lambda: 2, name="one")
