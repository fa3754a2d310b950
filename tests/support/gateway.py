"""Running ``llmrelay serve`` for tests: a real gunicorn process on 127.0.0.1, a free port.

``start_gateway(config_text)`` writes the TOML to a temporary file, starts
the console script, waits until ``/healthz`` answers, and returns a
:class:`RunningGateway` (a context manager that stops it with SIGTERM).
The upstream is whatever the config names, usually a
:class:`~tests.support.fake_server.FakeOpenRouter` in the test process.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.fake_server import VALID_KEY
from tests.support.scripted_http import ScriptedServer

__all__ = [
    "GATEWAY_KEY",
    "RunningGateway",
    "free_port",
    "gateway",
    "openrouter_config",
    "start_gateway",
    "upstreams",
]

GATEWAY_KEY = "gw-test-key-7d1c2a9e"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def openrouter_config(base_url: str, port: int, *, gateway: str = "", extra: str = "") -> str:
    """A config serving one OpenRouter provider at ``base_url``: no retries, no breaker, no warm-up."""
    return (
        textwrap.dedent(
            f"""
        default_provider = "openrouter"
        [providers.openrouter]
        api_key = "{VALID_KEY}"
        base_url = "{base_url}"
        retry = {{ max_attempts = 1 }}
        [plugins.breaker]
        enabled = false
        [plugins.cache]
        warm_up = []
        """
        )
        + extra
        + textwrap.dedent(
            f"""
        [gateway]
        api_keys = ["{GATEWAY_KEY}"]
        port = {port}
        publish_interval = 0.2
        """
        )
        + gateway
    )


@dataclass
class RunningGateway:
    process: subprocess.Popen[bytes]
    port: int
    config_path: str
    stderr_path: str
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        headers = kwargs.pop("headers", {"Authorization": f"Bearer {GATEWAY_KEY}"})
        return requests.get(self.url + path, headers=headers, timeout=10, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> requests.Response:
        headers = kwargs.pop("headers", {"Authorization": f"Bearer {GATEWAY_KEY}"})
        return requests.post(self.url + path, json=body, headers=headers, timeout=10, **kwargs)

    def stderr(self) -> str:
        with open(self.stderr_path, encoding="utf-8", errors="replace") as file:
            return file.read()

    def terminate(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def __enter__(self) -> RunningGateway:
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            self.terminate()
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for path in (self.config_path, self.stderr_path):
            with contextlib.suppress(OSError):
                os.unlink(path)


def start_gateway(
    config_text: str,
    port: int,
    *,
    args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    replay: str | None = None,
) -> RunningGateway:
    """``replay``: a cassette the upstream traffic is replayed from (see ``tests/support/gateway_replay.py``)."""
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as config:
        config.write(config_text)
    script = os.path.join(os.path.dirname(sys.executable), "llmrelay")
    command = [script, "--config", config.name, *args, "serve"]
    if replay is not None:
        command = [sys.executable, "-m", "tests.support.gateway_replay", replay, config.name]
    environment = {**os.environ, **(env or {})}
    with tempfile.NamedTemporaryFile("wb", suffix=".log", delete=False) as stderr:
        process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=stderr, env=environment, cwd=Path(__file__).resolve().parents[2]
        )
    gateway = RunningGateway(process, port, config.name, stderr.name, environment)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the gateway exited with {process.returncode}:\n{gateway.stderr()}")
        try:
            if requests.get(gateway.url + "/healthz", timeout=1).status_code == 200:
                return gateway
        except requests.RequestException:
            pass
        time.sleep(0.05)
    gateway.__exit__()
    raise RuntimeError(f"the gateway did not start:\n{gateway.stderr()}")


OPENAI_UPSTREAM_KEY = "sk-upstream-openai-5f2b9c81d04e4aa7b1c3"
ANTHROPIC_UPSTREAM_KEY = "sk-ant-api03-upstream-3c9d1e7f2a6b4c8d"


def two_upstream_config(openai_url: str, anthropic_url: str, port: int, *, gateway: str = "") -> str:
    """The gateway over an OpenAI-compatible upstream ``oa`` (the default) and an Anthropic one ``an``.

    Models ending in ``-anthropic`` go to ``an`` with the suffix stripped; retries
    and the breaker are off so each scripted reply answers exactly one call.
    """
    return (
        textwrap.dedent(
            f"""
        default_provider = "oa"
        [providers.oa]
        type = "openai"
        api_key = "{OPENAI_UPSTREAM_KEY}"
        base_url = "{openai_url}/v1"
        retry = {{ max_attempts = 1 }}
        [providers.an]
        type = "anthropic"
        api_key = "{ANTHROPIC_UPSTREAM_KEY}"
        base_url = "{anthropic_url}/v1"
        retry = {{ max_attempts = 1 }}
        [plugins.breaker]
        enabled = false
        [plugins.cache]
        warm_up = []
        [gateway]
        api_keys = ["{GATEWAY_KEY}"]
        port = {port}
        max_body_bytes = 65536
        publish_interval = 0.2
        routing = [{{ suffix = "-anthropic", provider = "an" }}]
        """
        )
        + gateway
    )


# Fixtures shared by the protocol test modules (each imports them: one gateway per module).
@pytest.fixture(scope="module")
def upstreams() -> Iterator[tuple[ScriptedServer, ScriptedServer]]:
    """An OpenAI-shaped and an Anthropic-shaped scripted upstream."""
    with ScriptedServer() as oa, ScriptedServer() as an:
        yield oa, an


@pytest.fixture(scope="module")
def gateway(upstreams: tuple[ScriptedServer, ScriptedServer]) -> Iterator[RunningGateway]:
    """A gateway in front of both upstreams."""
    oa, an = upstreams
    port = free_port()
    with start_gateway(two_upstream_config(oa.url, an.url, port), port) as running:
        yield running
