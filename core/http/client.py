"""The HTTP client machinery HTTP providers compose: URLs, auth, JSON, retries, errors.

An :class:`HTTPClient` holds what every call to one service shares — base
URL, the headers (auth included, built once), a :class:`Transport`, a
:class:`RetryPolicy` and timeouts — and offers two operations:

* :meth:`HTTPClient.request`: send, retry, check the status, decode JSON
  and parse it into a result whose ``meta.attempts`` says how many
  attempts it took (:meth:`HTTPClient.fetch` and
  :meth:`HTTPClient.request_json` give the value and the attempts as a
  :class:`~llmrelay.core.http.retry.Retried`);
* :meth:`HTTPClient.open_stream`: send and retry until the headers of a
  successful response arrive, then hand back the open response, its
  ``attempts`` set. A stream is never retried after that point.

:func:`error_from_response` turns an HTTP error response into the typed
error for its status, from the OpenAI / OpenRouter body shape
``{"error": {"code", "message", "metadata"}}``, a plain-text or HTML page,
or an empty body. Its message passes through
:func:`~llmrelay.core.secrets.redact`, and it carries the provider name,
status, request id and generation id.

Nothing here knows a particular service.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from urllib.parse import urlencode

from ..errors import (
    APIStatusError,
    ConfigurationError,
    InvalidResponseError,
    LLMRelayError,
    ModelNotFoundError,
    error_for_status,
)
from ..secrets import redact
from ..settings import ProviderSettings
from .retry import Predicate, Retried, RetryPolicy, parse_retry_after
from .transport import USER_AGENT, HTTPRequest, HTTPResponse, Transport

if TYPE_CHECKING:
    from ..models import ResponseMeta

__all__ = [
    "HTTPClient",
    "HasMeta",
    "decode_json",
    "dumps",
    "error_from_response",
    "is_status",
    "upstream_error_message",
]

T = TypeVar("T")


class HasMeta(Protocol):
    """A result model: it says how llmrelay produced it in ``meta`` (attempts, cache)."""

    meta: ResponseMeta


ResultT = TypeVar("ResultT", bound=HasMeta)

_TITLE = rb"(?is)<title[^>]*>(.*?)</title>"  # compiled (and cached) by re when an HTML page arrives
_REQUEST_ID_HEADERS = ("x-request-id", "request-id", "cf-ray")
_MAX_TEXT = 300

_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str)


def dumps(body: Any) -> bytes:
    """Compact JSON, UTF-8; Decimals and other odd values as strings."""
    return _encoder.encode(body).encode("utf-8")


def decode_json(response: HTTPResponse, *, provider: str | None, what: str) -> Any:
    """The JSON body of a successful response, or :class:`InvalidResponseError` saying what came instead."""
    body = response.content
    try:
        # json.loads skips leading whitespace, which some services pad
        # bodies with while they work.
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        pass
    raise InvalidResponseError(
        f"{what}: expected JSON, got {_describe_body(body, response.headers)}",
        provider=provider,
        status=response.status,
        request_id=_request_id(response.headers),
    )


def _describe_body(body: bytes, headers: Mapping[str, str]) -> str:
    stripped = body.strip()
    if not stripped:
        return "an empty body"
    kind = headers.get("content-type") or "unknown content type"
    if stripped[:1] == b"<":
        title = re.search(_TITLE, stripped)
        if title:
            text = title.group(1).decode("utf-8", "replace").strip()
            return f"an HTML page ({kind}) titled {redact(text)[:_MAX_TEXT]!r}"
        return f"an HTML page ({kind})"
    text = stripped[:_MAX_TEXT].decode("utf-8", "replace")
    return f"{kind}: {redact(text)!r}"


def _request_id(headers: Mapping[str, str]) -> str | None:
    for name in _REQUEST_ID_HEADERS:
        value = headers.get(name)
        if value:
            return value
    return None


def error_from_response(
    response: HTTPResponse,
    *,
    provider: str | None,
    secrets: tuple[str, ...] = (),
    model: str | None = None,
    now: Callable[[], float] | None = None,
) -> LLMRelayError:
    """The typed error for a non-2xx response (or a 2xx whose body is an error object)."""
    status = response.status
    headers = response.headers
    body = response.content
    parsed: Any = None
    try:
        parsed = json.loads(body) if body.strip() else None
    except (ValueError, UnicodeDecodeError):
        parsed = None
    request_id = _request_id(headers)
    generation_id = headers.get("x-generation-id")
    retry_after = parse_retry_after(headers, now=now) if now is not None else parse_retry_after(headers)

    if 300 <= status < 400:
        location = headers.get("location") or "an unknown location"
        return InvalidResponseError(
            f"the service redirected to {redact(location, secrets)}; redirects are not followed (check base_url)",
            provider=provider,
            status=status,
            request_id=request_id,
        )

    message, kept_body = _message_from_body(parsed, body, headers, status)
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
        code = parsed["error"].get("code")
        # A 200 that carries an error object (the body was padded before the
        # upstream failed) takes its status from the error's code.
        if status < 400 and isinstance(code, int) and 400 <= code < 600:
            status = code
        if status < 400:
            status = 502
    message = redact(message, secrets)
    if isinstance(kept_body, str):
        kept_body = redact(kept_body, secrets)
    elif kept_body is not None:
        kept_body = json.loads(redact(json.dumps(kept_body), secrets))
    if status == 404 and model and _mentions_model(message, model):
        return ModelNotFoundError(
            f"model {model!r} not found: {message}",
            provider=provider,
            status=status,
            body=kept_body,
            request_id=request_id,
            generation_id=generation_id,
        )
    return error_for_status(
        status,
        message,
        retry_after=retry_after,
        provider=provider,
        body=kept_body,
        request_id=request_id,
        generation_id=generation_id,
    )


def upstream_error_message(error: Mapping[str, Any]) -> str:
    """The ``message`` of an ``{"code", "message", "metadata"}`` error object, with the upstream's detail, redacted.

    OpenRouter puts the serving provider in ``metadata.provider_name`` and its
    own words in ``metadata.raw``; both are what a user can act on.
    """
    message = str(error.get("message") or "no message")
    metadata = error.get("metadata")
    if isinstance(metadata, Mapping):
        raw = metadata.get("raw")
        upstream = metadata.get("provider_name")
        if raw:
            raw_text = raw if isinstance(raw, str) else json.dumps(raw)
            message = f"{message} ({upstream or 'upstream'}: {raw_text[:_MAX_TEXT]})"
        elif upstream:
            message = f"{message} ({upstream})"
    return redact(message)


def _mentions_model(message: str, model: str) -> bool:
    lowered = message.lower()
    return model.lower() in lowered or "model" in lowered or "endpoint" in lowered


def _message_from_body(parsed: Any, body: bytes, headers: Mapping[str, str], status: int) -> tuple[str, Any]:
    if isinstance(parsed, dict):
        error = parsed.get("error")
        if isinstance(error, dict):
            return upstream_error_message(error), {"error": error}
        if isinstance(error, str):
            return error, parsed
        if isinstance(parsed.get("message"), str):
            return parsed["message"], parsed
        return f"HTTP {status} with an unexpected JSON body", parsed
    return f"HTTP {status} with {_describe_body(body, headers)}", body[:_MAX_TEXT].decode("utf-8", "replace")


class HTTPClient:
    """What one provider's calls to one service share. Thread-safe.

    ``auth_headers`` are merged into every request and never logged; their
    values are also redacted from error messages.
    """

    def __init__(
        self,
        *,
        provider: str,
        base_url: str,
        settings: ProviderSettings,
        transport: Transport,
        retry: RetryPolicy,
        auth_headers: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        now: Callable[[], float] | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ConfigurationError(f"{provider}: base_url must start with http:// or https://, got {base_url!r}")
        self.provider = provider
        self.base_url = base_url.rstrip("/")
        self.settings = settings
        self.transport = transport
        self.retry = retry
        self._now = now
        timeouts = settings.timeout
        self._timeout = (timeouts.connect, timeouts.read)
        self._idle = timeouts.stream_idle
        common = {"User-Agent": USER_AGENT, "Accept-Encoding": "gzip, deflate", "Connection": "keep-alive"}
        common.update(settings.headers)
        common.update(headers or {})
        common.update(auth_headers or {})
        self._secrets = tuple(v.split(" ", 1)[-1] for v in (auth_headers or {}).values() if v)
        # Per-kind header templates, copied per request (dict copy is cheap).
        self._get_headers = dict(common, Accept="application/json")
        self._json_headers = dict(common, Accept="application/json")
        self._json_headers["Content-Type"] = "application/json"
        self._stream_headers = dict(common, Accept="text/event-stream")
        self._stream_headers["Content-Type"] = "application/json"

    def url(self, path: str, params: Mapping[str, Any] | None = None) -> str:
        url = f"{self.base_url}/{path.lstrip('/')}"
        if params:
            url += "?" + urlencode({k: v for k, v in params.items() if v is not None})
        return url

    # ------------------------------------------------------------------ calls

    def fetch(
        self,
        method: str,
        path: str,
        parse: Callable[[Any, HTTPResponse], T],
        *,
        body: Any = None,
        params: Mapping[str, Any] | None = None,
        model: str | None = None,
        also_retry: Predicate | None = None,
        retry: RetryPolicy | None = None,
        what: str | None = None,
    ) -> Retried[T]:
        """Send, retrying as the policy says, and return ``parse(decoded JSON, response)`` with the attempts made.

        ``parse`` runs inside the attempt, so an error it raises (a 200 whose
        body is an error object) is retried like an error status. A 2xx body
        that is not JSON raises :class:`InvalidResponseError`; an error status
        raises the typed error for it, its ``attempts`` set.
        """
        payload = dumps(body) if body is not None else None
        request = HTTPRequest(
            method,
            self.url(path, params),
            dict(self._json_headers if payload is not None else self._get_headers),
            payload,
            timeout=self._timeout,
        )
        label = what or f"{method} {path}"
        send = self.transport.send
        provider = self.provider

        def attempt() -> T:
            response = send(request)
            if response.status >= 300:
                raise self.error(response, model=model)
            return parse(decode_json(response, provider=provider, what=label), response)

        return (retry or self.retry).run(attempt, also_retry=also_retry, what=label)

    def request(
        self,
        method: str,
        path: str,
        parse: Callable[[Any, HTTPResponse], ResultT],
        *,
        body: Any = None,
        params: Mapping[str, Any] | None = None,
        model: str | None = None,
        also_retry: Predicate | None = None,
        retry: RetryPolicy | None = None,
        what: str | None = None,
    ) -> ResultT:
        """Like :meth:`fetch`, for a parsed result model: its ``meta.attempts`` is set to the attempts made."""
        retried = self.fetch(
            method,
            path,
            parse,
            body=body,
            params=params,
            model=model,
            also_retry=also_retry,
            retry=retry,
            what=what,
        )
        result = retried.value
        result.meta.attempts = retried.attempts
        return result

    def request_json(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, Any] | None = None,
        also_retry: Predicate | None = None,
        retry: RetryPolicy | None = None,
        what: str | None = None,
    ) -> Retried[Any]:
        """Like :meth:`fetch`, returning the decoded JSON itself."""
        return self.fetch(
            method, path, _json_only, body=body, params=params, also_retry=also_retry, retry=retry, what=what
        )

    def open_stream(self, path: str, *, body: Any, model: str | None = None, what: str | None = None) -> HTTPResponse:
        """POST ``body`` and return the open streamed response once a 2xx arrived.

        Errors before the headers (including an HTTP error status, whose JSON
        body is read) are retried by the policy; the returned response is
        not, whatever happens while it is read.
        """
        request = HTTPRequest(
            "POST",
            self.url(path),
            dict(self._stream_headers),
            dumps(body),
            stream=True,
            timeout=self._timeout,
            idle_timeout=self._idle,
        )
        label = what or f"POST {path} (stream)"
        send = self.transport.send

        def attempt() -> HTTPResponse:
            response = send(request)
            if response.status >= 300:
                try:
                    error = self.error(response, model=model)
                finally:
                    response.close()
                raise error
            return response

        retried = self.retry.run(attempt, what=label)
        response = retried.value
        response.attempts = retried.attempts  # the stream driver copies it to the ChatStream's meta
        return response

    def error(self, response: HTTPResponse, *, model: str | None = None) -> LLMRelayError:
        """The typed error for ``response`` (reads its body)."""
        try:
            return error_from_response(
                response, provider=self.provider, secrets=self._secrets, model=model, now=self._now
            )
        except LLMRelayError as error:  # the body could not be read
            return error

    def error_from_payload(self, data: Mapping[str, Any], response: HTTPResponse) -> LLMRelayError:
        """The typed error for an ``{"error": {...}}`` object found in a 2xx body."""
        synthetic = HTTPResponse(response.status, response.headers, dumps(dict(data)))
        return self.error(synthetic)

    def close(self) -> None:
        self.transport.close()

    def __repr__(self) -> str:
        return f"<HTTPClient {self.provider!r} {self.base_url}>"


def _json_only(data: Any, _response: HTTPResponse) -> Any:
    return data


def is_status(*statuses: int) -> Predicate:
    """A retry predicate for extra statuses (e.g. a brief 404 window)."""
    wanted = frozenset(statuses)

    def predicate(error: BaseException) -> bool:
        return isinstance(error, APIStatusError) and error.status in wanted

    return predicate
