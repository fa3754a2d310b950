"""The async API: every operation awaited on llmrelay's thread pool, through the layers; cancellation; no leaks.

Each test runs its coroutine with ``asyncio.run`` (no async test plugin is a
dependency). Waits on other threads use events with generous timeouts, never
sleeps; the one short ``wait_for`` timeout waits on a call that is held until
the test releases it, so it can only end by timing out.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Coroutine, Iterator
from decimal import Decimal
from typing import Any, TypeVar

import pytest
from llmrelay.core import (
    APIConnectionError,
    AsyncChatStream,
    AuthenticationError,
    CallOptions,
    ConfigurationError,
    InvalidResponseError,
    ModelPrefixRule,
    Provider,
    Router,
    async_workers,
    create_provider,
    run_sync,
    set_async_workers,
    shutdown_async_pool,
)
from llmrelay.core.aio import DEFAULT_WORKERS, THREAD_NAME_PREFIX, WORKERS_ENV
from llmrelay.core.http.transport import HTTPRequest, HTTPResponse, MockTransport

from tests.support.fake_server import VALID_KEY, FakeOpenRouter, chat_completion, stream_chunks
from tests.support.fixtures import openrouter_server
from tests.support.metrics_fixture import fresh_metrics
from tests.support.stalling_server import StallingStreamServer, chat_event

__all__ = ["fresh_metrics", "openrouter_server"]  # fixtures, imported to be found by pytest

T = TypeVar("T")
KEY = "sk-or-v1-0123456789abcdef0123456789abcdef0123456789abcdef"
HI = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
WAIT = 10.0  # seconds any wait on another thread may take before the test fails: generous, never reached


@pytest.fixture(autouse=True)
def fresh_pool() -> Iterator[None]:
    """Each test starts without a pool and leaves none running, at the default size."""
    shutdown_async_pool()
    yield
    shutdown_async_pool()  # waits for the threads
    set_async_workers(None)


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def pool_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(THREAD_NAME_PREFIX)]


def json_reply(body: Any, status: int = 200) -> HTTPResponse:
    return HTTPResponse(status, {"content-type": "application/json"}, json.dumps(body).encode())


def sse_reply(objects: list[dict[str, Any]]) -> HTTPResponse:
    events = [b"data: " + json.dumps(o).encode() + b"\n\n" for o in objects] + [b"data: [DONE]\n\n"]
    return HTTPResponse(200, {"content-type": "text/event-stream"}, stream=iter(events))


def openrouter_answers(request: HTTPRequest) -> HTTPResponse:
    """OpenRouter's answer to every operation, for a MockTransport."""
    path = request.url.split("/api/v1", 1)[-1].split("?")[0]
    if path == "/chat/completions":
        body = json.loads(request.body or b"{}")
        if body.get("stream"):
            return sse_reply(stream_chunks(words=3))
        return json_reply(chat_completion(text=f"echo: {body['messages'][-1]['content']}"))
    if path == "/models":
        return json_reply({"data": [{"id": "openai/gpt-4o-mini", "name": "GPT-4o mini", "context_length": 128000}]})
    if path == "/key":
        return json_reply({"data": {"label": "sk-or-v1-0fa...240", "limit": None, "usage": 1.5}})
    if path == "/credits":
        return json_reply({"data": {"total_credits": 20, "total_usage": 4.25}})
    if path == "/generation":
        return json_reply({"data": {"id": "gen-1", "model": "openai/gpt-4o-mini", "total_cost": 0.0012}})
    return json_reply({"error": {"code": 404, "message": f"no route {path}"}}, status=404)


def layered(
    handler: Callable[[HTTPRequest], HTTPResponse] = openrouter_answers, *, name: str = "openrouter"
) -> tuple[Provider, MockTransport]:
    """OpenRouter (as instance ``name``) behind the cache and metrics layers, answered by ``handler``."""
    transport = MockTransport(handler)
    config = {"providers": {name: {"type": "openrouter"}}}
    provider = create_provider(name, api_key=KEY, transport=transport, plugins=["cache", "metrics"], config=config)
    return provider, transport


def metrics(provider: Provider, operation: str, model: str | None = None) -> Any:
    layer = provider.layer("metrics")  # type: ignore[attr-defined]  # a LayeredProvider's method
    return layer.collector.snapshot().get(provider.instance_name, model, operation)


