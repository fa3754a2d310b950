"""The OpenRouter provider: chat, streaming, models with pricing, key check, credits, generation stats.

Built on the shared HTTP machinery (:mod:`llmrelay.core.http`: one pooled
session, one retry policy, typed errors) and the OpenAI wire format
(:mod:`llmrelay.providers.openai_wire`). What is OpenRouter's own:

* attribution headers ``HTTP-Referer`` (``app_url``) and
  ``X-OpenRouter-Title`` / ``X-Title`` (``app_title``);
* ``usage: {"include": true}`` on every chat call (2025 traffic left out
  ``cost`` without it; it is harmless where it is a no-op);
* body extensions (``models``, ``provider``, ``transforms``, ``plugins``,
  ``reasoning``...) pass through from the request unchanged;
* ``/key`` for :meth:`OpenRouterProvider.validate_config`, ``/credits``
  (403 for ordinary keys: :class:`CreditsNotAvailableError`), and
  ``/generation``, which answers 404 for a few seconds after a call, so that
  404 is retried within ``generation_wait_seconds``.

Usage::

    from llmrelay.providers.openrouter import OpenRouterProvider

    with OpenRouterProvider(api_key="sk-or-...", app_title="My agent") as provider:
        reply = provider.execute({"model": "openai/gpt-4o-mini",
                                  "messages": [{"role": "user", "content": "Hi"}]})
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator

from llmrelay.core.errors import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    CapabilityNotSupportedError,
    ConfigurationError,
    InvalidResponseError,
    LLMRelayError,
    PaymentRequiredError,
    PermissionDeniedError,
)
from llmrelay.core.hookspecs import hookimpl
from llmrelay.core.http import HTTPClient, is_status
from llmrelay.core.models import (
    ChatResponse,
    Credits,
    GenerationStats,
    ModelInfo,
    ModelList,
    Pricing,
    ValidationReport,
    to_decimal,
)
from llmrelay.core.provider import CallOptions, Capability, Provider, RequestLike
from llmrelay.core.retry import RetryPolicy
from llmrelay.core.secrets import mask
from llmrelay.core.settings import ProviderSettings, RetrySettings
from llmrelay.core.stream import ChatStream
from llmrelay.core.transport import HTTPResponse, RequestsTransport, Transport

from .openai_wire import chat_stream, coerce_chat_request, parse_chat_response

__all__ = [
    "DEFAULT_BASE_URL",
    "OpenRouterSettings",
    "OpenRouterProvider",
    "CreditsNotAvailableError",
    "model_info_from_openrouter",
    "parse_model_list",
    "llmrelay_register_providers",
]

DEFAULT_BASE_URL = "https://openrouter.ai/api/v1"
KEYS_PAGE = "https://openrouter.ai/settings/keys"
CREDITS_PAGE = "https://openrouter.ai/settings/credits"
_MAX_MODEL_PAGES = 50


class OpenRouterSettings(ProviderSettings):
    """OpenRouter's settings: the common ones plus app attribution."""

    base_url: str | None = DEFAULT_BASE_URL
    app_url: str | None = Field(default=None, description="sent as HTTP-Referer: your app's URL, for openrouter.ai rankings")
    app_title: str | None = Field(default=None, description="sent as X-OpenRouter-Title and X-Title: your app's name")
    app_categories: list[str] = Field(default_factory=list, description="sent as X-OpenRouter-Categories")
    generation_wait_seconds: float = Field(
        default=10.0, gt=0, description="how long get_generation_stats retries the 404 OpenRouter gives right after a call"
    )

    @field_validator("app_url")
    @classmethod
    def _app_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("app_url must be a URL starting with http:// or https://")
        return value

    @field_validator("app_title")
    @classmethod
    def _one_line(cls, value: str | None) -> str | None:
        if value is not None and ("\n" in value or "\r" in value):
            raise ValueError("app_title must be one line (it is sent as an HTTP header)")
        return value


class CreditsNotAvailableError(CapabilityNotSupportedError):
    """``/credits`` refused for this key (403): OpenRouter serves it to management keys only.

    Not a failure of the provider (``availability`` is False, so breakers and
    retries ignore it): the same call works with a management key.
    """

    def __init__(self, detail: str, *, provider: str | None = None) -> None:
        LLMRelayError.__init__(
            self,
            "credits are not available for this key: OpenRouter answers /credits only for "
            f"management keys ({detail}). Use a management key, or see your balance at {CREDITS_PAGE}",
            provider=provider,
            status=403,
        )
        self.capability = Capability.CREDITS


