"""OpenRouterProvider against real recorded OpenRouter traffic, replayed with record mode "none".

The cassettes (cassettes/openrouter/, see its README) were recorded by other
clients. Bodies are matched as JSON, so each test sends exactly the fields the
recorder sent, passing its extras (``n``, ``stream``, ``stream_options``)
through ``extra_body``. The one field left out of matching is ``usage``:
llmrelay always sends ``usage: {"include": true}`` and most recorders did not.
A request the cassette does not hold fails the test.

Re-record against the live service (network and a real key needed; this
replaces the third-party recordings with your own, so update
cassettes/README.md)::

    OPENROUTER_API_KEY=sk-or-v1-... LLMRELAY_RECORD=1 pytest tests/test_openrouter_replay.py
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from llmrelay.core import RateLimitError, StreamInterruptedError
from llmrelay.core.cli.cassettes import mode_from_env, use_cassette

openrouter = pytest.importorskip("llmrelay.providers.openrouter")

CASSETTES = Path(__file__).resolve().parent.parent / "cassettes" / "openrouter"
PLACEHOLDER_KEY = "replay-placeholder"
M = Decimal(1_000_000)


@contextmanager
def replay(name: str, *, not_requested: tuple[int, ...] = (), match_usage: bool = False) -> Iterator[Any]:
    """Replay ``name``; on a clean exit every interaction but ``not_requested`` must have been played."""
    ignored = () if match_usage else ("usage",)
    secrets = [os.environ.get("OPENROUTER_API_KEY", "")]
    with use_cassette(CASSETTES / name, mode_from_env(), ignore_body_fields=ignored, secrets=secrets) as cassette:
        yield cassette
        if mode_from_env() == "none":
            played = {index for index, count in cassette.play_counts.items() if count}
            expected = set(range(len(cassette))) - set(not_requested)
            assert played == expected, f"{name}: played {sorted(played)}, expected {sorted(expected)}"


class Sleeps(list[float]):
    """An injected sleep: records the waits, never waits."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def provider(sleeps: Sleeps) -> Iterator[Any]:
    key = PLACEHOLDER_KEY  # replay: the key is not part of matching and never sent anywhere
    if mode_from_env() != "none":
        key = os.environ.get("OPENROUTER_API_KEY", "")
        if not key:
            pytest.fail("re-recording (LLMRELAY_RECORD) needs a real OPENROUTER_API_KEY")
    with openrouter.OpenRouterProvider(api_key=key, sleep=sleeps) as p:
        yield p


# --------------------------------------------------------------------------- list_models, three vintages


def test_models_2024_shape_with_modality_string(provider: Any) -> None:
    with replay("image_prompt_stream_2024-11.yaml", not_requested=(1,)):  # (1 is the chat: another test)
        models = provider.list_models()
    assert len(models) == 194
    sonnet = models.get("anthropic/claude-3.5-sonnet")
    assert sonnet is not None
    assert sonnet.supports_images and sonnet.output_modalities == ["text"]  # parsed from "text+image->text"
    assert sonnet.pricing.prompt_per_million == Decimal("3") and sonnet.pricing.completion_per_million == Decimal("15")


def test_models_2025_full_list_with_variable_and_free_prices(provider: Any) -> None:
    with replay("models_2025-04.yaml", not_requested=(1,)):  # (1 is a ?supported_parameters= query)
        models = provider.list_models()
    assert len(models) == 302
    auto = models.get("openrouter/auto")
    assert auto is not None and auto.pricing.is_unknown and auto.pricing.prompt_per_million is None
    mini = models.get("openai/gpt-4o-mini")
    assert mini is not None
    assert (mini.pricing.prompt * M, mini.pricing.completion * M) == (Decimal("0.15"), Decimal("0.6"))
    free = [m for m in models if m.id.endswith(":free")]
    assert free and all(m.pricing.is_free for m in free)
    assert sum(1 for m in models if m.max_completion_tokens is None) == 103


def test_models_2026_shape_with_total_count(provider: Any) -> None:
    with replay("models_2026-08.yaml"):
        models = provider.list_models()
    assert len(models) == 4 and models.ids[0] == "anthropic/claude-sonnet-4"
    assert models.total_count == 338  # the service's count; its recorder kept only 4 entries
    sonnet = models.get("anthropic/claude-sonnet-4")
    assert sonnet is not None and sonnet.context_length == 1_000_000
    assert sonnet.pricing.prompt_per_million == Decimal("3") and "tools" in sonnet.supported_parameters


# --------------------------------------------------------------------------- execute


JOKE = {
    "model": "google/gemini-2.0-flash-exp:free",
    "messages": [{"role": "system", "content": "Be helpful."}, {"role": "user", "content": "Tell me a joke."}],
}


