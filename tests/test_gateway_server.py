"""The gateway as a server: observability endpoints, workers sharing figures, disconnects, SIGTERM."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from tests.support.fake_server import FakeOpenRouter
from tests.support.gateway import GATEWAY_KEY, RunningGateway, free_port, openrouter_config, start_gateway
from tests.support.redis_fixture import REDIS_URL, redis_client, redis_namespace
from tests.support.stalling_server import StallingStreamServer, chat_event

__all__ = ["redis_client", "redis_namespace"]  # fixtures, imported to be found by pytest

AUTH = {"Authorization": f"Bearer {GATEWAY_KEY}"}
CHAT = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def eventually(check: Callable[[], bool], what: str, limit: float = 30.0) -> None:
    """Poll until ``check()`` holds (state that other processes publish asynchronously).

    The limit only bounds a failure: on a machine busy with other work, worker
    processes start and publish late (15 s was once not enough with two test
    runs side by side).
    """
    deadline = time.monotonic() + limit
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenRouter]:
    with FakeOpenRouter() as server:
        yield server


@pytest.fixture(scope="module")
def gateway(upstream: FakeOpenRouter) -> Iterator[RunningGateway]:
    port = free_port()
    with start_gateway(openrouter_config(upstream.base_url, port), port) as running:
        yield running


# --------------------------------------------------------------------------- observability


def test_healthz_needs_no_key_and_everything_else_does(gateway: RunningGateway) -> None:
    assert requests.get(gateway.url + "/healthz", timeout=5).json()["status"] == "ok"
    for path in ("/metrics", "/api/performance", "/api/performance?action=reset", "/v1/models"):
        response = requests.get(gateway.url + path, timeout=5)
        assert response.status_code == 401, path
        assert "x-llmrelay-overhead-ms" in response.headers


def test_metrics_in_prometheus_text(gateway: RunningGateway) -> None:
    assert gateway.post("/v1/chat/completions", CHAT).status_code == 200
    response = gateway.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'llmrelay_requests_total{provider="openrouter"' in text
    assert 'llmrelay_gateway_requests_total{path="/v1/chat/completions",status="200"}' in text
    assert "# TYPE llmrelay_gateway_overhead_seconds histogram" in text


def test_performance_has_the_original_reports_shape_and_reset_zeroes_it(gateway: RunningGateway) -> None:
    assert gateway.get("/api/performance?action=reset").status_code == 200
    for _ in range(3):
        assert gateway.post("/v1/chat/completions", CHAT).status_code == 200
    report = gateway.get("/api/performance").json()
    assert set(report) == {"metrics", "cache", "insights", "timestamp"}
    assert set(report["metrics"]) == {
        "requestCount",
        "averageLatency",
        "errorRate",
        "cacheHitRate",
        "requestsPerMinute",
    }
    assert set(report["cache"]) == {"size", "hitRate", "hits", "misses"}
    assert set(report["insights"]) == {"status", "performanceGrade", "recommendations"}
    assert report["metrics"]["requestCount"] == 3 and report["metrics"]["errorRate"] == 0
    assert report["metrics"]["averageLatency"] > 0
    assert report["insights"]["status"] == "healthy" and report["insights"]["performanceGrade"] == "A"
    assert report["timestamp"].endswith("Z")
    assert gateway.get("/api/performance?action=reset").json()["metrics"]["requestCount"] == 0
    assert gateway.get("/api/performance").json()["metrics"]["requestCount"] == 0


def test_overhead_header_on_every_response(gateway: RunningGateway) -> None:
    for response in (gateway.post("/v1/chat/completions", CHAT), gateway.get("/nowhere"), gateway.get("/healthz")):
        assert 0 <= float(response.headers["x-llmrelay-overhead-ms"]) < 1000


# --------------------------------------------------------------------------- workers


def _spread_calls(gateway: RunningGateway, count: int) -> None:
    for _ in range(count):  # a new connection each, so the workers' accept loops share them out
        assert (
            requests.post(gateway.url + "/v1/chat/completions", json=CHAT, headers=AUTH, timeout=10).status_code == 200
        )


_CHAT_REQUESTS = 'llmrelay_gateway_requests_total{path="/v1/chat/completions"'


def test_two_workers_share_their_figures(upstream: FakeOpenRouter) -> None:
    port = free_port()
    config = openrouter_config(upstream.base_url, port, gateway="workers = 2\n")
    with start_gateway(config, port) as gateway:
        _spread_calls(gateway, 12)
        eventually(
            lambda: gateway.get("/api/performance").json()["metrics"]["requestCount"] == 12,
            "both workers' calls counted in /api/performance",
        )

        def chat_requests_in_metrics() -> str:
            text = gateway.get("/metrics").text
            return next(
                (row for row in text.splitlines() if row.startswith(_CHAT_REQUESTS)),
                "",
            )

        # Another worker may answer, whose copy of the first one's figures is up to publish_interval old.
        eventually(lambda: chat_requests_in_metrics().endswith(" 12"), "both workers' calls in /metrics")


@pytest.mark.redis
def test_workers_share_their_figures_through_redis(upstream: FakeOpenRouter, redis_namespace: str) -> None:
    port = free_port()
    config = openrouter_config(
        upstream.base_url,
        port,
        gateway=f'workers = 2\nredis_url = "{REDIS_URL}"\nredis_namespace = "{redis_namespace}"\n',
    )
    with start_gateway(config, port) as gateway:
        _spread_calls(gateway, 8)
        eventually(
            lambda: gateway.get("/api/performance").json()["metrics"]["requestCount"] == 8,
            "calls counted through Redis",
        )
        gateway.get("/api/performance?action=reset")
        eventually(
            lambda: gateway.get("/api/performance").json()["metrics"]["requestCount"] == 0,
            "the reset baseline is shared",
        )


# --------------------------------------------------------------------------- streams: disconnects and SIGTERM


class SlowUpstream:
    """An OpenAI-compatible upstream streaming one chunk every ``pause`` seconds; notes when its client left."""

    def __init__(self, chunks: int, pause: float) -> None:
        self.chunks, self.pause = chunks, pause
        self.sent = 0
        self.client_left = threading.Event()
        self.finished = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                try:
                    for number in range(outer.chunks):
                        data = {
                            "id": "c",
                            "object": "chat.completion.chunk",
                            "created": 1,
                            "model": "m",
                            "choices": [{"index": 0, "delta": {"content": f"w{number} "}, "finish_reason": None}],
                        }
                        self.wfile.write(b"data: " + json.dumps(data).encode() + b"\n\n")
                        self.wfile.flush()
                        outer.sent += 1
                        time.sleep(outer.pause)
                    self.wfile.write(
                        b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m",'
                        b'"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'
                    )
                    self.wfile.flush()
                    outer.finished.set()
                except OSError:
                    outer.client_left.set()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> SlowUpstream:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
def test_client_disconnect_closes_the_upstream_stream(path: str) -> None:
    with SlowUpstream(chunks=2000, pause=0.01) as slow:
        port = free_port()
        with start_gateway(openrouter_config(slow.url, port), port) as gateway:
            body = {**CHAT, "stream": True, "max_tokens": 100}
            response = requests.post(gateway.url + path, json=body, headers=AUTH, stream=True, timeout=10)
            lines = response.iter_lines()
            for _ in range(4):
                next(lines)
            response.close()  # the client goes away mid-stream
            eventually(slow.client_left.is_set, "the upstream saw its stream closed")
            assert slow.sent < 2000 and not slow.finished.is_set()


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
def test_a_client_leaving_a_silent_stream_closes_the_upstream_at_once(path: str) -> None:
    # The upstream sends one event and then nothing: no write to the client will
    # fail before the next keep-alive (an hour away here), so the gateway must
    # notice the hang-up on the client's socket and cut the blocked upstream read.
    with StallingStreamServer([chat_event("Hel")]) as stalling:
        port = free_port()
        config = openrouter_config(stalling.url, port, gateway="ping_interval = 3600\n")
        with start_gateway(config, port) as gateway:
            body = {**CHAT, "stream": True, "max_tokens": 10}
            response = requests.post(gateway.url + path, json=body, headers=AUTH, stream=True, timeout=10)
            assert response.status_code == 200
            first = next(line for line in response.iter_lines() if line.startswith(b"data: "))
            assert b"Hel" in first or b"message_start" in first
            assert stalling.events_sent.is_set() and not stalling.client_closed.is_set()
            response.close()  # the client hangs up while the upstream is silent
            assert stalling.client_closed.wait(10), "the gateway kept the upstream stream open"


def test_sigterm_lets_an_inflight_stream_finish() -> None:
    with SlowUpstream(chunks=40, pause=0.02) as slow:
        port = free_port()
        gateway = start_gateway(openrouter_config(slow.url, port), port)
        with gateway:
            response = requests.post(
                gateway.url + "/v1/chat/completions",
                json={**CHAT, "stream": True},
                headers=AUTH,
                stream=True,
                timeout=10,
            )
            lines = response.iter_lines()
            first = next(lines)
            assert first.startswith(b"data: ")
            gateway.process.send_signal(signal.SIGTERM)
            rest = [line for line in lines if line.startswith(b"data: ")]
            assert rest[-1] == b"data: [DONE]"
            text = "".join(
                json.loads(line[6:])["choices"][0]["delta"].get("content", "")
                for line in [first, *rest[:-1]]
                if json.loads(line[6:])["choices"]
            )
            assert text == "".join(f"w{n} " for n in range(40))
            assert gateway.process.wait(30) == 0


def test_idle_streams_get_keep_alive_pings_in_each_protocol() -> None:
    import anthropic

    with SlowUpstream(chunks=3, pause=0.4) as slow:
        port = free_port()
        config = openrouter_config(slow.url, port, gateway="ping_interval = 0.05\n")
        with start_gateway(config, port) as gateway:
            response = requests.post(
                gateway.url + "/v1/chat/completions", json={**CHAT, "stream": True}, headers=AUTH, timeout=10
            )
            lines = response.content.split(b"\n\n")
            assert b": ping" in lines  # an SSE comment, which clients skip
            assert lines[-2] == b"data: [DONE]"
            raw = requests.post(
                gateway.url + "/v1/messages",
                json={**CHAT, "max_tokens": 10, "stream": True},
                headers=AUTH,
                timeout=10,
            ).content
            assert raw.startswith(b"event: message_start") and raw.count(b"event: ping") > 1
            client = anthropic.Anthropic(base_url=gateway.url, api_key=GATEWAY_KEY, max_retries=0)
            with client.messages.stream(
                model="m", max_tokens=10, messages=[{"role": "user", "content": "x"}]
            ) as stream:
                final = stream.get_final_message()  # the SDK takes pings between chunks in its stride
            assert final.content[0].text == "w0 w1 w2 "  # type: ignore[union-attr]


def test_wrong_method_without_a_key_is_401_and_unknown_paths_share_one_metric_label(gateway: RunningGateway) -> None:
    assert requests.get(gateway.url + "/v1/chat/completions", timeout=5).status_code == 401
    assert gateway.get("/v1/chat/completions").status_code == 405
    for number in range(3):
        assert gateway.get(f"/probe-{number}").status_code == 404
    text = gateway.get("/metrics").text
    assert "probe-" not in text
    assert 'llmrelay_gateway_requests_total{path="other",status="404"}' in text


@pytest.mark.redis
def test_workers_share_the_cache_through_redis(upstream: FakeOpenRouter, redis_namespace: str) -> None:
    port = free_port()
    extra = (
        f'backend = "redis"\nredis_url = "{REDIS_URL}"\nnamespace = "{redis_namespace}"\n'
        "[plugins.cache.operations.execute]\nenabled = true\n"
    )
    config = openrouter_config(upstream.base_url, port, extra=extra, gateway="workers = 2\n")
    with start_gateway(config, port) as gateway:
        before = upstream.count("POST", "/chat/completions")
        _spread_calls(gateway, 6)  # the same request, on a new connection each: both workers answer some
        assert upstream.count("POST", "/chat/completions") - before == 1
        report = gateway.get("/api/performance").json()
        assert report["cache"]["hits"] >= 1


def test_verbose_logs_hold_no_key(upstream: FakeOpenRouter) -> None:
    from tests.support.fake_server import VALID_KEY, Reply

    port = free_port()
    with start_gateway(openrouter_config(upstream.base_url, port), port, args=("-v",)) as gateway:
        assert gateway.post("/v1/chat/completions", CHAT).status_code == 200
        upstream.script("POST", "/chat/completions", Reply(status=500, body={"error": {"message": f"bad {VALID_KEY}"}}))
        assert gateway.post("/v1/chat/completions", CHAT).status_code == 500
        assert (
            gateway.post("/v1/chat/completions", CHAT, headers={"x-api-key": "guess-" + GATEWAY_KEY}).status_code == 401
        )
        log = gateway.stderr()
    assert "DEBUG" in log  # -v took effect
    assert VALID_KEY not in log and GATEWAY_KEY not in log


def test_serve_takes_config_after_the_command_and_reports_a_missing_file(tmp_path: Any) -> None:
    import os
    import subprocess
    import sys

    script = os.path.join(os.path.dirname(sys.executable), "llmrelay")
    missing = str(tmp_path / "missing.toml")
    done = subprocess.run([script, "serve", "--config", missing], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "missing.toml does not exist" in done.stderr and "Traceback" not in done.stderr
    config = tmp_path / "no_key.toml"
    config.write_text('default_provider = "openrouter"\n[providers.openrouter]\napi_key = "sk-or-v1-x"\n')
    env = {key: value for key, value in os.environ.items() if key != "LLMRELAY_GATEWAY_KEY"}
    done = subprocess.run(
        [script, "serve", "--config", str(config)], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 2 and "gateway.api_keys: required" in done.stderr  # no open relay
