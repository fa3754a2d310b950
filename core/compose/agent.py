"""The model <-> tools loop: ask, run the tools it calls, send the results back, repeat.

::

    result = run_agent(provider, {"model": ..., "messages": [...]}, tools, max_turns=6)
    result.response.text       # the final answer
    result.messages            # the whole conversation, tool calls and results included
    result.finished            # False if the turn limit stopped a model that still wanted tools

    # streaming: text as it arrives, tool results as they are ready
    for event in iter_agent(provider, request, tools):
        if event.chunk is not None:
            print(event.chunk.text, end="")

Each turn sends the conversation with the registry's tool definitions
(unless the request names its own ``tools``); the tool calls of one turn run
in parallel through :meth:`ToolRegistry.execute_results`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from ..errors import ConfigurationError
from ..models import ChatRequest, ChatResponse, Message
from ..provider import CallOptions, Provider, RequestLike
from ..stream import StreamChunk
from .tools import ToolRegistry, ToolResult

__all__ = ["AgentEvent", "AgentResult", "iter_agent", "run_agent"]


@dataclass(slots=True)
class AgentEvent:
    """One thing that happened in the loop; exactly one field besides ``turn`` is set."""

    turn: int
    chunk: StreamChunk | None = None  # streamed model output
    response: ChatResponse | None = None  # a model turn finished
    tool_result: ToolResult | None = None  # a tool call finished
    result: AgentResult | None = None  # the loop ended (the last event)


@dataclass(slots=True)
class AgentResult:
    response: ChatResponse  # the last model response
    messages: list[Message]  # the request's messages plus every turn's
    turns: int  # model calls made
    finished: bool  # the model answered without asking for more tools
    tool_results: list[ToolResult] = field(default_factory=list)

    @property
    def text(self) -> str:
        return self.response.text


def iter_agent(
    provider: Provider,
    request: RequestLike,
    tools: ToolRegistry,
    *,
    max_turns: int = 8,
    stream: bool = True,
    options: CallOptions | None = None,
) -> Iterator[AgentEvent]:
    """Run the loop, yielding chunks (when streaming), responses and tool results as they happen."""
    if max_turns < 1:
        raise ConfigurationError(f"max_turns must be at least 1, got {max_turns}")
    chat = ChatRequest.coerce(request)
    if chat.tools is None and len(tools):
        chat = chat.model_copy(update={"tools": tools.definitions()})
    messages = list(chat.messages)
    all_results: list[ToolResult] = []
    for turn in range(1, max_turns + 1):
        turn_request = chat.model_copy(update={"messages": messages})
        if stream:
            with provider.stream_execute(turn_request, options=options) as chat_stream:
                for chunk in chat_stream:
                    yield AgentEvent(turn, chunk=chunk)
                response = chat_stream.final_response()
        else:
            response = provider.execute(turn_request, options=options)
        yield AgentEvent(turn, response=response)
        messages.append(response.message)
        if not response.tool_calls:
            yield AgentEvent(turn, result=AgentResult(response, messages, turn, True, all_results))
            return
        results = tools.execute_results(response.tool_calls)
        for result in results:
            yield AgentEvent(turn, tool_result=result)
        all_results.extend(results)
        messages.extend(result.message for result in results)
    yield AgentEvent(max_turns, result=AgentResult(response, messages, max_turns, False, all_results))


def run_agent(
    provider: Provider,
    request: RequestLike,
    tools: ToolRegistry,
    *,
    max_turns: int = 8,
    stream: bool = False,
    on_chunk: Callable[[StreamChunk], None] | None = None,
    options: CallOptions | None = None,
) -> AgentResult:
    """Run the loop to the end and return the result; ``on_chunk`` sees streamed text."""
    for event in iter_agent(provider, request, tools, max_turns=max_turns, stream=stream, options=options):
        if event.chunk is not None and on_chunk is not None:
            on_chunk(event.chunk)
        if event.result is not None:
            return event.result
    raise AssertionError("iter_agent always ends with a result event")  # pragma: no cover
