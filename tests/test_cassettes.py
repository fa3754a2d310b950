"""Cassettes: the shipped ones hold no secrets and replay; recording filters; matching uses the body."""

from __future__ import annotations

import gzip
import importlib.util
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from llmrelay.core import ConfigurationError
from llmrelay.core.cli.cassettes import (
    RECORD_ENV,
    cassette_fixture,
    find_secrets,
    mode_from_env,
    scan_cassette,
    unmatched_request,
    use_cassette,
)

ROOT = Path(__file__).resolve().parent.parent
CASSETTES = sorted((ROOT / "cassettes").rglob("*.yaml"))
KEY = "sk-or-v1-" + "9f8e7d6c5b4a3210" * 4
OTHER_SECRET = "s3cr3t-value-not-key-shaped"


# --------------------------------------------------------------------------- the shipped cassettes


def test_cassettes_are_shipped() -> None:
    assert len(CASSETTES) >= 12
    readme = (ROOT / "cassettes" / "README.md").read_text()
    for path in CASSETTES:
        assert path.name in readme, f"{path.name} is not described in cassettes/README.md"


@pytest.mark.parametrize("path", CASSETTES, ids=lambda p: p.name)
def test_no_cassette_contains_a_secret(path: Path) -> None:
    assert scan_cassette(path) == []


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("Authorization: Bearer sk-...", "bearer token"),
        ("'Bearer abc.def'", "bearer token"),
        ('{"key": "sk-or-v1-mocked-key"}', "API key"),
        ("sk-...", "API key"),
        ("https://x/models?key=AIzaSyA-1234", "key in a query string"),
        ("gsk_abcdefgh12345678", "Groq key"),
        ("__cf_bm=aGVsbG8; path=/", "Cloudflare cookie"),
    ],
)
def test_secret_scan_is_strict_about_placeholders_too(text: str, label: str) -> None:
    assert any(found.startswith(label) for found in find_secrets(text))


@pytest.mark.parametrize(
    "text", ["a risk-free task-based plan", "Bearer ***", "sk-*** and key=***", "__cf_bm=REDACTED"]
)
def test_secret_scan_accepts_redacted_values_and_prose(text: str) -> None:
    assert find_secrets(text) == []


def test_scan_reads_inside_gzip_bodies_and_flags_credential_headers(tmp_path: Path) -> None:
    from vcr.request import Request
    from vcr.serialize import serialize
    from vcr.serializers import yamlserializer

    request = Request("GET", "https://example.test/v1/models", None, {"Authorization": "Bearer abcdefghijklmnop"})
    response = {
        "status": {"code": 200, "message": "OK"},
        "headers": {"Content-Encoding": ["gzip"], "Set-Cookie": ["a=b"]},
        "body": {"string": gzip.compress(b'{"echo": "sk-or-v1-hidden-in-gzip-000000"}')},
    }
    path = tmp_path / "leaky.yaml"
    path.write_text(serialize({"requests": [request], "responses": [response]}, yamlserializer))
    problems = scan_cassette(path)
    assert any("header 'Authorization' must be filtered" in p for p in problems)
    assert any("header 'Set-Cookie' must be filtered" in p for p in problems)
    assert any(p.startswith("interaction 1 response: API key") for p in problems)  # only visible decompressed


def test_converted_models_cassettes_replay_with_plain_requests() -> None:
    with use_cassette(ROOT / "cassettes/openrouter/models_2025-04.yaml") as cassette:
        full = requests.get("https://openrouter.ai/api/v1/models").json()  # gzip body, decoded by requests
        filtered = requests.get("https://openrouter.ai/api/v1/models?supported_parameters=structured_outputs").json()
        assert cassette.all_played
    assert (len(full["data"]), len(filtered["data"])) == (302, 81)
    with use_cassette(ROOT / "cassettes/openrouter/models_2026-08.yaml"):
        # Truncated by its recorder; the stale content-length is gone, so the whole stored body is read.
        current = requests.get("https://openrouter.ai/api/v1/models").json()
    assert current["total_count"] == 338 and len(current["data"]) == 4


def test_cassette_fixture_replays(openrouter_usage: Any) -> None:
    body = json.loads(openrouter_usage.requests[0].body)
    answer = requests.post("https://openrouter.ai/api/v1/chat/completions", json=body).json()
    assert answer["usage"]["prompt_tokens"] > 0
    assert openrouter_usage.play_count == 1


