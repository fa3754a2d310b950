"""Secret audit: a canary API key runs through every path and must appear nowhere.

Paths: success, each error the fault server can produce, retries, streams
(complete, cut, errored), the cache (L1 and Redis L2: keys and values), the
metrics export (JSON and Prometheus), the CLI (``-v`` DEBUG logging, every
command, errors), cassette recording, and the reprs of providers, settings,
requests, streams and errors.

Where it looks: every log record at DEBUG (``caplog`` plus a plain root
handler with no redaction, so the library itself must not log the key, not
merely the CLI's formatter), stdout and stderr, exception strings, reprs
and bodies, metrics output, recorded cassette files, Redis keys and values.
Both the whole key and its random tail are searched, so a partly masked key
counts as a leak.
"""

from __future__ import annotations

import io
import logging
import secrets as random_secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from llmrelay.core import create_provider
from llmrelay.core.errors import LLMRelayError
from llmrelay.core.provider import CallOptions
from llmrelay.plugins.metrics import metrics_registry

from tests.support.fake_server import FakeOpenRouter, Reply

TAIL = random_secrets.token_hex(24)  # 48 hex characters
CANARY = "sk-or-v1-canary" + TAIL
NEEDLES = (CANARY, TAIL, TAIL[:16], TAIL[-16:])
REQUEST = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}

FAULT_REPLIES = [
    Reply(status=401, body={"error": {"code": 401, "message": f"Invalid key {CANARY}"}}),  # a service quoting the key
    Reply(status=429, headers={"Retry-After": "0"}, body={"error": {"code": 429, "message": "slow down"}}),
    Reply(status=500, body={"error": {"code": 500, "message": "boom", "metadata": {"raw": f"Bearer {CANARY}"}}}),
    Reply(status=502, html=True),
    Reply(status=503, body=f"upstream said: authorization=Bearer {CANARY}"),
    Reply(reset_before_headers=True),
    Reply(reset_after_headers=True),
    Reply(malformed_json=True),
    Reply(empty=True),
    Reply(status=200, body={"error": {"code": 502, "message": f"failed for key {CANARY}"}}),
    Reply(stream_cut_after=2),
    Reply(stream_error_after=1, error={"code": 500, "message": f"bad key {CANARY}"}),
]


def assert_clean(text: Any, where: str) -> None:
    blob = text if isinstance(text, str) else repr(text)
    for needle in NEEDLES:
        assert needle not in blob, (
            f"the canary key leaked into {where}: ...{blob[max(0, blob.find(needle) - 80) :][:200]}"
        )