# --------------------------------------------------------------------------- models


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _modalities(architecture: dict[str, Any]) -> tuple[list[str], list[str]]:
    inputs = architecture.get("input_modalities")
    outputs = architecture.get("output_modalities")
    if isinstance(inputs, list) and isinstance(outputs, list):
        return [str(m) for m in inputs], [str(m) for m in outputs]
    # 2024 shape: only "modality": "text+image->text".
    modality = architecture.get("modality")
    if isinstance(modality, str) and "->" in modality:
        left, _, right = modality.partition("->")
        return [m for m in left.split("+") if m], [m for m in right.split("+") if m]
    return [], []


def model_info_from_openrouter(data: dict[str, Any]) -> ModelInfo:
    """One ``/models`` entry, any vintage (2024 ``modality`` string, null fields, ``"-1"`` prices)."""
    architecture = data.get("architecture") or {}
    top = data.get("top_provider") or {}
    inputs, outputs = _modalities(architecture if isinstance(architecture, dict) else {})
    raw_pricing = data.get("pricing") or {}
    pricing = Pricing.model_validate(raw_pricing if isinstance(raw_pricing, dict) else {})
    supported = data.get("supported_parameters") or []
    model_id = str(data["id"])
    return ModelInfo(
        id=model_id,
        name=data.get("name"),
        description=data.get("description"),
        created=_int_or_none(data.get("created")),
        context_length=_int_or_none(data.get("context_length")) or _int_or_none(top.get("context_length")),
        max_completion_tokens=_int_or_none(top.get("max_completion_tokens")),
        input_modalities=inputs,
        output_modalities=outputs,
        supported_parameters=[str(p) for p in supported] if isinstance(supported, list) else [],
        pricing=pricing,
        provider=model_id.split("/", 1)[0] if "/" in model_id else None,
        canonical_slug=data.get("canonical_slug"),
        is_moderated=top.get("is_moderated"),
    )


def parse_model_list(payload: Any, *, provider: str) -> tuple[list[ModelInfo], dict[str, Any]]:
    """``{"data": [...], "total_count"?, "links"?}`` into model infos and the extras.

    Entries without an id are skipped; any other malformed entry is skipped
    too, so one odd model never hides the rest.
    """
    if not isinstance(payload, dict) or not isinstance(payload.get("data"), list):
        raise InvalidResponseError('/models: expected {"data": [...]}', provider=provider)
    models = []
    for entry in payload["data"]:
        if not isinstance(entry, dict) or not entry.get("id"):
            continue
        try:
            models.append(model_info_from_openrouter(entry))
        except (ValidationError, TypeError, ValueError):
            continue
    links = payload.get("links") if isinstance(payload.get("links"), dict) else {}
    extras = {"total_count": _int_or_none(payload.get("total_count")), "next": links.get("next")}
    return models, extras


# --------------------------------------------------------------------------- provider