class Held:
    """A MockTransport handler that holds every call until released; counts the calls that got in and out."""

    def __init__(self, answer: Callable[[HTTPRequest], HTTPResponse] = openrouter_answers) -> None:
        self.answer = answer
        self.release = threading.Event()
        self.entered = 0
        self.finished = 0
        self.all_in = threading.Event()
        self.expected = 1
        self._lock = threading.Lock()

    def __call__(self, request: HTTPRequest) -> HTTPResponse:
        with self._lock:
            self.entered += 1
            if self.entered >= self.expected:
                self.all_in.set()
        assert self.release.wait(WAIT), "the test never released the held call"
        try:
            return self.answer(request)
        finally:
            with self._lock:
                self.finished += 1


def chat(text: str) -> dict[str, Any]:
    return {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": text}]}


# --------------------------------------------------------------------------- every operation, through the layers


def test_every_operation_awaited_through_cache_and_metrics() -> None:
    provider, transport = layered()

    async def main() -> None:
        reply = await provider.aexecute(chat("one"), options=CallOptions(cache=True))
        again = await provider.aexecute(chat("one"), options=CallOptions(cache=True))
        assert reply.text == again.text == "echo: one"
        assert (reply.meta.cache, again.meta.cache) == ("miss", "hit")
        models = await provider.alist_models()
        assert [m.id for m in models.models] == ["openai/gpt-4o-mini"]
        assert (await provider.avalidate_config()).ok
        assert (await provider.aget_credits()).remaining == Decimal("15.75")
        stats = await provider.aget_generation_stats("gen-1")
        assert stats.total_cost == Decimal("0.0012")

    run(main())
    chat_calls = [r for r in transport.requests if r.url.endswith("/chat/completions")]
    assert len(chat_calls) == 1  # the second chat was the cache's
    execute = metrics(provider, "execute", "openai/gpt-4o-mini")
    assert execute.requests == 2 and execute.cache_hits == 1 and execute.cache_misses == 1
    for operation in ("list_models", "validate_config", "get_credits", "get_generation_stats"):
        assert metrics(provider, operation).successes == 1, operation
    provider.close()


def test_aembed_on_an_openai_compatible_provider() -> None:
    def answer(request: HTTPRequest) -> HTTPResponse:
        assert request.url.endswith("/embeddings")
        data = [{"index": 1, "embedding": [0.3, 0.4]}, {"index": 0, "embedding": [0.1, 0.2]}]
        return json_reply({"model": "emb-1", "data": data, "usage": {"prompt_tokens": 4, "total_tokens": 4}})

    transport = MockTransport(answer)
    provider = create_provider(
        "openai", api_key="sk-test-0123456789", base_url="http://127.0.0.1:9/v1", transport=transport, config={}
    )
    result = run(provider.aembed({"model": "emb-1", "input": ["a", "b"]}))
    assert result.embeddings == [[0.1, 0.2], [0.3, 0.4]] and result.usage is not None
    assert metrics(provider, "embed", "emb-1").successes == 1
    provider.close()


def test_async_operations_over_real_sockets(openrouter_server: FakeOpenRouter) -> None:
    provider = create_provider("openrouter", api_key=VALID_KEY, base_url=openrouter_server.base_url, config={})

    async def main() -> None:
        async with provider:  # closed by aclose on the way out
            reply, models, report = await asyncio.gather(
                provider.aexecute(HI), provider.alist_models(), provider.avalidate_config()
            )
            assert reply.text == "Hello there!" and len(models) == 3 and report.ok
            async with provider.astream_execute(HI) as stream:
                texts = [chunk.text async for chunk in stream]
            assert "".join(texts) == stream.text == "word0 word1 word2 word3 word4"
            assert stream.completed and stream.usage is not None and stream.usage.completion_tokens == 5

    run(main())
    with pytest.raises(APIConnectionError, match="closed"):  # leaving `async with provider` closed it
        provider.execute(HI)


def test_errors_raise_from_the_await_with_their_types() -> None:
    def unauthorized(request: HTTPRequest) -> HTTPResponse:
        return json_reply({"error": {"code": 401, "message": "User not found."}}, status=401)

    provider, _ = layered(unauthorized)
    with pytest.raises(AuthenticationError):
        run(provider.aexecute(HI))
    with pytest.raises(AuthenticationError):
        run(_open(provider.astream_execute(HI)))
    assert metrics(provider, "execute", "openai/gpt-4o-mini").errors == 1
    provider.close()


async def _open(stream: AsyncChatStream) -> AsyncChatStream:
    return await stream


def test_async_goes_through_a_router_to_layered_providers() -> None:
    first, first_transport = layered(name="first")
    second, second_transport = layered(name="second")
    # "openai/gpt-4o-mini" goes to the second as "gpt-4o-mini"; anything else to the first.
    router = Router(
        {"first": first, "second": second}, [ModelPrefixRule("openai/", "second")], default_provider="first"
    )

    async def main() -> None:
        routed = await router.aexecute(HI)
        assert routed.text == "echo: hi"
        elsewhere = await router.aexecute({"model": "meta/llama", "messages": [{"role": "user", "content": "x"}]})
        assert elsewhere.text == "echo: x"
        async with router.astream_execute(HI) as stream:
            assert "".join([c.text async for c in stream]) == "word0 word1 word2"
        assert (await router.alist_models()).models

    run(main())
    assert [json.loads(r.body or b"{}")["model"] for r in second_transport.requests] == ["gpt-4o-mini"] * 2
    assert metrics(second, "execute", "gpt-4o-mini").successes == 1
    assert metrics(second, "stream_execute", "gpt-4o-mini").successes == 1
    assert metrics(first, "execute", "meta/llama").successes == 1
    assert metrics(first, "list_models").successes == metrics(second, "list_models").successes == 1
    assert [json.loads(r.body or b"{}")["model"] for r in first_transport.requests if r.body] == ["meta/llama"]
    router.close()


# --------------------------------------------------------------------------- the async stream's shapes


def test_stream_shapes_async_with_async_for_and_await() -> None:
    provider, _ = layered()

    async def main() -> None:
        async with provider.astream_execute(HI) as stream:
            chunks = [chunk async for chunk in stream]
        assert "".join(c.text for c in chunks) == "word0 word1 word2" and chunks[0].text == "word0"
        assert stream.completed and stream.finish_reason == "stop" and stream.chunk_count == len(chunks)

        plain = [chunk.text async for chunk in provider.astream_execute(HI)]
        assert "".join(plain) == "word0 word1 word2"

        awaited = await provider.astream_execute(HI)
        first = await awaited.__anext__()
        assert first.text == "word0" and awaited.outcome is None
        response = await awaited.final_response()  # the rest, in one job
        assert response.text == "word0 word1 word2" and response.usage is not None
        assert response.usage.completion_tokens == stream.usage.completion_tokens  # type: ignore[union-attr]  # set above
        await awaited.aclose()
        assert awaited.completed

        unopened = provider.astream_execute(HI)
        with pytest.raises(RuntimeError, match="not open yet"):
            _ = unopened.text
        await unopened.aclose()  # closed before it opened: nothing is sent
        assert [c async for c in unopened] == []

    run(main())
    assert metrics(provider, "stream_execute", "openai/gpt-4o-mini").successes == 3


def test_nothing_is_sent_until_the_stream_is_used() -> None:
    provider, transport = layered()
    stream = provider.astream_execute(HI)
    assert transport.requests == [] and "not opened" in repr(stream)
    run(stream.aclose())
    assert transport.requests == []


def test_an_error_mid_stream_raises_from_async_for() -> None:
    def broken(request: HTTPRequest) -> HTTPResponse:
        events = [b"data: " + json.dumps(stream_chunks(words=1)[0]).encode() + b"\n\n", b"data: {not json\n\n"]
        return HTTPResponse(200, {"content-type": "text/event-stream"}, stream=iter(events))

    provider, _ = layered(broken)

    async def main() -> list[str]:
        seen: list[str] = []
        async with provider.astream_execute(HI) as stream:
            async for chunk in stream:
                seen.append(chunk.text)
        return seen

    with pytest.raises(InvalidResponseError, match="not JSON"):
        run(main())
    assert metrics(provider, "stream_execute", "openai/gpt-4o-mini").errors == 1


def test_one_stream_is_read_by_one_task_at_a_time() -> None:
    held = Held(openrouter_answers)
    provider, _ = layered(held)

    async def main() -> None:
        stream = provider.astream_execute(HI)
        opening = asyncio.ensure_future(stream.__anext__())
        await asyncio.to_thread(held.all_in.wait, WAIT)
        with pytest.raises(RuntimeError, match="one task at a time"):
            await stream.__anext__()
        held.release.set()
        assert (await opening).text == "word0"
        await stream.aclose()

    run(main())


# --------------------------------------------------------------------------- concurrency and the event loop


def test_concurrent_calls_run_in_parallel_without_blocking_the_loop() -> None:
    tasks = 16
    set_async_workers(tasks)
    held = Held()
    held.expected = tasks
    provider, _ = layered(held)

    async def main() -> list[str]:
        calls = [asyncio.ensure_future(provider.aexecute(chat(str(i)))) for i in range(tasks)]
        # Every call is inside the upstream at once, and the loop still runs this coroutine.
        assert await asyncio.to_thread(held.all_in.wait, WAIT)
        assert held.entered == tasks and held.finished == 0 and not any(c.done() for c in calls)
        held.release.set()
        return [reply.text for reply in await asyncio.gather(*calls)]

    assert run(main()) == [f"echo: {i}" for i in range(tasks)]
    provider.close()


def test_the_pool_bounds_how_many_calls_run_at_once() -> None:
    set_async_workers(2)
    held = Held()
    held.expected = 2
    provider, _ = layered(held)

    async def main() -> None:
        calls = [asyncio.ensure_future(provider.aexecute(chat(str(i)))) for i in range(6)]
        assert await asyncio.to_thread(held.all_in.wait, WAIT)
        assert held.entered == 2  # the other four wait in the pool's queue
        held.release.set()
        await asyncio.gather(*calls)

    run(main())
    assert held.entered == 6 and len(pool_threads()) == 2
    provider.close()


def test_context_variables_reach_the_worker() -> None:
    request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id")
    seen: dict[str, str] = {}

    def answer(request: HTTPRequest) -> HTTPResponse:
        text = json.loads(request.body or b"{}")["messages"][0]["content"]
        seen[text] = request_id.get("unset")
        return openrouter_answers(request)

    provider, _ = layered(answer)

    async def one(name: str) -> None:
        request_id.set(f"req-{name}")
        await provider.aexecute(chat(name))

    async def main() -> None:
        await asyncio.gather(one("a"), one("b"), one("c"))

    run(main())
    assert seen == {"a": "req-a", "b": "req-b", "c": "req-c"}


def test_no_thread_leaks_across_many_concurrent_calls() -> None:
    set_async_workers(8)
    provider, _ = layered()
    before = {t.ident for t in threading.enumerate()}

    async def burst() -> None:
        replies = await asyncio.gather(*(provider.aexecute(chat(str(i))) for i in range(200)))
        assert len(replies) == 200
        streams = [provider.astream_execute(HI) for _ in range(50)]
        texts = await asyncio.gather(*(s.final_response() for s in streams))
        assert {t.text for t in texts} == {"word0 word1 word2"}

    run(burst())
    after_first = {t.ident for t in threading.enumerate()}
    assert 0 < len(pool_threads()) <= 8
    run(burst())
    assert {t.ident for t in threading.enumerate()} == after_first  # the same threads served the second burst
    shutdown_async_pool()
    assert pool_threads() == [] and {t.ident for t in threading.enumerate()} <= before
    provider.close()


# --------------------------------------------------------------------------- cancellation and timeouts


def test_a_timed_out_call_finishes_in_the_background_and_frees_its_worker() -> None:
    set_async_workers(1)  # one worker: the next call can only run once the first one let it go
    held = Held()
    provider, transport = layered(held)

    async def main() -> str:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(provider.aexecute(chat("slow")), timeout=0.05)  # held: can only time out
        assert held.entered == 1 and held.finished == 0  # the sync call is still inside the upstream
        held.release.set()
        reply = await asyncio.wait_for(provider.aexecute(chat("next")), timeout=WAIT)
        return reply.text

    assert run(main()) == "echo: next"
    assert held.finished == 2 and len(transport.requests) == 2
    provider.close()


def test_a_cancelled_task_gets_control_back_while_the_call_completes() -> None:
    set_async_workers(1)
    held = Held()
    provider, _ = layered(held)

    async def main() -> None:
        task = asyncio.ensure_future(provider.aexecute(chat("cancel me")))
        assert await asyncio.to_thread(held.all_in.wait, WAIT)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        held.release.set()
        assert (await asyncio.wait_for(provider.aexecute(chat("after")), WAIT)).text == "echo: after"

    run(main())
    assert held.finished == 2
    provider.close()


def stalling_provider(server: StallingStreamServer) -> Provider:
    # A long idle timeout: the stream can only end early because llmrelay closes it.
    return create_provider(
        "openrouter",
        api_key=KEY,
        base_url=server.url,
        timeout={"stream_idle": 120.0, "read": 120.0},
        plugins=["metrics"],
        config={},
    )


def test_cancelling_a_stalled_stream_closes_the_upstream_connection_at_once() -> None:
    set_async_workers(1)
    with StallingStreamServer([chat_event("first")]) as server:
        provider = stalling_provider(server)

        async def main() -> AsyncChatStream:
            stream = await provider.astream_execute(HI)
            first = await stream.__anext__()
            assert first.text == "first"
            reading = asyncio.ensure_future(stream.__anext__())  # the server sends nothing more
            await asyncio.sleep(0)  # let the read start: it is submitted to the pool
            reading.cancel()
            with pytest.raises(asyncio.CancelledError):
                await reading
            # The one worker is free again: another call runs on it.
            await asyncio.wait_for(run_sync(lambda: None), WAIT)
            return stream

        stream = run(main())
        assert server.client_closed.wait(WAIT), "the upstream connection stayed open after the cancel"
        assert stream.outcome == "cancelled" and stream.text == "first"
        assert metrics(provider, "stream_execute", "openai/gpt-4o-mini").cancelled == 1
        provider.close()


def test_aclose_from_another_task_ends_a_blocked_read() -> None:
    with StallingStreamServer([chat_event("a"), chat_event("b")]) as server:
        provider = stalling_provider(server)

        async def main() -> list[str]:
            seen: list[str] = []
            stream = await provider.astream_execute(HI)

            async def reader() -> None:
                async for chunk in stream:
                    seen.append(chunk.text)
                    if len(seen) == 2:
                        got_both.set()

            got_both = asyncio.Event()
            task = asyncio.ensure_future(reader())
            await asyncio.wait_for(got_both.wait(), WAIT)
            await stream.aclose()  # the reader is blocked waiting for a third chunk
            await asyncio.wait_for(task, WAIT)  # its async for just ends
            return seen

        assert run(main()) == ["a", "b"]
        assert server.client_closed.wait(WAIT)
        provider.close()


def test_leaving_async_with_on_an_error_closes_the_connection() -> None:
    with StallingStreamServer([chat_event("x")]) as server:
        provider = stalling_provider(server)

        async def main() -> None:
            async with provider.astream_execute(HI) as stream:
                async for _ in stream:
                    raise KeyError("the caller's own error")

        with pytest.raises(KeyError):
            run(main())
        assert server.client_closed.wait(WAIT)
        provider.close()


def test_a_stream_cancelled_before_its_headers_is_closed_when_it_opens() -> None:
    hold = threading.Event()
    with StallingStreamServer([chat_event("late")], hold_headers=hold) as server:
        provider = stalling_provider(server)

        async def main() -> None:
            task = asyncio.ensure_future(provider.astream_execute(HI).__aenter__())
            assert await asyncio.to_thread(server.request_received.wait, WAIT)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        run(main())
        hold.set()  # the response comes after its caller left: the stream opens on the worker and is closed
        assert server.client_closed.wait(WAIT)
        provider.close()


def test_a_sync_stream_closed_from_another_thread_unblocks_its_reader() -> None:
    # The kernel of the async cancel: ChatStream.close on one thread while
    # another is blocked in next() on a silent upstream.
    with StallingStreamServer([chat_event("only")]) as server:
        provider = stalling_provider(server)
        stream = provider.stream_execute(HI)
        assert next(stream).text == "only"
        outcome: list[object] = []
        reading = threading.Event()

        def read() -> None:
            reading.set()
            outcome.append(next(stream, "ended"))

        reader = threading.Thread(target=read)
        reader.start()
        assert reading.wait(WAIT)
        stream.close()
        reader.join(WAIT)
        assert not reader.is_alive() and outcome == ["ended"]  # the iteration ends, no error
        assert server.client_closed.wait(WAIT) and stream.outcome == "cancelled"
        provider.close()


def test_a_stream_closed_while_it_opens_is_closed_once_open() -> None:
    closed = threading.Event()

    def answer(request: HTTPRequest) -> HTTPResponse:
        events = [b"data: " + json.dumps(o).encode() + b"\n\n" for o in stream_chunks(words=2)]
        return HTTPResponse(200, {"content-type": "text/event-stream"}, stream=iter(events), on_close=closed.set)

    held = Held(answer)
    provider, _ = layered(held)

    async def main() -> list[Any]:
        stream = provider.astream_execute(HI)
        entering = asyncio.ensure_future(stream.__aenter__())
        assert await asyncio.to_thread(held.all_in.wait, WAIT)
        await stream.aclose()  # from this task, while the other one is opening it
        held.release.set()
        assert await entering is stream
        return [chunk async for chunk in stream]

    assert run(main()) == []
    assert closed.is_set()
    provider.close()


def test_a_chat_stream_closed_while_another_thread_reads_an_in_memory_source() -> None:
    # No socket to shut down: close returns at once, the reader ends when its source yields.
    from llmrelay.core import ChatStream, StreamChunk

    inside, release, source_closed = threading.Event(), threading.Event(), threading.Event()

    def source() -> Iterator[StreamChunk]:
        try:
            yield StreamChunk(text="a")
            inside.set()
            assert release.wait(WAIT)
            yield StreamChunk(text="b")
        finally:
            source_closed.set()

    ended: list[ChatStream] = []
    stream = ChatStream(source(), provider="test")
    stream.add_done_callback(ended.append)
    assert next(stream).text == "a"
    result: list[object] = []
    reader = threading.Thread(target=lambda: result.append(next(stream, "ended")))
    reader.start()
    assert inside.wait(WAIT)
    stream.close()  # the generator is running on the reader: it cannot be closed from here
    assert stream.outcome == "cancelled" and ended == [stream] and not source_closed.is_set()
    release.set()
    reader.join(WAIT)
    assert result == ["ended"] and source_closed.is_set()  # the reader closed it once it got control back
    assert ended == [stream] and stream.text == "a"  # one callback; the chunk after the close is not absorbed


# --------------------------------------------------------------------------- the pool's size


def test_pool_size_default_env_and_setter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(WORKERS_ENV, raising=False)
    assert async_workers() == DEFAULT_WORKERS
    monkeypatch.setenv(WORKERS_ENV, "3")
    assert async_workers() == 3
    set_async_workers(5)
    assert async_workers() == 5
    run(run_sync(lambda: None))
    assert async_workers() == 5  # the running pool's size
    set_async_workers(None)
    assert async_workers() == 3  # back to the environment


@pytest.mark.parametrize("value", ["many", "0", "-2", "1.5"])
def test_a_bad_environment_size_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(WORKERS_ENV, value)
    with pytest.raises(ConfigurationError, match=WORKERS_ENV) as caught:
        run(run_sync(lambda: None))
    assert repr(value) in str(caught.value)


@pytest.mark.parametrize("value", [0, -1, True, 2.0])
def test_a_bad_size_given_to_the_setter_is_a_configuration_error(value: Any) -> None:
    with pytest.raises(ConfigurationError, match="at least 1"):
        set_async_workers(value)


def test_resizing_while_calls_run_loses_none_and_leaves_no_threads() -> None:
    held = Held()
    held.expected = 4
    set_async_workers(4)
    provider, _ = layered(held)

    async def main() -> None:
        first = [asyncio.ensure_future(provider.aexecute(chat(str(i)))) for i in range(4)]
        assert await asyncio.to_thread(held.all_in.wait, WAIT)
        set_async_workers(2)  # the old pool finishes its four; new calls go to the new one
        later = [asyncio.ensure_future(provider.aexecute(chat(str(i)))) for i in range(4, 8)]
        held.release.set()
        replies = await asyncio.gather(*first, *later)
        assert [r.text for r in replies] == [f"echo: {i}" for i in range(8)]

    run(main())
    shutdown_async_pool()
    for thread in pool_threads():  # the replaced pool's threads end once their calls are done
        thread.join(WAIT)
    assert pool_threads() == []
    provider.close()


def test_a_sync_program_never_loads_asyncio() -> None:
    program = textwrap.dedent(
        """
        import sys
        from llmrelay.core import create_provider
        from llmrelay.core.http.transport import HTTPResponse, MockTransport
        body = b'{"choices": [{"message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}]}'
        answer = MockTransport(lambda request: HTTPResponse(200, {"content-type": "application/json"}, body))
        provider = create_provider("openrouter", api_key="sk-or-v1-test", transport=answer, config={})
        assert provider.execute({"model": "m", "messages": [{"role": "user", "content": "x"}]}).text == "hi"
        provider.close()
        async_modules = {"asyncio", "llmrelay.core.aio", "llmrelay.core.async_stream"}
        print(sorted(async_modules & set(sys.modules)))
        """
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
