"""The gateway over recorded real OpenRouter traffic: ``llmrelay --cassette ... serve``, the openai SDK as client.

The cassette's requests match on method, URL and JSON body, so this also
shows that what the gateway sends upstream for an SDK's request is exactly
what a direct client sent when the traffic was recorded.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.support.gateway import GATEWAY_KEY, RunningGateway, free_port, start_gateway

CASSETTE = Path(__file__).resolve().parent.parent / "cassettes" / "openrouter" / "tool_calls_stream_2025-08.yaml"


@pytest.fixture
def gateway() -> Iterator[RunningGateway]:
    port = free_port()
    config = textwrap.dedent(
        f"""
        default_provider = "openrouter"
        [providers.openrouter]
        api_key = "sk-or-v1-replay-placeholder-0000000000000000"
        retry = {{ max_attempts = 1 }}
        [plugins.cache]
        warm_up = []
        [gateway]
        api_keys = ["{GATEWAY_KEY}"]
        port = {port}
        """
    )
    with start_gateway(config, port, replay=str(CASSETTE)) as running:
        yield running


def test_recorded_tool_call_stream_across_two_turns(gateway: RunningGateway) -> None:
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=GATEWAY_KEY, max_retries=0)
    tools: Any = [
        {
            "type": "function",
            "function": {
                "name": "llm_version",
                "description": "Return the installed version of llm",
                "parameters": {"properties": {}, "type": "object"},
            },
        }
    ]
    question = {"role": "user", "content": "What is the current llm version?"}
    with client.chat.completions.stream(
        model="openai/gpt-4.1-mini", messages=[question], tools=tools, stream_options={"include_usage": True}
    ) as stream:
        first = stream.get_final_completion()
    (call,) = first.choices[0].message.tool_calls or []
    assert (call.id, call.function.name, call.function.arguments) == (
        "call_o4OCgtJrNoZTmoCRvmlfoHfj",
        "llm_version",
        "{}",
    )  # type: ignore[union-attr]
    assert first.choices[0].finish_reason == "tool_calls"
    assert first.usage is not None and first.usage.total_tokens > 0
    messages: Any = [
        question,
        {
            "role": "assistant",
            "tool_calls": [{"id": call.id, "type": "function", "function": {"name": "llm_version", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": call.id, "content": "0.0+test"},
    ]
    with client.chat.completions.stream(
        model="openai/gpt-4.1-mini", messages=messages, tools=tools, stream_options={"include_usage": True}
    ) as stream:
        answer = stream.get_final_completion()
    assert "0.0+test" in (answer.choices[0].message.content or "")
    assert answer.choices[0].finish_reason == "stop"
    assert json.loads(answer.model_dump_json())["id"].startswith("gen-")
