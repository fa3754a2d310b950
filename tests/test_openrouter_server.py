"""OpenRouterProvider over real sockets: the local fake OpenRouter with scripted faults."""

from __future__ import annotations

import logging
import socket
import threading
from decimal import Decimal
from typing import Any

import pytest
from llmrelay.core.errors import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    InvalidResponseError,
    RateLimitError,
    ServerError,
    StreamInterruptedError,
)
from llmrelay.providers.openrouter import CreditsNotAvailableError, OpenRouterProvider

from tests.support.fake_server import VALID_KEY, FakeOpenRouter, Reply
from tests.support.fixtures import openrouter_server
from tests.support.threads import run_in_threads

__all__ = ["openrouter_server"]  # a fixture, imported to be found by pytest

HI = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def provider_for(server: FakeOpenRouter, sleeps: list[float] | None = None, **settings: Any) -> OpenRouterProvider:
    record = sleeps if sleeps is not None else []
    return OpenRouterProvider(api_key=VALID_KEY, base_url=server.base_url, sleep=record.append, **settings)


def test_all_operations_end_to_end(openrouter_server: FakeOpenRouter) -> None:
    with provider_for(openrouter_server, app_title="Bench", app_url="https://app.example") as provider:
        reply = provider.execute(HI)
        assert reply.text == "Hello there!" and reply.usage.cost == Decimal("0.0000042")
        stream = provider.stream_execute(HI)
        assert stream.final_response().text == "word0 word1 word2 word3 word4"
        assert stream.usage is not None and stream.usage.completion_tokens == 5
        assert len(provider.list_models()) == 3
        assert provider.validate_config().ok
        assert provider.get_credits().remaining == Decimal("15.5")
        assert provider.get_generation_stats("gen-1").model == "openai/gpt-4o-mini"
    headers = openrouter_server.requests[0].headers
    assert headers["x-openrouter-title"] == "Bench" and headers["http-referer"] == "https://app.example"
    assert openrouter_server.connections_opened == 1  # one pooled keep-alive connection throughout


def test_429_with_retry_after_then_success(openrouter_server: FakeOpenRouter) -> None:
    openrouter_server.script(
        "POST",
        "/chat/completions",
        Reply(status=429, headers={"Retry-After": "2"}, body={"error": {"code": 429, "message": "slow"}}),
        Reply(status=503, headers={"retry-after-ms": "150"}, body={"error": {"code": 503, "message": "busy"}}),
    )
    sleeps: list[float] = []
    assert provider_for(openrouter_server, sleeps).execute(HI).text
    assert sleeps == [2.0, 0.15] and openrouter_server.count("POST") == 3


def test_retry_budget_exceeded_by_retry_after_fails_at_once(openrouter_server: FakeOpenRouter) -> None:
    openrouter_server.script(
        "POST",
        "/chat/completions",
        Reply(status=429, headers={"Retry-After": "3600"}, body={"error": {"code": 429, "message": "quota"}}),
    )
    sleeps: list[float] = []
    with pytest.raises(RateLimitError) as caught:
        provider_for(openrouter_server, sleeps).execute(HI)
    assert caught.value.retry_after == 3600 and sleeps == [] and openrouter_server.count("POST") == 1


def test_read_timeout_is_retried_then_raised(openrouter_server: FakeOpenRouter) -> None:
    openrouter_server.script("POST", "/chat/completions", *(Reply(delay=5) for _ in range(2)))
    sleeps: list[float] = []
    provider = provider_for(openrouter_server, sleeps, timeout={"read": 0.2}, retry={"max_attempts": 2})
    with pytest.raises(APITimeoutError, match="read timeout"):
        provider.execute(HI)
    assert len(sleeps) == 1


def test_reset_before_headers_is_retried(openrouter_server: FakeOpenRouter) -> None:
    openrouter_server.script("POST", "/chat/completions", Reply(reset_before_headers=True))
    sleeps: list[float] = []
    assert provider_for(openrouter_server, sleeps).execute(HI).text
    assert len(sleeps) == 1


def test_unreachable_service(openrouter_server: FakeOpenRouter) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    dead = f"http://127.0.0.1:{sock.getsockname()[1]}/api/v1"
    sock.close()
    provider = OpenRouterProvider(api_key=VALID_KEY, base_url=dead, sleep=lambda s: None)
    with pytest.raises(APIConnectionError):
        provider.execute(HI)
    assert provider.validate_config().outcome == "unreachable"


def test_wrong_key_is_invalid_key(openrouter_server: FakeOpenRouter) -> None:
    provider = OpenRouterProvider(api_key="sk-or-v1-wrongwrongwrongwrongwrong", base_url=openrouter_server.base_url)
    assert provider.validate_config().outcome == "invalid_key"
    with pytest.raises(AuthenticationError):
        provider.execute(HI)


def test_credits_403_for_ordinary_keys(openrouter_server: FakeOpenRouter) -> None:
    openrouter_server.credits_status = 403
    with pytest.raises(CreditsNotAvailableError):
        provider_for(openrouter_server).get_credits()


