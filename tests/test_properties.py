"""Property-based tests: arbitrary input gives a result or a typed llmrelay error, never anything else, never a hang.

Covered: the SSE parser (``llmrelay.core.http.sse``) and the stream driver on top
of it, the config loader (``load_config``, ``RelayConfig.from_dict``,
``create_provider``) and request validation (``ChatRequest.coerce`` and the
provider's request path).
"""

from __future__ import annotations

import contextlib
import json
import string
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from llmrelay.core.config import RelayConfig, create_provider, load_config
from llmrelay.core.errors import BadRequestError, LLMRelayError
from llmrelay.core.http.sse import SSEDecoder, SSEEvent, iter_sse
from llmrelay.core.http.transport import HTTPResponse, MockTransport
from llmrelay.core.models import ChatRequest
from llmrelay.providers.openai_wire import coerce_chat_request
from llmrelay.providers.openrouter import OpenRouterProvider

FAST = settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.too_slow])

# --------------------------------------------------------------------------- SSE

sse_bytes = st.one_of(
    st.binary(max_size=300),
    st.lists(
        st.sampled_from(
            [
                b"data: ",
                b"data:",
                b"event: x",
                b"id: 1",
                b"retry: 5",
                b": c",
                b"\n",
                b"\r",
                b"\r\n",
                b'{"a":1}',
                b"[DONE]",
                b"\xef\xbb\xbf",
                b"\xff\xfe",
                b"\x00",
                "é".encode(),
                b"field",
            ]
        ),
        max_size=60,
    ).map(b"".join),
)


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, last = [], 0
    for point in points:
        pieces.append(data[last:point])
        last = point
    pieces.append(data[last:])
    return pieces


@FAST
@given(sse_bytes, st.lists(st.integers(min_value=0, max_value=400), max_size=8))
def test_sse_parser_never_fails_and_ignores_how_bytes_are_split(data: bytes, cuts: list[int]) -> None:
    whole = list(iter_sse([data]))
    pieces = list(iter_sse(_split(data, cuts)))
    assert all(isinstance(event, SSEEvent) and isinstance(event.data, str) for event in whole)
    assert pieces == whole  # the events depend on the bytes, not on the network reads


@FAST
@given(
    st.lists(
        st.text(alphabet=string.printable + "éあ", max_size=40).filter(lambda s: "\n" not in s and "\r" not in s),
        min_size=1,
        max_size=5,
    )
)
def test_sse_data_lines_round_trip(lines: list[str]) -> None:
    payload = "".join(f"data: {line}\n" for line in lines) + "\n"
    events = SSEDecoder().feed(payload.encode())
    assert [event.data for event in events] == ["\n".join(lines)]


def _stream_response(body: bytes) -> HTTPResponse:
    return HTTPResponse(200, {"content-type": "text/event-stream"}, stream=iter([body]))


@FAST
@given(sse_bytes)
def test_stream_driver_yields_chunks_or_a_typed_error(data: bytes) -> None:
    def handler(request: Any) -> HTTPResponse:
        return _stream_response(data)

    provider = OpenRouterProvider(
        api_key="sk-or-v1-prop", base_url="http://127.0.0.1:9", transport=MockTransport(handler)
    )
    try:
        with provider.stream_execute({"model": "m", "messages": [{"role": "user", "content": "x"}]}) as stream:
            for chunk in stream:
                assert chunk is not None
    except LLMRelayError:
        pass
    finally:
        provider.close()


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=10)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=15,
)


@FAST
@given(st.lists(json_values, max_size=5))
def test_stream_driver_handles_any_json_event(events: list[Any]) -> None:
    body = b"".join(b"data: " + json.dumps(event).encode() + b"\n\n" for event in events) + b"data: [DONE]\n\n"

    def handler(request: Any) -> HTTPResponse:
        return _stream_response(body)

    provider = OpenRouterProvider(
        api_key="sk-or-v1-prop", base_url="http://127.0.0.1:9", transport=MockTransport(handler)
    )
    try:
        with provider.stream_execute({"model": "m", "messages": [{"role": "user", "content": "x"}]}) as stream:
            list(stream)
    except LLMRelayError:
        pass
    finally:
        provider.close()


# --------------------------------------------------------------------------- config

toml_fragments = st.lists(
    st.sampled_from(
        [
            'default_provider = "openrouter"\n',
            "[providers.openrouter]\n",
            "[providers.x]\n",
            'type = "openrouter"\n',
            "type = 3\n",
            'api_key = "sk-or-v1-abc"\n',
            'api_key = "${NOPE_UNSET_VAR}"\n',
            'api_key = "${X:-d}"\n',
            "timeout = { connect = 5 }\n",
            'timeout = { connect = "fast" }\n',
            "timeout = 7\n",
            "retry = { max_attempts = 0 }\n",
            'base_url = "ftp://x"\n',
            'base_url = "http://127.0.0.1:1"\n',
            "[plugins.cache]\n",
            "[plugins.cahce]\n",
            'enabled = "yes"\n',
            "enabled = false\n",
            'backend = "redis"\n',
            "[[providers]]\n",
            "x = [1, 2\n",
            "= 1\n",
            "unknown = 1\n",
            "\x00",
            "é = 1\n",
            "[plugins]\n",
            "providers = 1\n",
        ]
    ),
    max_size=8,
).map("".join)