class RawCapture(logging.Handler):
    """A root handler with no redaction: what the library hands to logging."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.stream = io.StringIO()
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))

        self.by_logger: dict[str, list[str]] = {}

    def emit(self, record: logging.LogRecord) -> None:
        text = self.format(record) + "\n" + repr(record.args) + "\n"
        self.stream.write(text)
        self.by_logger.setdefault(record.name.split(".")[0], []).append(text)

    def text(self, *, excluding: str | None = None) -> str:
        return "".join(t for name, texts in self.by_logger.items() if name != excluding for t in texts)


@pytest.fixture
def raw_log() -> Iterator[RawCapture]:
    handler = RawCapture()
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


@pytest.fixture
def server() -> Iterator[FakeOpenRouter]:
    with FakeOpenRouter(api_key=CANARY) as fake:
        yield fake


def _provider(server: FakeOpenRouter, name: str, cache: dict[str, Any] | None = None) -> Any:
    return create_provider(
        name,
        config={
            "providers": {name: {"type": "openrouter"}},
            "plugins": {
                "cache": {
                    "warm_up": [],
                    "operations": {"execute": {"enabled": True}, "stream_execute": {"enabled": True}},
                    **(cache or {}),
                },
                "breaker": {"failure_threshold": 1000, "failure_rate_threshold": None},
            },
        },
        api_key=CANARY,
        base_url=server.base_url,
        timeout={"connect": 2, "read": 0.5, "stream_idle": 0.5},
        retry={"max_attempts": 2, "initial_backoff": 0.001, "max_backoff": 0.002},
    )


def _exercise(provider: Any, server: FakeOpenRouter, seen: list[Any]) -> None:
    """Success, every fault on every operation, retries, streams, breaker rejections."""
    seen.append(provider.execute(REQUEST))
    seen.append(provider.execute(REQUEST))  # a cache hit
    with provider.stream_execute(dict(REQUEST, temperature=0.5)) as stream:
        seen.extend(list(stream))
    seen.append(stream)
    seen.append(provider.list_models())
    seen.append(provider.validate_config())
    for number, reply in enumerate(FAULT_REPLIES):
        for operation in ("execute", "stream_execute", "list_models", "validate_config"):
            method, path = (
                ("GET", "/models")
                if operation == "list_models"
                else (("GET", "/key") if operation == "validate_config" else ("POST", "/chat/completions"))
            )
            server.script(method, path, reply, reply)
            request = dict(REQUEST, messages=[{"role": "user", "content": f"fault {number}"}])
            try:
                if operation == "execute":
                    seen.append(provider.execute(request))
                elif operation == "stream_execute":
                    with provider.stream_execute(request) as stream:
                        seen.extend(list(stream))
                    seen.append(stream)
                elif operation == "list_models":
                    seen.append(provider.list_models(options=CallOptions(cache=False)))
                else:
                    seen.append(provider.validate_config())
            except LLMRelayError as exc:
                seen.append(exc)
                seen.append(str(exc))
                seen.append(getattr(exc, "body", None))
                seen.append(exc.__cause__)
                seen.append(exc.__context__)
            with server._lock:  # drop what this fault did not use, so the next fault starts clean
                server.scripts.clear()


def _audit_objects(seen: list[Any]) -> None:
    for item in seen:
        assert_clean(repr(item), f"the repr of {type(item).__name__}")
        assert_clean(str(item), f"the str of {type(item).__name__}")
        if isinstance(item, LLMRelayError):
            assert_clean(repr(vars(item)), f"the attributes of {type(item).__name__}")


def test_every_call_path_keeps_the_key_out_of_logs_errors_reprs_and_metrics(
    server: FakeOpenRouter, raw_log: RawCapture, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    provider = _provider(server, "audit-memory")
    seen: list[Any] = []
    try:
        _exercise(provider, server, seen)
        seen += [provider, provider.inner, provider.settings, provider.inner.transport, provider.inner.retry]
        seen += [layer for layer in provider.layers]
        seen.append(provider.settings.public_dict())
        seen.append(provider.settings.model_dump())  # SecretStr stays masked in a plain dump
        seen.append(provider.layer("cache").stats())
    finally:
        provider.close()
    assert any(isinstance(item, LLMRelayError) for item in seen), "no error path was exercised"
    assert server.count() > len(FAULT_REPLIES) * 4, "the faults did not reach the server"
    _audit_objects(seen)

    registry = metrics_registry()
    assert_clean(registry.to_json(), "the metrics JSON")
    assert_clean(registry.prometheus(), "the Prometheus export")
    assert_clean(registry.snapshot().model_dump_json(), "the metrics snapshot")
    assert_clean(repr(registry.grade()), "the health grade")

    assert_clean(raw_log.stream.getvalue(), "a DEBUG log record")
    assert_clean("\n".join(r.getMessage() + repr(r.args) + str(r.exc_text) for r in caplog.records), "caplog")
    assert raw_log.stream.getvalue(), "nothing was logged: the log capture is not working"
    out = capsys.readouterr()
    assert_clean(out.out + out.err, "stdout/stderr")


def test_redis_cache_keys_and_values_hold_no_key(server: FakeOpenRouter, raw_log: RawCapture) -> None:
    redis = pytest.importorskip("redis")
    client = redis.Redis(host="127.0.0.1", port=6379, socket_timeout=1)
    try:
        client.ping()
    except redis.RedisError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    namespace = f"audit-{TAIL[:8]}"
    provider = _provider(
        server, "audit-redis", {"backend": "redis", "redis_url": "redis://127.0.0.1:6379/0", "namespace": namespace}
    )
    seen: list[Any] = []
    try:
        _exercise(provider, server, seen)
        keys = list(client.scan_iter(match=f"{namespace}*"))
        assert keys, "nothing was written to Redis: the L2 path was not exercised"
        for key in keys:
            assert_clean(key.decode("utf-8", "replace"), "a Redis key")
            kind = client.type(key)
            if kind == b"string":
                assert_clean(client.get(key).decode("utf-8", "replace"), f"the Redis value of {key!r}")
            elif kind == b"hash":
                assert_clean(repr(client.hgetall(key)), f"the Redis hash {key!r}")
        _audit_objects(seen)
        assert_clean(raw_log.stream.getvalue(), "a DEBUG log record")
    finally:
        provider.layer("cache").invalidate_all()
        provider.close()
        for key in client.scan_iter(match=f"{namespace}*"):
            client.delete(key)
        client.close()


def test_cassette_recording_filters_the_key(server: FakeOpenRouter, tmp_path: Path, raw_log: RawCapture) -> None:
    pytest.importorskip("vcr")
    from llmrelay.core.cli.cassettes import use_cassette

    cassette = tmp_path / "audit.yaml"
    provider = _provider(server, "audit-cassette")
    seen: list[Any] = []
    try:
        with use_cassette(cassette, "all", secrets=[CANARY]):
            seen.append(provider.execute(REQUEST, options=CallOptions(cache=False)))
            with provider.stream_execute(REQUEST, options=CallOptions(cache=False)) as stream:
                seen.extend(list(stream))
            seen.append(provider.list_models(options=CallOptions(cache=False)))
            seen.append(provider.validate_config())
            server.script(
                "POST",
                "/chat/completions",
                Reply(status=401, body={"error": {"code": 401, "message": f"bad key {CANARY}"}}),
            )
            with pytest.raises(LLMRelayError) as caught:
                provider.execute(dict(REQUEST, seed=1), options=CallOptions(cache=False))
            seen.append(caught.value)
    finally:
        provider.close()
    text = cassette.read_text()
    assert "chat/completions" in text and "/models" in text, "the cassette recorded nothing"
    assert_clean(text, "the recorded cassette")
    _audit_objects(seen)
    assert_clean(raw_log.text(), "a DEBUG log record (vcrpy's included)")


@pytest.mark.parametrize(
    "argv",
    [
        ["models"],
        ["models", "--json"],
        ["chat", "hi", "-m", "openai/gpt-4o-mini"],
        ["chat", "hi", "-m", "openai/gpt-4o-mini", "--stream"],
        ["chat", "hi", "-m", "openai/gpt-4o-mini", "--json"],
        ["validate"],
        ["validate", "--json"],
        ["providers"],
    ],
    ids=lambda argv: "-".join(argv[:2]),
)
@pytest.mark.parametrize("fault", [None, "401", "500", "reset", "stream_error"])
def test_cli_with_debug_logging_never_prints_the_key(
    server: FakeOpenRouter,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    raw_log: RawCapture,
    argv: list[str],
    fault: str | None,
) -> None:
    from llmrelay.core.cli.main import main

    config = tmp_path / "llmrelay.toml"
    config.write_text(
        "[providers.openrouter]\n"
        f'base_url = "{server.base_url}"\n'
        "timeout = { read = 0.5, stream_idle = 0.5 }\n"
        "retry = { max_attempts = 2, initial_backoff = 0.001, max_backoff = 0.002 }\n"
    )
    monkeypatch.setenv("OPENROUTER_API_KEY", CANARY)
    replies = {
        "401": Reply(status=401, body={"error": {"code": 401, "message": f"User not found for key {CANARY}"}}),
        "500": Reply(status=500, body={"error": {"code": 500, "message": f"oops Bearer {CANARY}"}}),
        "reset": Reply(reset_before_headers=True),
        "stream_error": Reply(stream_error_after=1, error={"code": 500, "message": f"key {CANARY} failed"}),
    }
    if fault is not None:
        for method, path in (("POST", "/chat/completions"), ("GET", "/models"), ("GET", "/key")):
            server.script(method, path, replies[fault], replies[fault])
    code = main(["-v", "--config", str(config), *argv])
    out = capsys.readouterr()
    assert out.out or out.err, "the CLI printed nothing"
    assert code in (0, 1), out.err
    assert_clean(out.out, "CLI stdout")
    assert_clean(out.err, "CLI stderr (-v DEBUG)")
    assert_clean(raw_log.stream.getvalue(), "a DEBUG log record under the CLI")


def test_cli_record_writes_a_clean_cassette(
    server: FakeOpenRouter,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pytest.importorskip("vcr")
    from llmrelay.core.cli.main import main

    config = tmp_path / "llmrelay.toml"
    config.write_text(f'[providers.openrouter]\nbase_url = "{server.base_url}"\n')
    monkeypatch.setenv("OPENROUTER_API_KEY", CANARY)
    for argv in (["models"], ["chat", "hi", "-m", "openai/gpt-4o-mini"], ["validate"]):
        cassette = tmp_path / f"{argv[0]}.yaml"
        code = main(["-v", "--config", str(config), "--record", str(cassette), *argv])
        out = capsys.readouterr()
        assert code == 0, out.err
        assert cassette.exists(), f"{argv}: no cassette written"
        assert_clean(cassette.read_text(), f"the cassette recorded by `llmrelay --record ... {' '.join(argv)}`")
        assert_clean(out.out + out.err, "CLI output while recording")


def test_the_audit_detects_a_leak(raw_log: RawCapture) -> None:
    """The checks above can fail: a key logged in passing is found, whole or partly masked."""
    logging.getLogger("llmrelay.audit-probe").debug("calling with %s", "sk-or-v1-***" + TAIL[-16:])
    with pytest.raises(AssertionError, match="canary key leaked"):
        assert_clean(raw_log.stream.getvalue(), "a probe record")
