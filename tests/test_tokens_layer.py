"""The tokens plugin: max_tokens clamped to the model's limits, seen in the body the upstream received.

Providers are built with ``create_provider(..., transport=MockTransport(...))``;
``/models`` answers with real OpenRouter model lists (tests/data/openrouter_samples,
models_2024.json and models_2026.json) and chat with a real recorded reply.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from llmrelay.core import ChatRequest, create_provider
from llmrelay.core.errors import ConfigurationError
from llmrelay.core.http.transport import HTTPRequest, HTTPResponse, MockTransport
from llmrelay.core.models import ResponseMeta
from llmrelay.core.pipeline import LayeredProvider
from llmrelay.plugins.tokens import (
    META_FIELD,
    ClampReport,
    ModelLimits,
    TokenClamp,
    TokensLayer,
    clamp_request,
    completion_budget,
    estimate_prompt_tokens,
)

from tests.support.clock import FakeClock
from tests.support.threads import run_in_threads

SAMPLES = Path(__file__).parent / "data" / "openrouter_samples"
KEY = "sk-or-v1-0123456789abcdef0123456789abcdef0123456789abcdef"
LOGGER = "llmrelay.plugins.tokens"

# From the recorded lists: context length / max_completion_tokens.
GPT_4O = "openai/gpt-4o"  # 128000 / 16384
GPT_35 = "openai/gpt-3.5-turbo"  # 16385 / 4096
SORCERER = "raifle/sorcererlm-8x22b"  # 16000 / none
EVA = "eva-unit-01/eva-qwen-2.5-32b"  # 0 / none: no limit worth the name


def sample(name: str) -> Any:
    return json.loads((SAMPLES / name).read_text())


def recorded_models() -> dict[str, Any]:
    return {"data": sample("models_2026.json")["data"] + sample("models_2024.json")["data"]}


def chat(model: str = GPT_4O, text: str = "hi", **fields: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **fields}


class Upstream:
    """OpenRouter as a MockTransport handler: counts ``/models`` fetches, keeps the chat bodies it got."""

    def __init__(self) -> None:
        self.models_status = 200
        self.models_body: Any = recorded_models()
        self.models_fetches = 0
        self.chat_bodies: list[dict[str, Any]] = []
        self.hold_models: threading.Event | None = None  # set: /models answers only once it is set
        self.models_asked = threading.Event()  # set by each /models request
        self._lock = threading.Lock()

    def __call__(self, request: HTTPRequest) -> HTTPResponse:
        if request.url.endswith("/models"):
            with self._lock:
                self.models_fetches += 1
            self.models_asked.set()
            if self.hold_models is not None:
                assert self.hold_models.wait(10), "the test never released /models"
            return _json(self.models_status, self.models_body)
        body = json.loads(request.body)
        with self._lock:
            self.chat_bodies.append(body)
        if body.get("stream"):
            stream = (SAMPLES / "stream_native_options_2025.sse").read_bytes()
            return HTTPResponse(200, {"content-type": "text/event-stream"}, stream=iter([stream]))
        return _json(200, sample("chat_usage_2025.json")["response"])

    @property
    def last_body(self) -> dict[str, Any]:
        return self.chat_bodies[-1]


def _json(status: int, body: Any) -> HTTPResponse:
    return HTTPResponse(status, {"content-type": "application/json"}, json.dumps(body).encode())


@pytest.fixture
def upstream() -> Upstream:
    return Upstream()


def tokens_provider(upstream: Upstream, **section: Any) -> tuple[LayeredProvider, TokensLayer, FakeClock]:
    """OpenRouter with the tokens layer alone in front of it, on a clock the test moves."""
    provider = create_provider(
        "openrouter",
        api_key=KEY,
        retry={"max_attempts": 1},
        transport=MockTransport(upstream),
        plugins=["tokens"],
        config={"plugins": {"tokens": {"enabled": True, **section}}},
    )
    assert isinstance(provider, LayeredProvider)
    layer = provider.layer("tokens")
    assert isinstance(layer, TokensLayer)
    clock = FakeClock(1000.0)
    layer.catalog.clock = clock
    return provider, layer, clock


@pytest.fixture
def built(upstream: Upstream) -> Iterator[tuple[LayeredProvider, TokensLayer, FakeClock]]:
    provider, layer, clock = tokens_provider(upstream)
    yield provider, layer, clock
    provider.close()


def report_of(meta: ResponseMeta) -> ClampReport | None:
    return (meta.model_extra or {}).get(META_FIELD)


# --------------------------------------------------------------------------- configuration


def test_off_by_default_and_on_with_enabled_true_in_the_config_file(tmp_path: Path, upstream: Upstream) -> None:
    with create_provider("openrouter", api_key=KEY, transport=MockTransport(upstream)) as plain:
        assert plain.layer("tokens") is None
    config = tmp_path / "llmrelay.toml"
    # the cache's own L2 off: the process-wide memory one would keep this list for other tests
    config.write_text(
        '[plugins.tokens]\nenabled = true\nmargin = 64\n\n[plugins.cache]\nwarm_up = []\nbackend = "none"\n'
    )
    with create_provider("openrouter", api_key=KEY, transport=MockTransport(upstream), config=config) as provider:
        # inside metrics (counted once), outside the cache (which keys the clamped request)
        assert [layer.name for layer in provider.layers] == ["metrics", "tokens", "cache", "breaker"]
        layer = provider.layer("tokens")
        assert isinstance(layer, TokensLayer) and layer.settings.margin == 64
        reply = provider.execute(chat(max_tokens=100_000))
    assert upstream.last_body["max_tokens"] == 16384
    assert report_of(reply.meta) == ClampReport(
        GPT_4O, 16384, "max_completion_tokens", (TokenClamp("max_tokens", 100_000, 16384),)
    )


@pytest.mark.parametrize(
    ("section", "named"),
    [
        ({"enabled": True, "catalog_tll": 10}, r"plugins\.tokens\.catalog_tll"),
        ({"enabled": True, "margin": -1}, r"plugins\.tokens\.margin"),
        ({"enabled": True, "bytes_per_token": 0}, r"plugins\.tokens\.bytes_per_token"),
        ({"enabled": "yes"}, r"plugins\.tokens\.enabled must be true or false"),
    ],
)
def test_a_wrong_setting_is_a_configuration_error_naming_it(
    upstream: Upstream, section: dict[str, Any], named: str
) -> None:
    with pytest.raises(ConfigurationError, match=named):
        create_provider(
            "openrouter", api_key=KEY, transport=MockTransport(upstream), config={"plugins": {"tokens": section}}
        )


# --------------------------------------------------------------------------- clamping


def test_max_tokens_above_the_models_limit_is_lowered_in_the_body_sent(built, upstream: Upstream) -> None:
    provider, _, _ = built
    request = ChatRequest.model_validate(chat(max_tokens=100_000))
    reply = provider.execute(request)
    assert upstream.last_body["max_tokens"] == 16384
    assert request.max_tokens == 100_000  # the caller's request is not changed
    report = report_of(reply.meta)
    assert report is not None and report.basis == "max_completion_tokens" and report.limit == 16384
    assert reply.meta.model_dump()[META_FIELD]["changes"] == (
        {"field": "max_tokens", "requested": 100_000, "sent": 16384},
    )


def test_a_request_within_the_limit_is_sent_as_it_came(built, upstream: Upstream) -> None:
    provider, layer, _ = built
    reply = provider.execute(chat(GPT_35, max_tokens=4096))
    assert upstream.last_body["max_tokens"] == 4096
    assert report_of(reply.meta) is None
    assert layer.catalog.fetches == 1


def test_no_max_tokens_stays_unset_and_needs_no_model_list(built, upstream: Upstream) -> None:
    provider, layer, _ = built
    reply = provider.execute(chat())
    assert "max_tokens" not in upstream.last_body
    assert upstream.models_fetches == 0 and layer.catalog.fetches == 0
    assert report_of(reply.meta) is None


def test_set_default_gives_an_unset_max_tokens_the_whole_budget(upstream: Upstream) -> None:
    provider, _, _ = tokens_provider(upstream, set_default=True)
    with provider:
        reply = provider.execute(chat(GPT_35))
    assert upstream.last_body["max_tokens"] == 4096
    report = report_of(reply.meta)
    assert report is not None and report.changes == (TokenClamp("max_tokens", None, 4096),)


def test_max_completion_tokens_and_caps_in_extra_body_are_lowered_too(built, upstream: Upstream) -> None:
    provider, _, _ = built
    request = chat(GPT_35, max_completion_tokens=50_000, extra_body={"max_tokens": 9000, "top_k": 3})
    reply = provider.execute(request)
    body = upstream.last_body
    assert body["max_completion_tokens"] == 4096 and body["max_tokens"] == 4096 and body["top_k"] == 3
    assert request["extra_body"] == {"max_tokens": 9000, "top_k": 3}
    report = report_of(reply.meta)
    assert report is not None
    assert {change.field for change in report.changes} == {"max_completion_tokens", "extra_body.max_tokens"}


def test_without_max_completion_tokens_the_context_length_minus_the_prompt_sets_the_budget(built, upstream) -> None:
    provider, _, _ = built
    provider.execute(chat(SORCERER, "hi", max_tokens=50_000))
    # 16000 context - (2 bytes / 4 -> 1 token + 4 for the message) - 256 margin
    assert upstream.last_body["max_tokens"] == 16000 - 5 - 256
    reply = provider.execute(chat(SORCERER, "x" * 40_000, max_tokens=50_000))
    assert upstream.last_body["max_tokens"] == 16000 - (10_000 + 4) - 256
    report = report_of(reply.meta)
    assert report is not None and report.basis == "context_length"


def test_a_long_prompt_lowers_the_budget_below_max_completion_tokens(built, upstream: Upstream) -> None:
    provider, _, _ = built
    reply = provider.execute(chat(GPT_35, "y" * 60_000, max_tokens=4000))
    assert upstream.last_body["max_tokens"] == 16385 - (15_000 + 4) - 256
    report = report_of(reply.meta)
    assert report is not None and report.basis == "context_length"


def test_a_prompt_that_fills_the_window_is_sent_with_one_token_never_less(built, upstream: Upstream) -> None:
    provider, _, _ = built
    provider.execute(chat(SORCERER, "z" * 80_000, max_tokens=100))
    assert upstream.last_body["max_tokens"] == 1


def test_a_model_listed_with_no_usable_limit_passes_through(built, upstream: Upstream) -> None:
    provider, _, _ = built
    reply = provider.execute(chat(EVA, max_tokens=100_000))
    assert upstream.last_body["max_tokens"] == 100_000 and report_of(reply.meta) is None


def test_an_unknown_model_passes_through_and_the_list_is_not_fetched_again(built, upstream, caplog) -> None:
    provider, _, _ = built
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        for _ in range(3):
            reply = provider.execute(chat("nobody/unknown-model", max_tokens=100_000))
    assert upstream.last_body["max_tokens"] == 100_000 and report_of(reply.meta) is None
    assert upstream.models_fetches == 1
    assert "no limits known for 'nobody/unknown-model'" in caplog.text


def test_the_default_model_is_the_one_looked_up(upstream: Upstream) -> None:
    provider = create_provider(
        "openrouter",
        api_key=KEY,
        default_model=GPT_35,
        transport=MockTransport(upstream),
        plugins=["tokens"],
        config={"plugins": {"tokens": {"enabled": True}}},
    )
    with provider:
        provider.execute({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 10_000})
    assert upstream.last_body["model"] == GPT_35 and upstream.last_body["max_tokens"] == 4096


def test_an_openai_compatible_server_clamps_to_its_max_model_len() -> None:
    # vLLM's /models gives each model's max_model_len (the context length) and no max_completion_tokens.
    models = {"object": "list", "data": [{"id": "llama-3.1-8b", "object": "model", "max_model_len": 8192}]}
    bodies: list[dict[str, Any]] = []

    def server(request: HTTPRequest) -> HTTPResponse:
        if request.url.endswith("/models"):
            return _json(200, models)
        bodies.append(json.loads(request.body))
        return _json(200, sample("chat_usage_2025.json")["response"])

    provider = create_provider(
        "openai",
        base_url="http://127.0.0.1:8000/v1",
        transport=MockTransport(server),
        plugins=["tokens"],
        config={"plugins": {"tokens": {"enabled": True, "margin": 0}}},
    )
    with provider:
        reply = provider.execute(chat("llama-3.1-8b", "a" * 400, max_tokens=10_000))
    assert bodies[-1]["max_tokens"] == 8192 - (100 + 4)
    report = report_of(reply.meta)
    assert report is not None and report.basis == "context_length"


def test_a_stream_is_clamped_and_carries_the_report(built, upstream: Upstream) -> None:
    provider, _, _ = built
    with provider.stream_execute(chat(GPT_4O, max_tokens=1_000_000)) as stream:
        text = "".join(chunk.text for chunk in stream)
    assert text and stream.completed
    assert upstream.last_body["stream"] is True and upstream.last_body["max_tokens"] == 16384
    report = report_of(stream.meta)
    assert report is not None and report.limit == 16384


def test_the_clamp_is_logged_at_debug_with_numbers_and_no_secrets(built, caplog) -> None:
    provider, _, _ = built
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        provider.execute(chat(GPT_4O, "my secret prompt", max_tokens=20_000))
    lines = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert lines == [
        "openrouter: tokens: max_tokens 20000 -> 16384 for 'openai/gpt-4o' (max_completion_tokens limit 16384)"
    ]
    assert KEY not in caplog.text and "secret prompt" not in caplog.text


def test_other_operations_pass_straight_through(built, upstream: Upstream) -> None:
    provider, layer, _ = built
    listed = provider.list_models()
    assert GPT_4O in listed.ids
    assert layer.catalog.fetches == 0  # the caller's list_models is not the layer's catalog


# --------------------------------------------------------------------------- the model list


def test_a_failing_model_list_passes_requests_through_warns_once_and_tries_again_later(built, upstream, caplog) -> None:
    provider, layer, clock = built
    upstream.models_status = 500
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        provider.execute(chat(max_tokens=100_000))
        assert upstream.last_body["max_tokens"] == 100_000
        provider.execute(chat(max_tokens=100_000))  # within retry_interval: not asked again
        assert upstream.models_fetches == 1
        clock.advance(61)
        provider.execute(chat(max_tokens=100_000))  # asked again, fails again: no second warning
        assert upstream.models_fetches == 2 and upstream.last_body["max_tokens"] == 100_000
        upstream.models_status = 200
        clock.advance(61)
        reply = provider.execute(chat(max_tokens=100_000))
    assert upstream.models_fetches == 3 and upstream.last_body["max_tokens"] == 16384
    assert report_of(reply.meta) is not None
    warnings = [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "could not fetch the model list (ServerError" in warnings[0].getMessage()
    assert "next try in 60 s" in warnings[0].getMessage()
    assert KEY not in caplog.text
    assert layer.catalog.models == len(recorded_models()["data"])


def test_a_model_list_refused_outright_passes_requests_through_too(built, upstream: Upstream) -> None:
    provider, _, _ = built
    upstream.models_status = 401
    upstream.models_body = {"error": {"message": "No auth credentials found", "code": 401}}
    reply = provider.execute(chat(max_tokens=100_000))
    assert upstream.last_body["max_tokens"] == 100_000 and reply.text


def test_the_list_is_kept_for_catalog_ttl_and_a_failed_refresh_keeps_the_old_one(upstream: Upstream) -> None:
    provider, layer, clock = tokens_provider(upstream, catalog_ttl=600)
    with provider:
        provider.execute(chat(max_tokens=100_000))
        clock.advance(599)
        provider.execute(chat(max_tokens=100_000))
        assert upstream.models_fetches == 1
        clock.advance(2)
        upstream.models_status = 503
        provider.execute(chat(max_tokens=100_000))
        assert upstream.models_fetches == 2
        assert upstream.last_body["max_tokens"] == 16384  # the last list fetched still answers
        clock.advance(61)
        upstream.models_status = 200
        provider.execute(chat(max_tokens=100_000))
    assert upstream.models_fetches == 3 and layer.catalog.fetches == 3


class CountingClock(FakeClock):
    """A FakeClock that says how often it was read: every caller reads it before it looks at the list."""

    def __init__(self, now: float) -> None:
        super().__init__(now)
        self.reads = 0
        self.changed = threading.Condition()

    def __call__(self) -> float:
        with self.changed:
            self.reads += 1
            self.changed.notify_all()
        return self.now

    def wait_for_reads(self, reads: int) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: self.reads >= reads, timeout=10)


def test_many_first_callers_at_once_share_one_model_list_fetch(upstream: Upstream) -> None:
    provider, layer, _ = tokens_provider(upstream)
    clock = layer.catalog.clock = CountingClock(1000.0)
    callers = 16
    upstream.hold_models = threading.Event()

    def release_once_every_caller_is_waiting() -> None:
        # The fetching caller read the clock twice; every other caller once, just before the lock.
        clock.wait_for_reads(callers + 1)
        assert upstream.hold_models is not None
        upstream.hold_models.set()

    releaser = threading.Thread(target=release_once_every_caller_is_waiting, daemon=True)
    releaser.start()
    with provider:
        run_in_threads(lambda: provider.execute(chat(GPT_35, max_tokens=100_000)), callers)
    releaser.join(10)
    assert upstream.models_fetches == 1 and layer.catalog.fetches == 1
    assert [body["max_tokens"] for body in upstream.chat_bodies] == [4096] * callers


def test_while_an_expired_list_is_refreshed_other_callers_use_it_without_waiting(upstream: Upstream) -> None:
    provider, _, clock = tokens_provider(upstream, catalog_ttl=60)
    with provider:
        provider.execute(chat(max_tokens=100_000))
        clock.advance(61)
        upstream.hold_models = threading.Event()
        upstream.models_asked.clear()
        refresher = threading.Thread(target=provider.execute, args=(chat(max_tokens=100_000),), daemon=True)
        refresher.start()
        assert upstream.models_asked.wait(10)  # the refresh is under way, held by the upstream
        provider.execute(chat(GPT_35, max_tokens=100_000))  # would hang here if it waited for the refresh
        assert upstream.last_body["max_tokens"] == 4096
        upstream.hold_models.set()
        refresher.join(10)
    assert upstream.models_fetches == 2


def test_the_model_list_goes_through_the_cache_beneath_the_layer(upstream: Upstream) -> None:
    # With the cache on, the layer's list and the caller's list_models are one entry.
    provider = create_provider(
        "openrouter",
        api_key=KEY,
        transport=MockTransport(upstream),
        plugins=["tokens", "cache"],
        config={"plugins": {"tokens": {"enabled": True}, "cache": {"warm_up": [], "backend": "none"}}},
    )
    with provider:
        provider.execute(chat(max_tokens=100_000))
        assert provider.list_models().meta.cache == "hit"
    assert upstream.models_fetches == 1


# --------------------------------------------------------------------------- the pieces alone


def test_estimate_counts_utf8_bytes_tool_calls_and_tools() -> None:
    plain = ChatRequest.model_validate(chat(text="a" * 40))
    assert estimate_prompt_tokens(plain) == 10 + 4
    # 10 characters of Chinese are 30 bytes of UTF-8: about one token each
    chinese = ChatRequest.model_validate(chat(text="你好你好你好你好你好"))
    assert estimate_prompt_tokens(chinese) == 8 + 4
    with_tools = ChatRequest.model_validate(
        {
            **chat(text="a" * 40),
            "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}],
        }
    )
    assert estimate_prompt_tokens(with_tools) > estimate_prompt_tokens(plain)
    assert estimate_prompt_tokens(plain, bytes_per_token=2) == 20 + 4


def test_clamp_request_changes_only_what_is_over_the_budget() -> None:
    request = ChatRequest.model_validate(chat(max_tokens=100, max_completion_tokens="lots"))
    budget = completion_budget(ModelLimits(None, 4096), request, margin=0, bytes_per_token=4)
    assert budget is not None and budget.tokens == 4096
    same, changes = clamp_request(request, budget)
    assert same is request and changes == ()  # a non-integer cap is left for the service to refuse
    assert completion_budget(ModelLimits(None, None), request, margin=0, bytes_per_token=4) is None
