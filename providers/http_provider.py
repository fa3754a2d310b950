"""What every HTTP provider shares: settings, one pooled client, the key rules, the key check.

:class:`HTTPProvider` is the base of the OpenAI-compatible, OpenRouter and
Anthropic providers (and of third-party ones that want the same machinery).
It builds, once per instance:

* the settings, coerced to the subclass's ``settings_model`` when a plain
  :class:`~llmrelay.core.settings.ProviderSettings` is passed;
* one :class:`~llmrelay.core.http.client.HTTPClient`: a pooled
  :class:`~llmrelay.core.http.transport.RequestsTransport` (or the ``transport``
  given, for tests), the retry policy (``sleep`` / ``clock`` injectable), the
  auth header from :meth:`HTTPProvider.auth_headers` and the service's own
  headers from :meth:`HTTPProvider.service_headers`.

and gives :meth:`HTTPProvider.validate_config` its shape: settings problems
first, with no network call (:meth:`HTTPProvider.config_problems`), then one
cheap authenticated call (:meth:`HTTPProvider.probe_key`) whose failures
become the report's outcomes: ``invalid_key``, ``no_credits``,
``unreachable`` or ``error``. A subclass words the hints
(``keys_page``, ``credits_hint``, ``unreachable_hint``), not the logic.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from llmrelay.core.errors import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    ConfigurationError,
    LLMRelayError,
    PaymentRequiredError,
)
from llmrelay.core.http.client import HTTPClient
from llmrelay.core.http.retry import RetryPolicy
from llmrelay.core.http.transport import RequestsTransport, Transport
from llmrelay.core.provider import Provider
from llmrelay.core.secrets import mask
from llmrelay.core.settings import ProviderSettings

if TYPE_CHECKING:
    from llmrelay.core.account import ValidationReport

__all__ = ["HTTPProvider"]


class HTTPProvider(Provider):
    """A provider that talks to one HTTP service through one pooled :class:`HTTPClient`.

    Subclasses set ``name``, ``settings_model``, ``env_prefix`` and
    ``default_base_url``, and override the hooks they need. ``transport``
    replaces the pooled transport (tests pass a ``MockTransport``); ``sleep``
    and ``clock`` replace the retry policy's ``time.sleep`` / ``time.monotonic``.
    """

    #: Used when the settings name no ``base_url``.
    default_base_url: ClassVar[str]
    #: How messages name the service ("OpenRouter"); None: the instance name.
    service_title: ClassVar[str | None] = None
    #: Where a user creates a key, quoted when the key is missing or rejected.
    keys_page: ClassVar[str | None] = None
    #: Said after "out of credits" in a key check.
    credits_hint: ClassVar[str] = "Check the account's billing"
    #: Said after "could not reach ..." in a key check.
    unreachable_hint: ClassVar[str] = "Check the network, the proxy settings (proxies / trust_env) and base_url"

    def __init__(
        self,
        settings: ProviderSettings | None = None,
        *,
        transport: Transport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        **fields: Any,
    ) -> None:
        super().__init__(settings, **fields)
        s = self.settings
        if not isinstance(s, self.settings_model):
            # A plain ProviderSettings: keep its values, add this provider's defaults.
            s = self.settings = self.settings_model.model_validate(
                {
                    **s.model_dump(exclude={"api_key"}),
                    "api_key": s.api_key,
                    "base_url": s.base_url or self.default_base_url,
                }
            )
        base_url = (s.base_url or self.default_base_url).rstrip("/")
        self.check_settings(s, base_url)
        self.retry = RetryPolicy(s.retry, sleep=sleep, clock=clock, provider=self.name)
        key = s.key()
        self._client = HTTPClient(
            provider=self.name,
            base_url=base_url,
            settings=s,
            transport=transport or RequestsTransport(s),
            retry=self.retry,
            auth_headers=self.auth_headers(key) if key else None,
            headers=self.service_headers(s),
        )

    # ------------------------------------------------------------------ hooks for subclasses

    def check_settings(self, settings: ProviderSettings, base_url: str) -> None:
        """Raise :class:`ConfigurationError` for settings that can never work (before any connection is made)."""

    def auth_headers(self, key: str) -> dict[str, str]:
        """The headers that carry ``key``; never logged, and redacted from error messages."""
        return {"Authorization": f"Bearer {key}"}

    def service_headers(self, settings: ProviderSettings) -> dict[str, str]:
        """Headers this service wants on every request, besides auth."""
        return {}

    def probe_key(self) -> ValidationReport:
        """One cheap authenticated call; the base lists the models. Errors it raises become outcomes."""
        from llmrelay.core.account import ValidationReport  # kept out of the provider-build path

        models = self.list_models()
        return ValidationReport(
            provider=self.instance_name,
            outcome="valid",
            message=f"{self._service()} answered with {len(models)} models",
        )

    def config_problems(self) -> list[str]:
        """What is wrong with the settings, found without a network call."""
        key = self.settings.key()
        if not key:
            return [f"api_key is not set: {self._key_advice()}"] if self.requires_api_key else []
        if key.lower().startswith("bearer "):
            return ["api_key starts with 'Bearer ': give the key alone; llmrelay adds the prefix"]
        if key != key.strip() or any(c.isspace() for c in key):
            return ["api_key contains whitespace: check how it was copied into the config or environment"]
        return []

    # ------------------------------------------------------------------ shared behaviour

    @property
    def transport(self) -> Transport:
        return self._client.transport

    @property
    def base_url(self) -> str:
        return self._client.base_url

    def require_key(self) -> None:
        """Raise :class:`ConfigurationError` before a call that cannot succeed without a key."""
        if self.requires_api_key and self.settings.api_key is None:
            raise ConfigurationError(f"[{self.instance_name}] no API key: {self._key_advice()}")

    def validate_config(self) -> ValidationReport:
        """Check the settings first (no network), then the key with :meth:`probe_key`.

        Never raises for a bad key, no credits or an unreachable service:
        each is its own ``outcome`` with a message saying what to do.
        """
        from llmrelay.core.account import ValidationReport

        name = self.instance_name
        problems = self.config_problems()
        if problems:
            return ValidationReport(
                provider=name,
                outcome="config_error",
                message="the configuration has problems: " + "; ".join(problems),
                problems=problems,
            )
        service = self._service()
        try:
            return self.probe_key()
        except AuthenticationError as error:
            where = f" Check {self.env_prefix}API_KEY" + (
                f", or create a key at {self.keys_page}" if self.keys_page else ""
            )
            return ValidationReport(
                provider=name,
                outcome="invalid_key",
                message=f"{service} rejected the API key {mask(self.settings.key())} ({error.message}).{where}",
            )
        except PaymentRequiredError as error:
            return ValidationReport(
                provider=name,
                outcome="no_credits",
                message=f"the key is valid but out of credits ({error.message}). {self.credits_hint}",
            )
        except (APIConnectionError, APITimeoutError) as error:
            return ValidationReport(
                provider=name,
                outcome="unreachable",
                message=f"could not reach {service} at {self._client.base_url}: {error.message}. {self.unreachable_hint}",
            )
        except LLMRelayError as error:
            return ValidationReport(provider=name, outcome="error", message=f"the key check failed: {error}")

    def close(self) -> None:
        self._client.close()

    def _service(self) -> str:
        return self.service_title or self.instance_name

    def _key_advice(self) -> str:
        where = f" (create one at {self.keys_page})" if self.keys_page else ""
        return f"set {self.env_prefix}API_KEY or pass api_key=...{where}"