class OpenRouterProvider(Provider):
    """OpenRouter (https://openrouter.ai): every model behind one OpenAI-compatible API.

    ``transport`` replaces the pooled HTTP transport (tests pass a
    :class:`~llmrelay.core.transport.MockTransport`); ``sleep`` and ``clock``
    replace the retry policy's ``time.sleep`` / ``time.monotonic``.
    """

    name = "openrouter"
    settings_model = OpenRouterSettings
    env_prefix = "OPENROUTER_"
    capabilities = Capability.CORE | {Capability.CREDITS, Capability.GENERATION_STATS}

    settings: OpenRouterSettings

    def __init__(
        self,
        settings: OpenRouterSettings | None = None,
        *,
        transport: Transport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        **fields: Any,
    ) -> None:
        super().__init__(settings, **fields)
        s = self.settings
        if not isinstance(s, OpenRouterSettings):
            # A plain ProviderSettings: keep its values, add OpenRouter's defaults.
            s = self.settings = OpenRouterSettings.model_validate(
                {**s.model_dump(exclude={"api_key"}), "api_key": s.api_key, "base_url": s.base_url or DEFAULT_BASE_URL}
            )
        self.retry = RetryPolicy(s.retry, sleep=sleep, clock=clock, provider=self.name)
        # /generation 404s right after a call: retry it briefly, on top of the usual statuses.
        self._generation_retry = RetryPolicy(
            RetrySettings(
                max_attempts=max(s.retry.max_attempts, 8),
                max_total_seconds=s.generation_wait_seconds,
                initial_backoff=max(s.retry.initial_backoff, 0.25),
                max_backoff=min(max(s.retry.max_backoff, 0.5), 2.0),
                retry_statuses=s.retry.retry_statuses,
                retry_connection_errors=s.retry.retry_connection_errors,
            ),
            sleep=sleep,
            clock=clock,
            provider=self.name,
        )
        self._client = HTTPClient(
            provider=self.name,
            base_url=s.base_url or DEFAULT_BASE_URL,
            settings=s,
            transport=transport or RequestsTransport(s),
            retry=self.retry,
            auth_headers={"Authorization": f"Bearer {s.key()}"} if s.key() else None,
            headers=self._attribution_headers(s),
        )

    @staticmethod
    def _attribution_headers(s: OpenRouterSettings) -> dict[str, str]:
        headers = {}
        if s.app_url:
            headers["HTTP-Referer"] = s.app_url
        if s.app_title:
            headers["X-OpenRouter-Title"] = s.app_title
            headers["X-Title"] = s.app_title  # the older name, still read
        if s.app_categories:
            headers["X-OpenRouter-Categories"] = ",".join(s.app_categories)
        return headers

    @property
    def transport(self) -> Transport:
        return self._client.transport

    def _need_key(self) -> None:
        if self.settings.api_key is None:
            raise ConfigurationError(
                f"[{self.instance_name}] no API key: set OPENROUTER_API_KEY or pass api_key=... "
                f"(create one at {KEYS_PAGE})"
            )

    # ------------------------------------------------------------------ chat

    def _chat_body(self, request: RequestLike, stream: bool) -> tuple[dict[str, Any], str]:
        self._need_key()
        chat = coerce_chat_request(request, default_model=self.settings.default_model, provider=self.instance_name)
        body = chat.to_wire()
        usage = body.get("usage")
        if usage is None:
            body["usage"] = {"include": True}
        elif isinstance(usage, dict) and "include" not in usage:
            body["usage"] = {**usage, "include": True}
        if stream:
            body["stream"] = True
        return body, chat.model or ""

    def execute(self, request: RequestLike, *, options: CallOptions | None = None) -> ChatResponse:
        body, model = self._chat_body(request, stream=False)
        client = self._client
        provider = self.instance_name

        def parse(data: Any, response: HTTPResponse) -> ChatResponse:
            reply = parse_chat_response(
                data, provider=provider, on_error=lambda payload: client.error_from_payload(payload, response)
            )
            if reply.id is None:
                reply.id = response.headers.get("x-generation-id")
            return reply

        return client.request("POST", "/chat/completions", parse, body=body, model=model, what="chat completion")

    def stream_execute(self, request: RequestLike, *, options: CallOptions | None = None) -> ChatStream:
        body, model = self._chat_body(request, stream=True)
        response = self._client.open_stream("/chat/completions", body=body, model=model, what="chat stream")
        return chat_stream(response, provider=self.instance_name, model=model)

    # ------------------------------------------------------------------ models

    def list_models(self, *, options: CallOptions | None = None) -> ModelList:
        """Every model, with pricing. Follows ``links.next`` when the service pages the list."""
        provider = self.instance_name
        path, params = "/models", None
        models: list[ModelInfo] = []
        total = None
        for _ in range(_MAX_MODEL_PAGES):
            page, extras = self._client.request(
                "GET", path, lambda data, _r: parse_model_list(data, provider=provider), params=params, what="list models"
            )
            models.extend(page)
            total = extras["total_count"] if total is None else total
            following = self._next_page(extras.get("next"))
            if following is None or not page:
                break
            path, params = following, None
        return ModelList(models=models, provider=provider, total_count=total)

    def _next_page(self, link: Any) -> str | None:
        if not isinstance(link, str) or not link:
            return None
        base = urlsplit(self._client.base_url)
        target = urlsplit(link)
        if target.netloc and target.netloc != base.netloc:
            return None  # never send the key to another host
        path = target.path
        if path.startswith(base.path):
            path = path[len(base.path):]
        return path + (f"?{target.query}" if target.query else "")

    # ------------------------------------------------------------------ key, credits, generations

    def _config_problems(self) -> list[str]:
        problems = []
        key = self.settings.key()
        if not key:
            problems.append(f"api_key is not set: set OPENROUTER_API_KEY or pass api_key=... (create one at {KEYS_PAGE})")
        elif key != key.strip() or any(c.isspace() for c in key):
            problems.append("api_key contains whitespace: check how it was copied into the config or environment")
        elif key.lower().startswith("bearer "):
            problems.append("api_key starts with 'Bearer ': give the key alone; llmrelay adds the prefix")
        return problems

    def validate_config(self) -> ValidationReport:
        """Check settings first (no network), then the key against ``GET /key``.

        Never raises for a bad key, no credits or an unreachable service:
        each is its own ``outcome`` with a message saying what to do.
        """
        name = self.instance_name
        problems = self._config_problems()
        if problems:
            return ValidationReport(
                provider=name, outcome="config_error", message="the configuration has problems: " + "; ".join(problems),
                problems=problems,
            )
        try:
            data, _ = self._client.request_json("GET", "/key", what="key check")
        except AuthenticationError as error:
            return ValidationReport(
                provider=name, outcome="invalid_key",
                message=f"OpenRouter rejected the API key {mask(self.settings.key())} ({error.message}). "
                f"Check OPENROUTER_API_KEY, or create a key at {KEYS_PAGE}",
            )
        except PaymentRequiredError as error:
            return ValidationReport(
                provider=name, outcome="no_credits",
                message=f"the key is valid but out of credits ({error.message}). Add credits at {CREDITS_PAGE}",
            )
        except (APIConnectionError, APITimeoutError) as error:
            return ValidationReport(
                provider=name, outcome="unreachable",
                message=f"could not reach OpenRouter at {self._client.base_url}: {error.message}. "
                "Check the network, the proxy settings (proxies / trust_env) and base_url",
            )
        except LLMRelayError as error:
            return ValidationReport(provider=name, outcome="error", message=f"the key check failed: {error}")
        info = data.get("data") if isinstance(data, dict) else None
        if not isinstance(info, dict):
            return ValidationReport(provider=name, outcome="error", message="the key check failed: /key returned no data")
        limit = to_decimal(info.get("limit"))
        remaining = to_decimal(info.get("limit_remaining"))
        usage = to_decimal(info.get("usage"))
        if remaining is None and limit is not None and usage is not None:
            remaining = limit - usage
        fields: dict[str, Any] = {
            "provider": name,
            "key_label": info.get("label"),
            "limit": limit,
            "limit_remaining": remaining,
            "usage": usage,
            "is_free_tier": info.get("is_free_tier"),
        }
        spent = f"usage ${usage}" if usage is not None else "usage unknown"
        bound = f" of a ${limit} limit" if limit is not None else " (no spending limit)"
        if remaining is not None and remaining <= 0:
            return ValidationReport(
                outcome="no_credits",
                message=f"the key {info.get('label')} is valid but its limit is used up ({spent}{bound}). "
                f"Raise the key's limit at {KEYS_PAGE} or add credits at {CREDITS_PAGE}",
                **fields,
            )
        return ValidationReport(outcome="valid", message=f"the key {info.get('label')} is valid: {spent}{bound}", **fields)

    def get_credits(self, *, options: CallOptions | None = None) -> Credits:
        """Total credits bought and used. Raises :class:`CreditsNotAvailableError` for keys that may not ask."""
        self._need_key()
        name = self.instance_name
        try:
            data, _ = self._client.request_json("GET", "/credits", what="credits")
        except PermissionDeniedError as error:
            raise CreditsNotAvailableError(error.message, provider=name) from None
        info = data.get("data") if isinstance(data, dict) else None
        total = to_decimal(info.get("total_credits")) if isinstance(info, dict) else None
        used = to_decimal(info.get("total_usage")) if isinstance(info, dict) else None
        if total is None or used is None:
            raise InvalidResponseError('/credits: expected {"data": {"total_credits", "total_usage"}}', provider=name)
        return Credits(total_credits=total, total_usage=used, provider=name)

    def get_generation_stats(self, generation_id: str, *, options: CallOptions | None = None) -> GenerationStats:
        """Stats of one generation; the 404 OpenRouter answers right after a call is retried briefly."""
        self._need_key()
        name = self.instance_name
        if not isinstance(generation_id, str) or not generation_id.strip():
            raise ConfigurationError(
                f"[{name}] get_generation_stats needs a generation id such as 'gen-...' (ChatResponse.id), "
                f"got {generation_id!r}"
            )
        data, _ = self._client.request_json(
            "GET",
            "/generation",
            params={"id": generation_id},
            also_retry=is_status(404),
            retry=self._generation_retry,
            what="generation stats",
        )
        info = data.get("data") if isinstance(data, dict) else None
        if not isinstance(info, dict):
            raise InvalidResponseError('/generation: expected {"data": {...}}', provider=name)
        try:
            return GenerationStats.model_validate({**info, "id": info.get("id") or generation_id})
        except ValidationError as exc:
            raise InvalidResponseError(
                f"/generation: unexpected field values ({exc.errors(include_url=False)[0]['msg']})", provider=name
            ) from None

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        self._client.close()


@hookimpl
def llmrelay_register_providers(register: Callable[[type[Provider]], None]) -> None:
    register(OpenRouterProvider)
