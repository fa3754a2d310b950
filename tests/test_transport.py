"""The requests transport against a real local server, and its mock twin."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from llmrelay.core import create_provider
from llmrelay.core.errors import APIConnectionError, APITimeoutError, ConfigurationError, StreamInterruptedError
from llmrelay.core.http.transport import Headers, HTTPRequest, HTTPResponse, MockTransport, RequestsTransport
from llmrelay.core.plugins import PluginRegistry
from llmrelay.core.settings import ProviderSettings

from tests.support.fake_server import VALID_KEY, FakeOpenRouter, Reply

AUTH = {"Authorization": f"Bearer {VALID_KEY}", "Accept-Encoding": "gzip"}


@pytest.fixture
def openrouter_server() -> Iterator[FakeOpenRouter]:
    with FakeOpenRouter() as server:
        yield server


def get(server: FakeOpenRouter, path: str = "/models", **kw: object) -> HTTPRequest:
    return HTTPRequest("GET", server.base_url + path, dict(AUTH), **kw)  # type: ignore[arg-type]


def closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def test_get_decodes_gzip_and_keeps_connection(openrouter_server: FakeOpenRouter) -> None:
    transport = RequestsTransport()
    for _ in range(3):
        response = transport.send(get(openrouter_server))
        assert response.status == 200
        assert response.headers.get("content-encoding") == "gzip"  # it was compressed on the wire
        assert response.content.startswith(b'{"data"')
    assert openrouter_server.connections_opened == 1  # keep-alive: one connection for all three
    transport.close()


def test_connect_refused_is_a_connection_error() -> None:
    transport = RequestsTransport()
    with pytest.raises(APIConnectionError, match=r"127\.0\.0\.1"):
        transport.send(HTTPRequest("GET", f"http://127.0.0.1:{closed_port()}/x", timeout=(1, 1)))


def test_slow_response_is_a_read_timeout(openrouter_server: FakeOpenRouter) -> None:
    openrouter_server.script("GET", "/models", Reply(delay=5))
    with pytest.raises(APITimeoutError, match="read timeout"):
        RequestsTransport().send(get(openrouter_server, timeout=(1.0, 0.2)))


def test_reset_before_headers_is_a_connection_error(openrouter_server: FakeOpenRouter) -> None:
    openrouter_server.script("GET", "/models", Reply(reset_before_headers=True))
    with pytest.raises(APIConnectionError):
        RequestsTransport().send(get(openrouter_server))


def test_reset_after_headers_of_a_plain_body_is_a_connection_error(openrouter_server: FakeOpenRouter) -> None:
    openrouter_server.script("GET", "/key", Reply(reset_after_headers=True))
    with pytest.raises(APIConnectionError, match="dropped while reading"):
        RequestsTransport().send(get(openrouter_server, "/key"))


def stream_request(server: FakeOpenRouter, idle: float = 5.0) -> HTTPRequest:
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": True}).encode()
    return HTTPRequest(
        "POST",
        server.base_url + "/chat/completions",
        dict(AUTH),
        body,
        stream=True,
        timeout=(1.0, 5.0),
        idle_timeout=idle,
    )


def test_stream_cut_mid_body_is_stream_interrupted(openrouter_server: FakeOpenRouter) -> None:
    openrouter_server.script("POST", "/chat/completions", Reply(stream_cut_after=2))
    response = RequestsTransport().send(stream_request(openrouter_server))
    received = b""
    with pytest.raises(StreamInterruptedError, match="broke off"):
        for block in response.iter_bytes():
            received += block
    assert received.count(b"}\n\n") == 2  # the two whole events before the cut were delivered
    assert response.closed


def test_stalled_stream_hits_the_idle_timeout(openrouter_server: FakeOpenRouter) -> None:
    openrouter_server.script("POST", "/chat/completions", Reply(stream_stall_after=1))
    response = RequestsTransport().send(stream_request(openrouter_server, idle=0.2))
    with pytest.raises(StreamInterruptedError, match="stream_idle"):
        for _ in response.iter_bytes():
            pass


def test_idle_timeout_does_not_leak_into_the_next_request(openrouter_server: FakeOpenRouter) -> None:
    transport = RequestsTransport()
    response = transport.send(stream_request(openrouter_server, idle=0.05))
    _ = response.content  # read to the end: connection back in the pool with a 0.05 s socket timeout
    openrouter_server.script("GET", "/models", Reply(delay=0.3))
    assert transport.send(get(openrouter_server, timeout=(1.0, 2.0))).status == 200
    assert openrouter_server.connections_opened == 1


def test_redirects_are_not_followed(openrouter_server: FakeOpenRouter) -> None:
    openrouter_server.script(
        "GET", "/models", Reply(status=302, headers={"Location": "http://evil.example/steal"}, body=b"")
    )
    response = RequestsTransport().send(get(openrouter_server))
    assert response.status == 302
    assert openrouter_server.count() == 1


def test_environment_proxies_ignored_unless_trust_env(
    openrouter_server: FakeOpenRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead_proxy = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("HTTP_PROXY", dead_proxy)
    monkeypatch.setenv("http_proxy", dead_proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert RequestsTransport().send(get(openrouter_server)).status == 200
    trusting = RequestsTransport(ProviderSettings(trust_env=True))
    with pytest.raises(APIConnectionError):
        trusting.send(get(openrouter_server, timeout=(0.5, 0.5)))


def test_environment_read_once_at_construction(
    openrouter_server: FakeOpenRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    transport = RequestsTransport(ProviderSettings(trust_env=True))
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{closed_port()}")  # too late: not re-read
    assert transport.send(get(openrouter_server)).status == 200


def test_no_proxy_bypasses_the_environment_proxy(
    openrouter_server: FakeOpenRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("no_proxy", "localhost,127.0.0.1")
    transport = RequestsTransport(ProviderSettings(trust_env=True))
    assert transport.send(get(openrouter_server)).status == 200


def test_configured_proxy_is_used(openrouter_server: FakeOpenRouter) -> None:
    transport = RequestsTransport(ProviderSettings(proxies={"http": f"http://127.0.0.1:{closed_port()}"}))
    with pytest.raises(APIConnectionError):
        transport.send(get(openrouter_server, timeout=(0.5, 0.5)))


def _hammer(transport: RequestsTransport, server: FakeOpenRouter, threads: int, calls: int) -> None:
    barrier = threading.Barrier(threads)
    failures: list[BaseException] = []

    def worker() -> None:
        barrier.wait()
        try:
            for _ in range(calls):
                assert transport.send(get(server, "/key")).status == 200
        except BaseException as exc:  # reported below
            failures.append(exc)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    assert not failures


def test_sixteen_threads_never_overflow_the_default_pool(
    openrouter_server: FakeOpenRouter, caplog: pytest.LogCaptureFixture
) -> None:
    transport = RequestsTransport(ProviderSettings())
    with caplog.at_level(logging.WARNING, logger="urllib3"):
        _hammer(transport, openrouter_server, threads=16, calls=20)
    assert "Connection pool is full" not in caplog.text
    assert openrouter_server.connections_opened <= 16


def test_a_small_pool_does_overflow(openrouter_server: FakeOpenRouter, caplog: pytest.LogCaptureFixture) -> None:
    # The check above can fail: with a pool of 2 the warning appears.
    transport = RequestsTransport(ProviderSettings(pool={"maxsize": 2}))
    with caplog.at_level(logging.WARNING, logger="urllib3"):
        _hammer(transport, openrouter_server, threads=16, calls=20)
    assert "Connection pool is full" in caplog.text


def test_closed_transport_refuses(openrouter_server: FakeOpenRouter) -> None:
    transport = RequestsTransport()
    transport.send(get(openrouter_server))
    transport.close()
    with pytest.raises(APIConnectionError, match="closed"):
        transport.send(get(openrouter_server))


def test_request_repr_hides_headers() -> None:
    request = HTTPRequest("GET", "https://x/y", {"Authorization": "Bearer sk-or-v1-secretsecretsecret"})
    assert "secret" not in repr(request)


def test_mock_transport_records_and_answers() -> None:
    mock = MockTransport(lambda r: HTTPResponse(201, {"X-Thing": "1"}, b"{}"))
    response = mock.send(HTTPRequest("POST", "https://x/y", body=b"{}"))
    assert response.status == 201 and response.headers.get("x-thing") == "1"
    assert [r.url for r in mock.requests] == ["https://x/y"]
    mock.close()
    with pytest.raises(APIConnectionError):
        mock.send(HTTPRequest("GET", "https://x/y"))


def test_streamed_mock_response_closes_when_done() -> None:
    closed: list[bool] = []
    response = HTTPResponse(200, Headers(), stream=iter([b"a", b"b"]), on_close=lambda: closed.append(True))
    assert b"".join(response.iter_bytes()) == b"ab"
    assert closed == [True]


def test_close_closes_pooled_sockets_even_while_a_pool_is_still_referenced(openrouter_server: FakeOpenRouter) -> None:
    transport = RequestsTransport()
    for _ in range(3):
        assert transport.send(get(openrouter_server)).status == 200
    # Something still holds the pool (in real use: an exception traceback in a reference cycle);
    # urllib3 alone would leave its idle socket open until the garbage collector ran.
    pools = transport.adapter.poolmanager.pools
    held = [pools[key] for key in pools.keys()]  # noqa: SIM118  (a snapshot: pools cannot be iterated)
    assert openrouter_server.open_connections == 1
    transport.close()
    deadline = time.monotonic() + 2.0
    while openrouter_server.open_connections and time.monotonic() < deadline:
        time.sleep(0.01)
    assert openrouter_server.open_connections == 0
    assert len(held) == 1


# --------------------------------------------------------------------------- Headers


def test_headers_are_case_insensitive_on_every_operation() -> None:
    headers = Headers({"Content-Type": "application/json"})
    headers["X-Request-Id"] = "r1"
    headers["x-request-id"] = "r2"  # the same header, not a second one
    assert len(headers) == 2 and headers["X-REQUEST-ID"] == "r2"
    headers.update({"RETRY-AFTER": "3"}, **{"content-type": "text/plain"})
    assert headers.get("retry-after") == "3" and headers["Content-Type"] == "text/plain"
    assert "CONTENT-TYPE" in headers and "content-length" not in headers
    assert headers.pop("Retry-After") == "3" and "retry-after" not in headers
    assert headers.setdefault("x-request-id", "ignored") == "r2"
    del headers["CONTENT-type"]
    assert dict(headers) == {"x-request-id": "r2"}  # iteration: names as last set
    assert Headers([("A", "1")]) == {"a": "1"}


def test_a_response_given_a_plain_dict_has_case_insensitive_headers() -> None:
    response = HTTPResponse(200, {"Content-Type": "text/plain"}, b"x")
    assert isinstance(response.headers, Headers) and response.headers.get("content-type") == "text/plain"
    assert MockTransport(lambda r: response).send(HTTPRequest("GET", "https://x/y")).headers["CONTENT-TYPE"]


# --------------------------------------------------------------------------- the public test seam


CHAT_REPLY = json.dumps(
    {
        "id": "gen-1",
        "model": "openai/gpt-4o-mini",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "hello"}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }
).encode()


@pytest.mark.parametrize("plugins", [False, True])
def test_create_provider_sends_through_the_transport_given(plugins: bool) -> None:
    mock = MockTransport(lambda request: HTTPResponse(200, {"Content-Type": "application/json"}, CHAT_REPLY))
    provider = create_provider(
        "openrouter",
        api_key=VALID_KEY,
        transport=mock,
        plugins=plugins,
        config={"plugins": {"cache": {"warm_up": []}}},
    )
    answer = provider.execute({"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    assert answer.text == "hello"
    assert [r.url for r in mock.requests] == ["https://openrouter.ai/api/v1/chat/completions"]
    assert mock.requests[0].headers["Authorization"] == f"Bearer {VALID_KEY}"
    provider.close()
    assert mock.closed  # the provider owns the transport it was given


def test_create_provider_refuses_a_transport_for_a_provider_that_takes_none(registry: PluginRegistry) -> None:
    mock = MockTransport(lambda request: HTTPResponse(200))
    with pytest.raises(ConfigurationError, match=r"provider 'fake' \(.*FakeProvider\) does not take a transport"):
        create_provider("fake", registry=registry, transport=mock)
    assert mock.requests == [] and not mock.closed


def test_a_header_http_cannot_carry_is_a_connection_error_that_does_not_echo_it(
    openrouter_server: FakeOpenRouter,
) -> None:
    secret = "sk-or-v1-" + "5" * 40
    request = HTTPRequest("GET", openrouter_server.base_url + "/models", {"Authorization": f"Bearer {secret}\r\nX: 1"})
    with pytest.raises(APIConnectionError, match="could not be sent") as caught:
        RequestsTransport().send(request)
    assert secret not in str(caught.value)
    assert openrouter_server.count() == 0
