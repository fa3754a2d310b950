"""Any OpenAI-compatible chat service: OpenAI, vLLM, Ollama, llama.cpp server, LM Studio, Groq, Together...

It speaks the OpenAI chat-completions wire format through the same
machinery as the OpenRouter provider: :class:`~llmrelay.core.http.HTTPClient`
(one pooled transport, the retry policy, typed errors) and
:mod:`llmrelay.providers.openai_wire` (request coercion, response parsing,
the SSE stream driver). Only the service's address, key and a few headers
are its own.

One provider type, many instances::

    # llmrelay.toml
    [providers.local]
    type = "openai"
    base_url = "http://127.0.0.1:11434/v1"        # Ollama; no key needed

    [providers.groq]
    type = "openai"
    base_url = "https://api.groq.com/openai/v1"
    api_key = "${GROQ_API_KEY}"

    create_provider("groq").execute({"model": "llama-3.1-8b-instant", "messages": [...]})

A key is optional (local servers take none) except for api.openai.com
itself, where leaving it out is a configuration error raised at once.
Subclasses adapt a service by overriding :meth:`prepare_body` and
:meth:`service_headers` (see the plugin example under ``examples/``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, ClassVar
from urllib.parse import urlsplit

from pydantic import Field

from llmrelay.core.errors import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    ConfigurationError,
    InvalidResponseError,
    LLMRelayError,
    PaymentRequiredError,
    RateLimitError,
)
from llmrelay.core.hookspecs import hookimpl
from llmrelay.core.http import HTTPClient
from llmrelay.core.models import (
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    ModelInfo,
    ModelList,
    Usage,
    ValidationReport,
)
from llmrelay.core.provider import CallOptions, Capability, Provider, RequestLike
from llmrelay.core.retry import RetryPolicy
from llmrelay.core.secrets import mask
from llmrelay.core.settings import ProviderSettings
from llmrelay.core.stream import ChatStream
from llmrelay.core.transport import HTTPResponse, RequestsTransport, Transport

from .openai_wire import chat_stream, coerce_chat_request, parse_chat_response

__all__ = [
    "DEFAULT_BASE_URL",
    "OpenAICompatibleSettings",
    "OpenAICompatibleProvider",
    "model_info_from_openai",
    "llmrelay_register_providers",
]

DEFAULT_BASE_URL = "https://api.openai.com/v1"
_KEY_REQUIRED_HOSTS = {"api.openai.com"}


class OpenAICompatibleSettings(ProviderSettings):
    """The common settings plus OpenAI's optional organization / project headers."""

    base_url: str | None = Field(default=None, description="None: the provider's default_base_url (OpenAI's API)")
    organization: str | None = Field(default=None, description="sent as OpenAI-Organization")
    project: str | None = Field(default=None, description="sent as OpenAI-Project")
    stream_usage: bool = Field(
        default=True,
        description="ask for a usage chunk at the end of streams (stream_options.include_usage); "
        "turn off for servers that reject stream_options",
    )


def model_info_from_openai(entry: dict[str, Any]) -> ModelInfo:
    """One ``/models`` entry (``{"id", "created", "owned_by"}``; vLLM adds ``max_model_len``)."""
    created = entry.get("created")
    length = entry.get("max_model_len") or entry.get("context_length") or entry.get("context_window")
    return ModelInfo(
        id=str(entry["id"]),
        created=created if isinstance(created, int) and not isinstance(created, bool) else None,
        context_length=length if isinstance(length, int) and not isinstance(length, bool) else None,
        provider=entry.get("owned_by") if isinstance(entry.get("owned_by"), str) else None,
    )