@FAST
@given(st.one_of(toml_fragments, st.text(max_size=200)), st.booleans())
def test_config_file_loads_or_raises_configuration_error(
    tmp_path_factory: pytest.TempPathFactory, text: str, binary: bool
) -> None:
    path = Path(tmp_path_factory.mktemp("cfg")) / "llmrelay.toml"
    path.write_bytes(text.encode("utf-8") + (b"\xff" if binary else b""))
    try:
        config = load_config(path)
    except LLMRelayError:
        return
    assert isinstance(config, RelayConfig)
    try:
        provider = (
            create_provider(config=config, base_url="http://127.0.0.1:1", api_key="sk-or-v1-prop", plugins=False)
            if config.default_provider
            else None
        )
    except LLMRelayError:
        return
    if provider is not None:
        provider.close()


@FAST
@given(st.dictionaries(st.sampled_from(["providers", "plugins", "default_provider", "other"]), json_values, max_size=3))
def test_config_dict_is_accepted_or_a_typed_error(data: dict[str, Any]) -> None:
    with contextlib.suppress(LLMRelayError):
        RelayConfig.from_dict(data)


@FAST
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "api_key",
                "base_url",
                "default_model",
                "timeout",
                "retry",
                "pool",
                "proxies",
                "headers",
                "trust_env",
                "app_title",
                "app_url",
                "nonsense",
            ]
        ),
        json_values,
        max_size=4,
    )
)
def test_create_provider_settings_build_or_raise_configuration_error(fields: dict[str, Any]) -> None:
    try:
        provider = create_provider("openrouter", plugins=False, config={}, **fields)
    except LLMRelayError:
        return
    provider.close()


# --------------------------------------------------------------------------- requests

message = st.fixed_dictionaries(
    {},
    optional={
        "role": st.one_of(st.sampled_from(["user", "system", "assistant", "tool", "bogus"]), json_values),
        "content": st.one_of(
            st.text(max_size=20),
            json_values,
            st.lists(
                st.fixed_dictionaries(
                    {"type": st.sampled_from(["text", "image_url", "x"])},
                    optional={"text": json_values, "image_url": json_values},
                ),
                max_size=2,
            ),
        ),
        "tool_calls": json_values,
        "name": json_values,
    },
)
chat_requests = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {},
        optional={
            "model": json_values,
            "messages": st.one_of(st.lists(message, max_size=3), json_values),
            "temperature": json_values,
            "max_tokens": json_values,
            "tools": json_values,
            "stream": json_values,
            "extra_body": json_values,
            "other": json_values,
        },
    ),
)


@FAST
@given(chat_requests)
def test_chat_request_coerce_gives_a_request_or_a_typed_error(request: Any) -> None:
    """``ChatRequest.coerce``: a request, or a BadRequestError naming the problem (never pydantic's error)."""
    try:
        result = ChatRequest.coerce(request)
    except BadRequestError as exc:
        assert str(exc)
        return
    assert isinstance(result, ChatRequest) and len(result.messages) >= 1


@FAST
@given(chat_requests)
def test_provider_request_validation_gives_a_request_or_a_typed_error(request: Any) -> None:
    """What a caller of a provider sees: a request, or a typed llmrelay error naming the problem."""
    try:
        result = coerce_chat_request(request, default_model="openai/gpt-4o-mini", provider="openrouter")
    except LLMRelayError as exc:
        assert str(exc)
        return
    assert isinstance(result, ChatRequest) and result.model


def _layered_provider() -> Any:
    from llmrelay.core.pipeline import LayeredProvider

    body = json.dumps(
        {
            "id": "g",
            "model": "m",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "ok"}}],
        }
    )

    def handler(_request: Any) -> HTTPResponse:
        return HTTPResponse(200, {"content-type": "application/json"}, body.encode())

    inner = OpenRouterProvider(
        api_key="sk-or-v1-prop",
        base_url="http://127.0.0.1:9",
        transport=MockTransport(handler),
        default_model="openai/gpt-4o-mini",
    )
    return LayeredProvider(inner, [])


@FAST
@given(chat_requests)
def _pipeline_property(request: Any) -> None:
    provider = _layered_provider()
    try:
        provider.execute(request)
    except LLMRelayError:
        pass
    finally:
        provider.close()


def test_pipeline_execute_gives_a_response_or_a_typed_error() -> None:
    """Through the layered provider create_provider returns, bad input is still a typed error."""
    provider = _layered_provider()
    try:
        with pytest.raises(BadRequestError, match="messages"):
            provider.execute({"model": "m"})  # no messages
    finally:
        provider.close()
    _pipeline_property()
