"""The OpenRouter provider: chat, streaming, models with pricing, key check, credits, generation stats.

OpenRouter is an OpenAI-compatible service, so :class:`OpenRouterProvider`
is an :class:`~llmrelay.providers.openai_compat.OpenAICompatibleProvider`
(one pooled session, one retry policy, typed errors, the OpenAI wire format
and stream driver). What is OpenRouter's own:

* attribution headers ``HTTP-Referer`` (``app_url``) and
  ``X-OpenRouter-Title`` / ``X-Title`` (``app_title``);
* ``usage: {"include": true}`` on every chat call (2025 traffic left out
  ``cost`` without it; it is harmless where it is a no-op);
* body extensions (``models``, ``provider``, ``transforms``, ``plugins``,
  ``reasoning``...) pass through from the request unchanged;
* ``/embeddings`` (the OpenAI-compatible code path) with OpenRouter's
  ``id`` (``gen-emb-...``), serving ``provider`` and ``usage.cost``;
* ``fallback_catalog = true``: when the service cannot be reached, the model
  list llmrelay ships stands in (``ModelList.fallback``), unless a layer
  outside (the pricing plugin) does that after the cache had its say;
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

import logging
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from llmrelay.core.envsettings import EnvAlias, milliseconds, retries_to_attempts
from llmrelay.core.errors import (
    CapabilityNotSupportedError,
    ConfigurationError,
    InvalidResponseError,
    LLMRelayError,
    PermissionDeniedError,
)
from llmrelay.core.http.client import is_status
from llmrelay.core.http.retry import RetryPolicy
from llmrelay.core.provider import CallOptions, Capability, Operation
from llmrelay.core.settings import ProviderSettings, RetrySettings
from pydantic import Field, ValidationError, field_validator

from .openai_compat import OpenAICompatibleProvider

if TYPE_CHECKING:
    from llmrelay.core.account import Credits, GenerationStats, ValidationReport
    from llmrelay.core.catalog import ModelInfo, ModelList
    from llmrelay.core.models import ChatRequest

log = logging.getLogger("llmrelay.providers.openrouter")

__all__ = [
    "DEFAULT_BASE_URL",
    "CreditsNotAvailableError",
    "OpenRouterProvider",
    "OpenRouterSettings",
]

DEFAULT_BASE_URL = "https://openrouter.ai/api/v1"
KEYS_PAGE = "https://openrouter.ai/settings/keys"
CREDITS_PAGE = "https://openrouter.ai/settings/credits"
_MAX_MODEL_PAGES = 50


class OpenRouterSettings(ProviderSettings):
    """OpenRouter's settings: the common ones plus app attribution."""

    # The variables of the original reports, in their units (README, "Environment variables").
    env_aliases: ClassVar[tuple[EnvAlias, ...]] = (
        EnvAlias("OPENROUTER_REQUEST_TIMEOUT", ("timeout.read",), milliseconds, "milliseconds"),
        EnvAlias(
            "OPENROUTER_MAX_RETRIES", ("retry.max_attempts",), retries_to_attempts, "retries after the first attempt"
        ),
        EnvAlias("OPENROUTER_RETRY_DELAY", ("retry.initial_backoff",), milliseconds, "milliseconds"),
    )

    base_url: str | None = DEFAULT_BASE_URL
    app_url: str | None = Field(
        default=None, description="sent as HTTP-Referer: your app's URL, for openrouter.ai rankings"
    )
    app_title: str | None = Field(default=None, description="sent as X-OpenRouter-Title and X-Title: your app's name")
    app_categories: list[str] = Field(default_factory=list, description="sent as X-OpenRouter-Categories")
    generation_wait_seconds: float = Field(
        default=10.0,
        gt=0,
        description="how long get_generation_stats retries the 404 OpenRouter gives right after a call",
    )
    fallback_catalog: bool = Field(
        default=False,
        description="list_models answers with llmrelay's shipped model list (fallback=True) when the service "
        "cannot be reached and nothing is cached",
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
        self.capability = Operation.CREDITS.capability_name


# --------------------------------------------------------------------------- provider


class OpenRouterProvider(OpenAICompatibleProvider):
    """OpenRouter (https://openrouter.ai): every model behind one OpenAI-compatible API.

    An :class:`~llmrelay.providers.openai_compat.OpenAICompatibleProvider`
    (chat, streaming, the pooled client) with OpenRouter's own parts added.
    ``transport`` replaces the pooled HTTP transport (tests pass a
    :class:`~llmrelay.core.http.transport.MockTransport`); ``sleep`` and ``clock``
    replace the retry policy's ``time.sleep`` / ``time.monotonic``.
    """

    name = "openrouter"
    settings_model = OpenRouterSettings
    env_prefix = "OPENROUTER_"
    requires_api_key = True
    capabilities = Capability.CORE | {Capability.CREDITS, Capability.GENERATION_STATS, Capability.EMBEDDINGS}
    default_base_url = DEFAULT_BASE_URL
    service_title = "OpenRouter"
    keys_page = KEYS_PAGE
    credits_hint = f"Add credits at {CREDITS_PAGE}"
    unreachable_hint = "Check the network, the proxy settings (proxies / trust_env) and base_url"

    settings: OpenRouterSettings

    @cached_property
    def _generation_retry(self) -> RetryPolicy:
        # /generation 404s right after a call: retry it briefly, on top of the usual statuses.
        s = self.settings
        return RetryPolicy(
            RetrySettings(
                max_attempts=max(s.retry.max_attempts, 8),
                max_total_seconds=s.generation_wait_seconds,
                initial_backoff=max(s.retry.initial_backoff, 0.25),
                max_backoff=min(max(s.retry.max_backoff, 0.5), 2.0),
                retry_statuses=s.retry.retry_statuses,
                retry_connection_errors=s.retry.retry_connection_errors,
            ),
            sleep=self.retry.sleep,
            clock=self.retry.clock,
            provider=self.name,
        )

    def service_headers(self, settings: ProviderSettings) -> dict[str, str]:
        """The attribution headers: ``HTTP-Referer``, ``X-OpenRouter-Title`` / ``X-Title``, categories."""
        headers: dict[str, str] = {}
        if not isinstance(settings, OpenRouterSettings):
            return headers
        if settings.app_url:
            headers["HTTP-Referer"] = settings.app_url
        if settings.app_title:
            headers["X-OpenRouter-Title"] = settings.app_title
            headers["X-Title"] = settings.app_title  # the older name, still read
        if settings.app_categories:
            headers["X-OpenRouter-Categories"] = ",".join(settings.app_categories)
        return headers

    def prepare_body(self, body: dict[str, Any], request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        """``usage: {"include": true}`` on every chat call (2025 traffic left out ``cost`` without it)."""
        usage = body.get("usage")
        if usage is None:
            body["usage"] = {"include": True}
        elif isinstance(usage, dict) and "include" not in usage:
            body["usage"] = {**usage, "include": True}
        return body

    # ------------------------------------------------------------------ models

    def list_models(self, *, options: CallOptions | None = None) -> ModelList:
        """Every model, with pricing. Follows ``links.next`` when the service pages the list.

        With ``fallback_catalog`` on, an availability error (timeout, 5xx,
        429...) gives the shipped catalog instead, flagged ``fallback=True``,
        unless ``options`` say a layer outside will do that
        (:data:`~llmrelay.core.catalog.FALLBACK_DEFERRED`).
        """
        try:
            return self._fetch_models()
        except LLMRelayError as error:
            from llmrelay.core.catalog import FALLBACK_DEFERRED

            deferred = options is not None and options.extra.get(FALLBACK_DEFERRED)
            if not (error.availability and self.fallback_catalog_enabled) or deferred:
                raise
            log.warning("openrouter: list_models failed (%s); answering with the shipped model list", error)
            listing = self.fallback_models()
            listing.meta.attempts = error.attempts
            return listing

    @property
    def fallback_catalog_enabled(self) -> bool:
        """Whether ``fallback_catalog`` is on (see :class:`~llmrelay.core.catalog.CatalogFallback`)."""
        return self.settings.fallback_catalog

    def fallback_models(self) -> ModelList:
        """The model list llmrelay ships, flagged ``fallback=True``: prices as of its recording."""
        from .openrouter_models import load_fallback_models

        return load_fallback_models(self.instance_name)

    def _fetch_models(self) -> ModelList:
        from .openrouter_models import parse_model_list  # with the catalog models, on the first list call

        provider = self.instance_name
        path, params = "/models", None
        models: list[ModelInfo] = []
        total = None
        retries = 0
        for _ in range(_MAX_MODEL_PAGES):
            reply = self._client.fetch(
                "GET",
                path,
                lambda data, _r: parse_model_list(data, provider=provider),
                params=params,
                what="list models",
            )
            page, extras = reply.value
            retries += reply.attempts - 1
            models.extend(page)
            total = extras["total_count"] if total is None else total
            following = self._next_page(extras.get("next"))
            if following is None or not page:
                break
            path, params = following, None
        from llmrelay.core.catalog import ModelList

        result = ModelList(models=models, provider=provider, total_count=total)
        result.meta.attempts = 1 + retries
        return result

    def _next_page(self, link: Any) -> str | None:
        if not isinstance(link, str) or not link:
            return None
        base = urlsplit(self._client.base_url)
        target = urlsplit(link)
        if target.netloc and target.netloc != base.netloc:
            return None  # never send the key to another host
        path = target.path
        if path.startswith(base.path):
            path = path[len(base.path) :]
        return path + (f"?{target.query}" if target.query else "")

    # ------------------------------------------------------------------ key, credits, generations

    def probe_key(self) -> ValidationReport:
        """``GET /key``: label, limit and usage; a used-up limit is ``no_credits``."""
        from llmrelay.core.account import ValidationReport
        from llmrelay.core.models import to_decimal

        name = self.instance_name
        data = self._client.request_json("GET", "/key", what="key check").value
        info = data.get("data") if isinstance(data, dict) else None
        if not isinstance(info, dict):
            return ValidationReport(
                provider=name, outcome="error", message="the key check failed: /key returned no data"
            )
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
        return ValidationReport(
            outcome="valid", message=f"the key {info.get('label')} is valid: {spent}{bound}", **fields
        )

    def get_credits(self, *, options: CallOptions | None = None) -> Credits:
        """Total credits bought and used. Raises :class:`CreditsNotAvailableError` for keys that may not ask."""
        from llmrelay.core.models import to_decimal

        self.require_key()
        name = self.instance_name
        try:
            reply = self._client.request_json("GET", "/credits", what="credits")
        except PermissionDeniedError as error:
            raise CreditsNotAvailableError(error.message, provider=name) from None
        data = reply.value
        info = data.get("data") if isinstance(data, dict) else None
        total = to_decimal(info.get("total_credits")) if isinstance(info, dict) else None
        used = to_decimal(info.get("total_usage")) if isinstance(info, dict) else None
        if total is None or used is None:
            raise InvalidResponseError('/credits: expected {"data": {"total_credits", "total_usage"}}', provider=name)
        from llmrelay.core.account import Credits

        credits = Credits(total_credits=total, total_usage=used, provider=name)
        credits.meta.attempts = reply.attempts
        return credits

    def get_generation_stats(self, generation_id: str, *, options: CallOptions | None = None) -> GenerationStats:
        """Stats of one generation; the 404 OpenRouter answers right after a call is retried briefly."""
        self.require_key()
        name = self.instance_name
        if not isinstance(generation_id, str) or not generation_id.strip():
            raise ConfigurationError(
                f"[{name}] get_generation_stats needs a generation id such as 'gen-...' (ChatResponse.id), "
                f"got {generation_id!r}"
            )
        reply = self._client.request_json(
            "GET",
            "/generation",
            params={"id": generation_id},
            also_retry=is_status(404),
            retry=self._generation_retry,
            what="generation stats",
        )
        data = reply.value
        info = data.get("data") if isinstance(data, dict) else None
        if not isinstance(info, dict):
            raise InvalidResponseError('/generation: expected {"data": {...}}', provider=name)
        from llmrelay.core.account import GenerationStats

        try:
            stats = GenerationStats.model_validate({**info, "id": info.get("id") or generation_id})
        except ValidationError as exc:
            raise InvalidResponseError(
                f"/generation: unexpected field values ({exc.errors(include_url=False)[0]['msg']})", provider=name
            ) from None
        stats.meta.attempts = reply.attempts
        return stats