def test_generation_404_window(openrouter_server: FakeOpenRouter) -> None:
    openrouter_server.generation_404s = 3
    sleeps: list[float] = []
    stats = provider_for(openrouter_server, sleeps).get_generation_stats("gen-42")
    assert stats.id == "gen-42" and len(sleeps) == 3


@pytest.mark.parametrize(
    ("reply", "error", "match"),
    [
        (Reply(malformed_json=True), InvalidResponseError, "expected JSON"),
        (Reply(status=502, html=True), ServerError, "HTML page"),
        (Reply(status=200, empty=True), InvalidResponseError, "empty body"),
    ],
)
def test_bodies_that_are_not_what_the_api_promises(
    openrouter_server: FakeOpenRouter, reply: Reply, error: type[Exception], match: str
) -> None:
    openrouter_server.script("POST", "/chat/completions", reply, reply, reply)
    with pytest.raises(error, match=match):
        provider_for(openrouter_server).execute(HI)


def test_padded_body(openrouter_server: FakeOpenRouter) -> None:
    openrouter_server.script("POST", "/chat/completions", Reply(pad=b"\n   \n\n"))
    assert provider_for(openrouter_server).execute(HI).text == "Hello there!"


def test_mid_stream_error_event(openrouter_server: FakeOpenRouter) -> None:
    openrouter_server.script(
        "POST",
        "/chat/completions",
        Reply(stream_error_after=3, error={"code": 502, "message": "Provider disconnected"}),
    )
    stream = provider_for(openrouter_server).stream_execute(HI)
    texts = []
    with pytest.raises(StreamInterruptedError, match="Provider disconnected") as caught:
        for chunk in stream:
            texts.append(chunk.text)
    assert texts == ["word0", " word1", " word2"] and caught.value.upstream_code == 502
    assert openrouter_server.count("POST") == 1  # never retried once chunks were delivered


def test_stream_cut_is_interrupted_not_retried_and_connection_dropped(openrouter_server: FakeOpenRouter) -> None:
    openrouter_server.script("POST", "/chat/completions", Reply(stream_cut_after=2))
    provider = provider_for(openrouter_server)
    stream = provider.stream_execute(HI)
    with pytest.raises(StreamInterruptedError, match="broke off"):
        list(stream)
    assert stream.text == "word0 word1" and openrouter_server.count("POST") == 1
    assert provider.execute(HI).text  # the provider carries on with a fresh connection
    assert openrouter_server.connections_opened == 2


def test_stalled_stream_hits_idle_timeout(openrouter_server: FakeOpenRouter) -> None:
    openrouter_server.script("POST", "/chat/completions", Reply(stream_stall_after=2))
    stream = provider_for(openrouter_server, timeout={"stream_idle": 0.2}).stream_execute(HI)
    with pytest.raises(StreamInterruptedError, match="stream_idle"):
        list(stream)
    assert stream.text == "word0 word1"


def test_caller_stopping_early_closes_the_connection(openrouter_server: FakeOpenRouter) -> None:
    openrouter_server.stream_words = 200
    provider = provider_for(openrouter_server)
    with provider.stream_execute(HI) as stream:
        next(stream)
    assert stream.outcome == "cancelled"
    # The half-read connection is not reused: the next call opens a new one.
    provider.execute(HI)
    assert openrouter_server.connections_opened == 2


def test_completed_stream_returns_its_connection_to_the_pool(openrouter_server: FakeOpenRouter) -> None:
    provider = provider_for(openrouter_server)
    for _ in range(3):
        provider.stream_execute(HI).final_response()
    provider.execute(HI)
    assert openrouter_server.connections_opened == 1


def test_sixteen_threads_share_one_provider(
    openrouter_server: FakeOpenRouter, caplog: pytest.LogCaptureFixture
) -> None:
    provider = provider_for(openrouter_server)
    barrier = threading.Barrier(16)
    failures: list[BaseException] = []

    def worker() -> None:
        barrier.wait()
        try:
            for i in range(10):
                if i % 2:
                    assert provider.stream_execute(HI).final_response().text.startswith("word0")
                else:
                    assert provider.execute(HI).text == "Hello there!"
        except BaseException as exc:
            failures.append(exc)

    with caplog.at_level(logging.WARNING, logger="urllib3"):
        run_in_threads(worker, 16)
    assert not failures
    assert "Connection pool is full" not in caplog.text
    assert openrouter_server.connections_opened <= 16
    provider.close()


def test_close_releases_the_pool(openrouter_server: FakeOpenRouter) -> None:
    provider = provider_for(openrouter_server)
    provider.execute(HI)
    provider.close()
    with pytest.raises(APIConnectionError, match="closed"):
        provider.execute(HI)


def test_registered_under_the_entry_point() -> None:
    from llmrelay.core import PluginRegistry, create_provider

    registry = PluginRegistry()
    assert registry.provider_class("openrouter") is OpenRouterProvider
    provider = create_provider("openrouter", api_key=VALID_KEY, plugins=False, registry=registry)
    assert isinstance(provider, OpenRouterProvider) and provider.base_url == "https://openrouter.ai/api/v1"