openrouter_usage = cassette_fixture(ROOT / "cassettes/openrouter/usage_2025.yaml")


# --------------------------------------------------------------------------- the converter


def _load_converter() -> Any:
    spec = importlib.util.spec_from_file_location("llmrelay_cassette_convert", ROOT / "cassettes" / "convert.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def test_converter_turns_pydantic_ai_format_into_plain_vcrpy(tmp_path: Path) -> None:
    source = tmp_path / "pydantic_ai.yaml"
    source.write_text(
        """interactions:
- request:
    headers:
      authorization: ['Bearer sk-...']
      content-length: ['999']
      content-type: [application/json]
    method: POST
    parsed_body:
      model: m/x
      messages: [{role: user, content: hi}]
    uri: https://openrouter.ai/api/v1/chat/completions
  response:
    headers:
      content-length: ['12345']
      content-type: [application/json]
    parsed_body:
      error: {code: 429, message: Provider returned error}
      user_id: user_2wT5ElBE4Es3R4QrNLpZiXICmQP
    status: {code: 429, message: Too Many Requests}
version: 1
"""
    )
    out = tmp_path / "plain.yaml"
    out.write_text(_load_converter().convert(source, "pydantic-ai"))
    assert scan_cassette(out) == []
    with use_cassette(out):
        reply = requests.post(
            "https://openrouter.ai/api/v1/chat/completions",
            json={"messages": [{"content": "hi", "role": "user"}], "model": "m/x"},
            headers={"Authorization": "Bearer whatever"},
        )
    assert reply.status_code == 429
    assert reply.json() == {"error": {"code": 429, "message": "Provider returned error"}, "user_id": "user_REDACTED"}


# --------------------------------------------------------------------------- recording through a local server


class _Echo(BaseHTTPRequestHandler):
    """Answers like an API that echoes the key back and sets a cookie."""

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        payload = json.dumps({"got": json.loads(body or b"{}"), "auth": self.headers.get("Authorization")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Set-Cookie", "session=abcdef0123456789; HttpOnly")
        if "gzip" in self.headers.get("Accept-Encoding", ""):
            payload = gzip.compress(payload)
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    response = requests.post(
        f"{url}/v1/chat?api_key={KEY}&page=2",
        json=body,
        headers={"Authorization": f"Bearer {KEY}", "X-Api-Key": KEY, "Cookie": "session=1234567890abcdef"},
    )
    return response.json()  # type: ignore[no-any-return]


def test_recording_filters_keys_cookies_and_known_secrets(server: str, tmp_path: Path) -> None:
    path = tmp_path / "recorded.yaml"
    secrets: set[str] = set()
    with use_cassette(path, "all", secrets=secrets):
        secrets.add(OTHER_SECRET)  # learnt after the cassette started, still filtered
        live = _post(server, {"model": "m", "api_key": "plain-credential", "note": f"x {OTHER_SECRET} {KEY}"})
    assert live["auth"] == f"Bearer {KEY}"  # the server really saw it

    text = path.read_text()
    assert KEY not in text and OTHER_SECRET not in text and "plain-credential" not in text
    assert "1234567890abcdef" not in text and "abcdef0123456789" not in text
    assert scan_cassette(path, secrets=[KEY, OTHER_SECRET]) == []
    recorded = yaml_load(path)["interactions"][0]
    assert "gzip" not in json.dumps(recorded["response"]["headers"]).lower()  # stored decoded, so it was filtered
    assert "page=2" in recorded["request"]["uri"]


def yaml_load(path: Path) -> Any:
    from vcr.serializers import yamlserializer

    return yamlserializer.deserialize(path.read_text())


def test_recorded_cassette_replays_with_a_different_key(server: str, tmp_path: Path) -> None:
    path = tmp_path / "rec.yaml"
    with use_cassette(path, "all", secrets=[KEY]):
        live = _post(server, {"model": "m", "messages": ["one"]})
    with use_cassette(path):  # replay only
        replayed = requests.post(
            f"{server}/v1/chat?api_key=other-key-entirely&page=2",
            json={"messages": ["one"], "model": "m"},
            headers={"Authorization": "Bearer another-key-0000000000"},
        ).json()
    assert replayed["got"] == live["got"]
    assert replayed["auth"] == "Bearer ***"


def test_body_matching_tells_posts_apart(server: str, tmp_path: Path) -> None:
    path = tmp_path / "two.yaml"
    with use_cassette(path, "all"):
        _post(server, {"messages": ["first"]})
        _post(server, {"messages": ["second"]})
    with use_cassette(path):
        # Opposite order, and key order and spacing changed: still the right answers.
        second = requests.post(f"{server}/v1/chat?api_key=x&page=2", data='{ "messages" : ["second"] }').json()
        first = requests.post(f"{server}/v1/chat?api_key=x&page=2", json={"messages": ["first"]}).json()
        assert (first["got"], second["got"]) == ({"messages": ["first"]}, {"messages": ["second"]})
        with pytest.raises(Exception) as missing:
            requests.post(f"{server}/v1/chat?api_key=x&page=2", json={"messages": ["third"]})
    assert type(missing.value).__name__ == "CannotOverwriteExistingCassetteException"
    assert unmatched_request(missing.value) == f"POST {server}/v1/chat?api_key=***&page=2"


def test_query_is_matched(server: str, tmp_path: Path) -> None:
    path = tmp_path / "q.yaml"
    with use_cassette(path, "all"):
        _post(server, {"m": 1})
    with use_cassette(path), pytest.raises(Exception) as missing:
        requests.post(f"{server}/v1/chat?api_key=x&page=3", json={"m": 1})
    assert unmatched_request(missing.value) is not None


# --------------------------------------------------------------------------- modes and errors


def test_replay_of_a_missing_cassette_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"), use_cassette(tmp_path / "nope.yaml"):
        pass


def test_unknown_mode_is_a_config_error(tmp_path: Path) -> None:
    with (
        pytest.raises(ConfigurationError, match="record mode 'sometimes'"),
        use_cassette(tmp_path / "x.yaml", "sometimes"),
    ):
        pass


@pytest.mark.parametrize(
    ("value", "mode"), [("", "none"), ("0", "none"), ("1", "all"), ("new_episodes", "new_episodes"), ("once", "once")]
)
def test_mode_from_env(monkeypatch: pytest.MonkeyPatch, value: str, mode: str) -> None:
    monkeypatch.setenv(RECORD_ENV, value)
    assert mode_from_env() == mode


def test_mode_from_env_rejects_nonsense(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(RECORD_ENV, "maybe")
    with pytest.raises(ConfigurationError, match="LLMRELAY_RECORD='maybe'"):
        mode_from_env()


def test_importing_cassettes_does_not_import_vcrpy() -> None:
    code = "import sys, llmrelay.core.cli.cassettes; print('vcr' in sys.modules, 'yaml' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"]


def test_replayed_streams_read_incrementally_like_urllib3(server: str, tmp_path: Path) -> None:
    # read1(amt), as the transport reads a body that is not chunked: vcrpy's stub takes it unpatched
    # (it rejects urllib3 2's decode_content flag, which the transport therefore never passes to read1).
    path = tmp_path / "stream.yaml"
    with use_cassette(path, "all"):
        requests.post(f"{server}/v1/chat?api_key=x&page=2", json={"stream": True})
    with use_cassette(path):
        response = requests.post(f"{server}/v1/chat?api_key=x&page=2", json={"stream": True}, stream=True)
        first = response.raw.read1(5)
        rest = b"".join(iter(lambda: response.raw.read1(64), b""))
    assert len(first) == 5
    assert json.loads(first + rest)["got"] == {"stream": True}


def test_recording_keeps_ordinary_fields_that_only_sound_secret(server: str, tmp_path: Path) -> None:
    path = tmp_path / "logprobs.yaml"
    body = {"logprobs": {"content": [{"token": "Hello", "logprob": -0.1}]}, "max_tokens": 5, "password": "hunter2"}
    with use_cassette(path, "all"):
        requests.post(f"{server}/v1/chat", json=body)
    recorded = json.loads(yaml_load(path)["interactions"][0]["request"]["body"])
    assert recorded["logprobs"] == body["logprobs"] and recorded["max_tokens"] == 5
    assert recorded["password"] == "***"
