"""The model <-> tools loop, streamed and not, over a scripted provider."""

from __future__ import annotations

import json

import pytest
from llmrelay.core import (
    ChatResponse,
    ChatStream,
    ConfigurationError,
    FunctionCall,
    Message,
    StreamChunk,
    ToolCall,
    ToolCallDelta,
    create_provider,
)
from llmrelay.core.compose.agent import iter_agent, run_agent
from llmrelay.core.compose.tools import ToolRegistry

REQUEST = {"model": "m", "messages": [{"role": "user", "content": "weather in Paris and Rome?"}]}


@pytest.fixture
def tools() -> ToolRegistry:
    registry = ToolRegistry()

    @registry.tool
    def weather(city: str) -> dict:
        """Current weather."""
        return {"city": city, "temp": len(city)}

    return registry


def model_that_calls_tools(turns_with_tools: int, stream: bool):
    """A script: ask for two weather calls per turn for N turns, then answer from the results."""

    def script(operation, request):
        turn = sum(1 for m in request.messages if m.role == "assistant")
        if turn < turns_with_tools:
            calls = [(f"c{turn}_{i}", city) for i, city in enumerate(["Paris", "Rome"])]
            if stream:

                def chunks():
                    yield StreamChunk(text="Let me check. ")
                    for index, (cid, city) in enumerate(calls):
                        yield StreamChunk(tool_calls=[ToolCallDelta(index, id=cid, name="weather")])
                        args = json.dumps({"city": city})
                        yield StreamChunk(tool_calls=[ToolCallDelta(index, arguments=args[:5])])
                        yield StreamChunk(tool_calls=[ToolCallDelta(index, arguments=args[5:])])
                    yield StreamChunk(finish_reason="tool_calls")

                return ChatStream(chunks(), provider="fake")
            return ChatResponse(
                message=Message.assistant(
                    tool_calls=[
                        ToolCall(id=cid, function=FunctionCall(name="weather", arguments=json.dumps({"city": city})))
                        for cid, city in calls
                    ]
                ),
                finish_reason="tool_calls",
            )
        results = [json.loads(m.content) for m in request.messages if m.role == "tool"]
        answer = ", ".join(f"{r['city']} {r['temp']}" for r in results)
        if stream:
            return ChatStream(iter([StreamChunk(text=answer), StreamChunk(finish_reason="stop")]), provider="fake")
        return ChatResponse(message=Message.assistant(answer), finish_reason="stop")

    return script


@pytest.mark.parametrize("stream", [False, True])
def test_loop_runs_tools_and_returns_the_answer(registry, tools, stream):
    provider = create_provider("fake", registry=registry, plugins=False)
    provider.script = model_that_calls_tools(1, stream)
    seen = []

    result = run_agent(provider, REQUEST, tools, stream=stream, on_chunk=seen.append)

    assert result.finished and result.turns == 2
    assert result.text == "Paris 5, Rome 4"
    assert [m.role for m in result.messages] == ["user", "assistant", "tool", "tool", "assistant"]
    assert [m.tool_call_id for m in result.messages if m.role == "tool"] == ["c0_0", "c0_1"]
    # The model saw the registry's tool definitions.
    first_request = provider.calls[0][1]
    assert [t.function.name for t in first_request.tools] == ["weather"]
    assert bool(seen) is stream


def test_turn_limit_stops_a_model_that_keeps_calling_tools(registry, tools):
    provider = create_provider("fake", registry=registry, plugins=False)
    provider.script = model_that_calls_tools(10, stream=False)

    result = run_agent(provider, REQUEST, tools, max_turns=3)

    assert not result.finished
    assert result.turns == 3 and len(provider.calls) == 3
    assert len(result.tool_results) == 6


def test_events_arrive_in_order(registry, tools):
    provider = create_provider("fake", registry=registry, plugins=False)
    provider.script = model_that_calls_tools(1, stream=True)

    kinds = []
    for event in iter_agent(provider, REQUEST, tools):
        kind = next(k for k in ("chunk", "response", "tool_result", "result") if getattr(event, k) is not None)
        if not kinds or kinds[-1] != kind:
            kinds.append(kind)
    assert kinds == ["chunk", "response", "tool_result", "chunk", "response", "result"]


def test_max_turns_must_be_positive(registry, tools):
    provider = create_provider("fake", registry=registry, plugins=False)
    with pytest.raises(ConfigurationError, match="max_turns"):
        run_agent(provider, REQUEST, tools, max_turns=0)