def test_retry_429_429_200_without_real_sleep(provider: Any, sleeps: Sleeps) -> None:
    with replay("retry_429_429_200_2025-05.yaml"):
        reply = provider.execute({**JOKE, "extra_body": {"n": 1, "stream": False}})
    assert reply.text == "Why don't scientists trust atoms? \n\nBecause they make up everything!\n"
    assert reply.id == "gen-1747736401-niWjLHssb1xvyg7Ow2Nf"
    assert reply.served_by == "Google" and reply.native_finish_reason == "STOP"
    assert len(sleeps) == 2 and all(0 <= s <= provider.settings.retry.max_backoff for s in sleeps)


def test_three_429s_give_up_with_the_upstream_message(provider: Any, sleeps: Sleeps) -> None:
    assert provider.settings.retry.max_attempts == 3
    with replay("errors_429_2025.yaml"), pytest.raises(RateLimitError) as caught:
        provider.execute({**JOKE, "extra_body": {"stream": False}})
    error = caught.value
    assert error.status == 429 and error.provider == "openrouter"
    assert "Provider returned error" in str(error) and "temporarily rate-limited upstream" in str(error)
    assert "user_REDACTED" not in str(error)
    assert len(sleeps) == 2


def test_tool_call_without_streaming(provider: Any) -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "divide",
            "description": "Divide two numbers.",
            "parameters": {
                "additionalProperties": False,
                "description": "Divide two numbers.",
                "properties": {
                    "denominator": {"type": "number"},
                    "numerator": {"type": "number"},
                    "on_inf": {"default": "infinity", "enum": ["error", "infinity"], "type": "string"},
                },
                "required": ["numerator", "denominator"],
                "type": "object",
            },
        },
    }
    request = {
        "model": "mistralai/mistral-small",
        "messages": [{"role": "user", "content": "What is 123 / 456?"}],
        "tools": [tool],
        "tool_choice": "auto",
        "extra_body": {"stream": False},
    }
    with replay("tool_calling_2025-11.yaml"):
        reply = provider.execute(request)
    assert reply.finish_reason == "tool_calls"
    (call,) = reply.tool_calls
    assert (call.id, call.function.name) == ("3sniiMddS", "divide")
    assert call.function.arguments == '{"numerator": 123, "denominator": 456, "on_inf": "infinity"}'
    assert reply.usage is not None and (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (134, 43)


def test_native_options_pass_through_and_fallback_model_served(provider: Any) -> None:
    request = {
        "model": "google/gemini-2.0-flash-exp:free",
        "messages": [{"role": "user", "content": "Who are you"}],
        "models": ["x-ai/grok-4"],
        "provider": {"only": ["xai"]},
        "transforms": ["middle-out"],
        "extra_body": {"stream": False},
    }
    with replay("native_options_2025-10.yaml"):
        reply = provider.execute(request)
    assert reply.model == "x-ai/grok-4" and reply.served_by == "xAI"
    assert reply.text.startswith("I'm Grok, a helpful and maximally truthful AI built by xAI.")
    assert reply.usage is not None
    assert (reply.usage.reasoning_tokens, reply.usage.cached_tokens, reply.usage.total_tokens) == (165, 682, 927)


def test_usage_with_and_without_cost(provider: Any) -> None:
    base = {"model": "openai/gpt-5-mini", "extra_body": {"stream": False}}
    venus = {
        **base,
        "messages": [{"role": "system", "content": "Be helpful."}, {"role": "user", "content": "Tell me about Venus"}],
    }
    mars = {
        **base,
        "messages": [{"role": "system", "content": "Be helpful."}, {"role": "user", "content": "Tell me about Mars"}],
    }
    with replay("usage_2025.yaml", not_requested=(1,)):
        without = provider.execute(venus)
    # The recorder sent usage.include for Mars, as llmrelay always does: compare it too.
    with replay("usage_2025.yaml", not_requested=(0,), match_usage=True):
        with_cost = provider.execute(mars)
    assert without.usage is not None and without.usage.cost is None
    assert with_cost.usage is not None and with_cost.usage.cost is not None and with_cost.usage.cost > 0
    assert with_cost.cost == with_cost.usage.cost


# --------------------------------------------------------------------------- streams


def test_stream_text_and_usage_chunk(provider: Any) -> None:
    request = {
        "model": "openai/gpt-4o",
        "messages": [{"role": "user", "content": "Two names for a pet pelican, be brief"}],
        "extra_body": {"stream_options": {"include_usage": True}},
    }
    with (
        replay("prompt_stream_2025-08.yaml", not_requested=(0,)),  # (0 is the recorder's GET /models)
        provider.stream_execute(request) as stream,
    ):
        texts = [chunk.text for chunk in stream]
    assert "".join(texts) == stream.text
    assert stream.text.endswith("Pebbles and Skipper.")
    assert stream.finish_reason == "stop"  # the usage chunk's null finish_reason does not overwrite it
    assert stream.usage is not None and stream.usage.cost == Decimal("0.0001025") and stream.usage.total_tokens == 23
    assert stream.id == "gen-1754441342-hIkMo7SMi0ZecQw3oR4d" and stream.served_by == "OpenAI"


def test_stream_tool_call_then_answer(provider: Any) -> None:
    tools = [
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
    extra = {"stream_options": {"include_usage": True}}
    with replay("tool_calls_stream_2025-08.yaml", not_requested=(0,)):  # (0 is the recorder's GET /models)
        with provider.stream_execute(
            {"model": "openai/gpt-4.1-mini", "messages": [question], "tools": tools, "extra_body": extra}
        ) as first:
            first_turn = first.final_response()
        (call,) = first_turn.tool_calls
        assert (call.id, call.function.name, call.function.arguments) == (
            "call_o4OCgtJrNoZTmoCRvmlfoHfj",
            "llm_version",
            "{}",
        )
        assert first_turn.finish_reason == "tool_calls"
        messages = [
            question,
            {"role": "assistant", "tool_calls": [call.model_dump()]},
            {"role": "tool", "tool_call_id": call.id, "content": "0.0+test"},
        ]
        with provider.stream_execute(
            {"model": "openai/gpt-4.1-mini", "messages": messages, "tools": tools, "extra_body": extra}
        ) as second:
            answer = second.final_response()
    assert "0.0+test" in answer.text and answer.finish_reason == "stop"


def test_stream_with_native_options(provider: Any) -> None:
    request = {
        "model": "google/gemini-2.0-flash-exp:free",
        "messages": [{"role": "user", "content": "Who are you"}],
        "models": ["x-ai/grok-4"],
        "provider": {"only": ["xai"]},
        "transforms": ["middle-out"],
        "extra_body": {"stream_options": {"include_usage": True}},
    }
    with replay("stream_native_options_2025-11.yaml"), provider.stream_execute(request) as stream:
        reply = stream.final_response()
    assert reply.model == "x-ai/grok-4" and reply.served_by == "xAI"
    assert reply.native_finish_reason == "completed" and reply.text
    assert reply.usage is not None and reply.usage.total_tokens > 0


def test_stream_image_prompt_keeps_unknown_finish_reason(provider: Any) -> None:
    png = (
        "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAKYAAAEaAgMAAADmmcReAAAACVBMVEX///8A/wD+AQASdAFKAAAAR0lEQVR42u3YMREAMAjAw"
        "C5d6q8mUYkEVuA+8yvIkVr0oghFURRFURRFURRFUdRCkSRJM7u/CEVRFEVRFEVRFEXRpdQXkcaVBRUPn8UJn6QAAAAASUVORK5CYII="
    )
    request = {
        "model": "anthropic/claude-3.5-sonnet",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Describe image in three words"},
                    {"type": "image_url", "image_url": {"url": png}},
                ],
            }
        ],
        "extra_body": {"stream_options": {"include_usage": True}},
    }
    with (
        replay("image_prompt_stream_2024-11.yaml", not_requested=(0,)),  # (0: GET /models, another test)
        provider.stream_execute(request) as stream,
    ):
        reply = stream.final_response()
    assert reply.text.strip()
    # 2024 traffic sent Anthropic's raw "end_turn": accepted, and mapped to OpenAI's word for it.
    assert reply.finish_reason == "stop"
    assert reply.usage is not None and reply.usage.cost is None


