"""Fallback chains over scripted providers: which errors move on, streams, attempt records."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from llmrelay.core import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ChatStream,
    CircuitOpenError,
    RateLimitError,
    ServerError,
    StreamChunk,
    StreamInterruptedError,
    create_provider,
)
from llmrelay.core.compose.fallback import FallbackAttempt, FallbackProvider

REQUEST = {"model": "primary-model", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def members(registry):
    first = create_provider("fake", registry=registry, plugins=False, reply="first")
    second = create_provider("fake", registry=registry, plugins=False, reply="second")
    first.instance_name, second.instance_name = "first", "second"
    return first, second


AVAILABILITY_ERRORS = [
    CircuitOpenError("breaker open", retry_after=3),
    APITimeoutError("read timed out"),
    APIConnectionError("connection refused"),
    ServerError("bad gateway", status=502),
    RateLimitError("slow down", status=429, retry_after=1),
]


@pytest.mark.parametrize("error", AVAILABILITY_ERRORS, ids=lambda e: type(e).__name__)
def test_availability_errors_move_to_the_next_member(members, error):
    first, second = members
    first.errors.append(error)
    chain = FallbackProvider([(first, "model-a"), (second, "model-b")])

    reply = chain.execute(REQUEST)

    assert reply.text == "second: hi"
    assert reply.meta.answered_by == "second/model-b"
    assert second.calls[0][1].model == "model-b"
    assert [a["outcome"] for a in reply.meta.fallback] == ["failed", "answered"]
    assert reply.meta.fallback[0]["error_type"] == type(error).__name__


@pytest.mark.parametrize(
    "error",
    [BadRequestError("bad", status=400), AuthenticationError("bad key", status=401)],
    ids=lambda e: type(e).__name__,
)
def test_client_errors_are_raised_without_trying_others(members, error):
    first, second = members
    first.errors.append(error)
    chain = FallbackProvider([first, second])

    with pytest.raises(type(error)) as caught:
        chain.execute(REQUEST)

    assert second.calls == []
    assert caught.value.fallback_attempts[0]["outcome"] == "raised"


def test_model_none_keeps_the_request_model(members):
    first, _ = members
    reply = FallbackProvider([first]).execute(REQUEST)
    assert first.calls[0][1].model == "primary-model"
    assert reply.meta.answered_by == "first/primary-model"


def test_every_member_failing_raises_the_last_error_with_all_attempts(members):
    first, second = members
    first.errors.append(ServerError("down", status=503))
    second.errors.append(RateLimitError("busy", status=429))
    seen: list[FallbackAttempt] = []
    chain = FallbackProvider([first, second], on_attempt=seen.append)

    with pytest.raises(RateLimitError) as caught:
        chain.execute(REQUEST)

    assert [(a.provider, a.outcome) for a in seen] == [("first", "failed"), ("second", "failed")]
    assert [a["error_type"] for a in caught.value.fallback_attempts] == ["ServerError", "RateLimitError"]


def test_each_attempt_goes_through_the_members_own_layers(registry):
    # Layered members: the metrics of each provider see their own attempt.
    from llmrelay.core import Layer, LayerSpec, hookimpl

    seen: list[tuple[str, str]] = []

    class Spy(Layer):
        name = "spy"

        def __init__(self, provider_name: str) -> None:
            self.provider_name = provider_name

        def handle(self, call, proceed):
            try:
                result = proceed(call)
            except Exception as exc:
                seen.append((self.provider_name, type(exc).__name__))
                raise
            seen.append((self.provider_name, "ok"))
            return result

    class SpyPlugin:
        @hookimpl
        def llmrelay_register_layers(self, register):
            register(LayerSpec("spy", 50, lambda ctx: Spy(ctx.provider_name)))

    registry.register(SpyPlugin(), name="spy")
    config = {"providers": {"a": {"type": "fake"}, "b": {"type": "fake"}}}
    first = create_provider("a", config=config, registry=registry, plugins=["spy"])
    second = create_provider("b", config=config, registry=registry, plugins=["spy"])
    first.inner.errors.append(APIConnectionError("refused"))

    FallbackProvider([first, second]).execute(REQUEST)

    assert seen == [("a", "APIConnectionError"), ("b", "ok")]


# --------------------------------------------------------------------------- streams


def scripted_stream(chunks: list[StreamChunk], error: Exception | None = None) -> ChatStream:
    def produce() -> Iterator[StreamChunk]:
        yield from chunks
        if error is not None:
            raise error

    return ChatStream(produce(), provider="scripted")


def test_stream_that_fails_before_its_first_chunk_falls_back(members):
    first, second = members
    # An error event inside an HTTP 200 stream, after only a role-only delta.
    first.script = lambda op, req: scripted_stream(
        [StreamChunk(id="x")], StreamInterruptedError("overloaded", upstream_code=529)
    )
    chain = FallbackProvider([first, second])

    with chain.stream_execute(REQUEST) as stream:
        text = "".join(c.text for c in stream)

    assert text == "second hi"
    assert stream.meta.answered_by == "second/primary-model"
    assert stream.completed
    assert [a["outcome"] for a in stream.meta.fallback] == ["failed", "answered"]


def test_streamed_429_at_request_time_falls_back(members):
    first, second = members
    first.errors.append(RateLimitError("slow down", status=429))
    with FallbackProvider([first, second]).stream_execute(REQUEST) as stream:
        assert stream.final_response().text == "second hi"


def test_stream_failing_after_content_is_not_retried_elsewhere(members):
    first, second = members
    first.script = lambda op, req: scripted_stream([StreamChunk(text="partial")], StreamInterruptedError("dropped"))
    stream = FallbackProvider([first, second]).stream_execute(REQUEST)

    assert next(stream).text == "partial"
    with pytest.raises(StreamInterruptedError):
        next(stream)
    assert second.calls == []
    assert stream.outcome == "failed"


def test_stream_client_error_is_raised(members):
    first, second = members
    first.errors.append(BadRequestError("bad", status=400))
    with pytest.raises(BadRequestError):
        FallbackProvider([first, second]).stream_execute(REQUEST)
    assert second.calls == []


def test_closing_the_chain_stream_closes_the_member_stream(members):
    first, _ = members
    inner_holder = []

    def script(op, req):
        inner_holder.append(scripted_stream([StreamChunk(text="a"), StreamChunk(text="b")]))
        return inner_holder[0]

    first.script = script
    stream = FallbackProvider([first]).stream_execute(REQUEST)
    next(stream)
    stream.close()
    assert inner_holder[0].outcome == "cancelled"


def test_bad_chain_members_are_rejected():
    from llmrelay.core import ConfigurationError

    with pytest.raises(ConfigurationError, match="at least one"):
        FallbackProvider([])
    with pytest.raises(ConfigurationError, match="member #1"):
        FallbackProvider(["openrouter"])  # type: ignore[list-item]