class OpenAICompatibleProvider(Provider):
    """A service that speaks OpenAI's ``/chat/completions``, ``/models`` and ``/embeddings``.

    ``transport`` replaces the pooled HTTP transport (tests pass a
    ``MockTransport``); ``sleep`` and ``clock`` drive the retry policy.
    """

    name: ClassVar[str] = "openai"
    settings_model: ClassVar[type[ProviderSettings]] = OpenAICompatibleSettings
    env_prefix: ClassVar[str] = "OPENAI_"
    requires_api_key: ClassVar[bool] = False
    capabilities: ClassVar[frozenset[str]] = Capability.CORE | {Capability.EMBEDDINGS}
    default_base_url: ClassVar[str] = DEFAULT_BASE_URL

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
            s = self.settings = self.settings_model.model_validate({**s.model_dump(exclude={"api_key"}), "api_key": s.api_key})
        base_url = (s.base_url or self.default_base_url).rstrip("/")
        if s.api_key is None and urlsplit(base_url).hostname in _KEY_REQUIRED_HOSTS:
            raise ConfigurationError(
                f"{type(self).__name__}: {base_url} needs an API key: set {self.env_prefix}API_KEY or pass api_key=... "
                "(local servers such as Ollama or vLLM need none: set base_url to theirs)"
            )
        self.retry = RetryPolicy(s.retry, sleep=sleep, clock=clock, provider=self.name)
        key = s.key()
        self._client = HTTPClient(
            provider=self.name,
            base_url=base_url,
            settings=s,
            transport=transport or RequestsTransport(s),
            retry=self.retry,
            auth_headers={"Authorization": f"Bearer {key}"} if key else None,
            headers=self.service_headers(s),
        )

    # ------------------------------------------------------------------ hooks for subclasses

    def service_headers(self, settings: ProviderSettings) -> dict[str, str]:
        """Headers this service wants on every request, besides auth."""
        headers = {}
        organization = getattr(settings, "organization", None)
        project = getattr(settings, "project", None)
        if organization:
            headers["OpenAI-Organization"] = organization
        if project:
            headers["OpenAI-Project"] = project
        return headers

    def prepare_body(self, body: dict[str, Any], request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        """The final chat body; ``stream`` is already set when streaming."""
        if stream and getattr(self.settings, "stream_usage", False) and "stream_options" not in body:
            body["stream_options"] = {"include_usage": True}
        return body

    @property
    def transport(self) -> Transport:
        return self._client.transport

    @property
    def base_url(self) -> str:
        return self._client.base_url

    # ------------------------------------------------------------------ chat

    def _chat_body(self, request: RequestLike, stream: bool) -> tuple[dict[str, Any], str]:
        chat = coerce_chat_request(request, default_model=self.settings.default_model, provider=self.instance_name)
        body = chat.to_wire()
        if stream:
            body["stream"] = True
        return self.prepare_body(body, chat, stream=stream), chat.model or ""

    def execute(self, request: RequestLike, *, options: CallOptions | None = None) -> ChatResponse:
        body, model = self._chat_body(request, stream=False)
        client = self._client
        provider = self.instance_name

        def parse(data: Any, response: HTTPResponse) -> ChatResponse:
            reply = parse_chat_response(
                data, provider=provider, on_error=lambda payload: client.error_from_payload(payload, response)
            )
            if reply.id is None:  # some gateways (OpenRouter) give the id only as a header
                reply.id = response.headers.get("x-generation-id")
            return reply

        return client.request("POST", "/chat/completions", parse, body=body, model=model, what="chat completion")

    def stream_execute(self, request: RequestLike, *, options: CallOptions | None = None) -> ChatStream:
        body, model = self._chat_body(request, stream=True)
        response = self._client.open_stream("/chat/completions", body=body, model=model, what="chat stream")
        return chat_stream(response, provider=self.instance_name, model=model)

    # ------------------------------------------------------------------ models, key, embeddings

    def list_models(self, *, options: CallOptions | None = None) -> ModelList:
        provider = self.instance_name

        def parse(data: Any, _response: HTTPResponse) -> ModelList:
            entries = data.get("data") if isinstance(data, dict) else None
            if not isinstance(entries, list):
                raise InvalidResponseError('/models: expected {"data": [...]}', provider=provider)
            models = [model_info_from_openai(e) for e in entries if isinstance(e, dict) and e.get("id")]
            return ModelList(models=models, provider=provider)

        return self._client.request("GET", "/models", parse, what="list models")

    def validate_config(self) -> ValidationReport:
        """Check the key (if any) and the address with ``GET /models``; never raises for a bad key."""
        name = self.instance_name
        base_url = self._client.base_url
        key = self.settings.key()
        if key is not None and (key != key.strip() or key.lower().startswith("bearer ")):
            problem = "api_key has surrounding whitespace or a 'Bearer ' prefix: give the key alone"
            return ValidationReport(provider=name, outcome="config_error", message=problem, problems=[problem])
        try:
            models = self.list_models()
        except AuthenticationError as error:
            return ValidationReport(provider=name, outcome="invalid_key",
                                    message=f"{base_url} rejected the API key {mask(key)} ({error.message})")
        except (PaymentRequiredError, RateLimitError) as error:
            if isinstance(error, RateLimitError) and "quota" not in error.message.lower():
                return ValidationReport(provider=name, outcome="error", message=f"the key check was rate limited: {error}")
            return ValidationReport(provider=name, outcome="no_credits",
                                    message=f"the key is valid but has no quota left ({error.message})")
        except (APIConnectionError, APITimeoutError) as error:
            return ValidationReport(provider=name, outcome="unreachable",
                                    message=f"could not reach {base_url}: {error.message}. Is the server running, "
                                    "and is base_url right (it usually ends in /v1)?")
        except LLMRelayError as error:
            return ValidationReport(provider=name, outcome="error", message=f"the check failed: {error}")
        return ValidationReport(provider=name, outcome="valid",
                                message=f"{base_url} answered with {len(models)} models")

    def embed(self, request: EmbeddingRequest | dict[str, Any], *, options: CallOptions | None = None) -> EmbeddingResponse:
        embedding = request if isinstance(request, EmbeddingRequest) else EmbeddingRequest.model_validate(request)
        model = embedding.model or self.settings.default_model
        if not model:
            raise ConfigurationError(f"[{self.instance_name}] the embedding request names no model")
        body = {"model": model, "input": embedding.input, **embedding.extra_body}
        provider = self.instance_name

        def parse(data: Any, _response: HTTPResponse) -> EmbeddingResponse:
            entries = data.get("data") if isinstance(data, dict) else None
            if not isinstance(entries, list) or not all(isinstance(e, dict) and "embedding" in e for e in entries):
                raise InvalidResponseError('/embeddings: expected {"data": [{"embedding": [...]}]}', provider=provider)
            ordered = sorted(entries, key=lambda e: e.get("index", 0))
            return EmbeddingResponse(model=data.get("model") or model, provider=provider,
                                     embeddings=[e["embedding"] for e in ordered], usage=Usage.from_openai(data.get("usage")))

        return self._client.request("POST", "/embeddings", parse, body=body, model=model, what="embeddings")

    def close(self) -> None:
        self._client.close()


@hookimpl
def llmrelay_register_providers(register: Callable[[type[Provider]], None]) -> None:
    register(OpenAICompatibleProvider)