def test_mid_stream_error_after_the_chunks_before_it(provider: Any) -> None:
    request = {
        "model": "minimax/minimax-m2:free",
        "messages": [{"role": "user", "content": "Hello there"}],
        "extra_body": {"max_completion_tokens": 10, "stream_options": {"include_usage": True}},
    }
    received = []
    with replay("stream_error_2025-11.yaml"):
        stream = provider.stream_execute(request)  # HTTP 200: the error comes inside the stream
        with stream, pytest.raises(StreamInterruptedError) as caught:
            for chunk in stream:
                received.append(chunk)
    assert "".join(c.reasoning for c in received) == "We need to respond to a greeting. The user"
    assert caught.value.upstream_code == 400 and "Token limit reached" in str(caught.value)
    assert stream.error is caught.value and not stream.completed
    assert stream.finish_reason == "length"


# --------------------------------------------------------------------------- strictness of the replay itself


def test_a_request_not_in_the_cassette_fails(provider: Any) -> None:
    from llmrelay.core.cli.cassettes import unmatched_request

    with replay("retry_429_429_200_2025-05.yaml", not_requested=(0, 1, 2)), pytest.raises(Exception) as caught:
        provider.execute({**JOKE, "messages": [*JOKE["messages"][:1], {"role": "user", "content": "Another"}]})
    assert unmatched_request(caught.value) == "POST https://openrouter.ai/api/v1/chat/completions"
