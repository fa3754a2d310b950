"""Any OpenAI-compatible chat service: OpenAI, vLLM, Ollama, llama.cpp server, LM Studio, Groq, Together...

It is an :class:`~llmrelay.providers.http_provider.HTTPProvider` (one pooled
transport, the retry policy, typed errors, the key check) speaking the
OpenAI chat-completions wire format of :mod:`llmrelay.providers.openai_wire`
(request coercion, response parsing, the SSE stream driver). The OpenRouter
provider is a subclass.

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

from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from llmrelay.core.errors import ConfigurationError, InvalidResponseError, RateLimitError
from llmrelay.core.http.transport import HTTPResponse
from llmrelay.core.models import ChatRequest, ChatResponse
from llmrelay.core.provider import CallOptions, Capability, RequestLike
from llmrelay.core.settings import ProviderSettings
from llmrelay.core.stream import ChatStream
from pydantic import Field

from .http_provider import HTTPProvider
from .openai_wire import chat_stream, coerce_chat_request, parse_chat_response, parse_embedding_response

if TYPE_CHECKING:
    # The results of the other operations are imported where those run.
    from llmrelay.core.account import ValidationReport
    from llmrelay.core.catalog import ModelInfo, ModelList
    from llmrelay.core.embeddings import EmbeddingRequest, EmbeddingResponse

__all__ = [
    "DEFAULT_BASE_URL",
    "OpenAICompatibleProvider",
    "OpenAICompatibleSettings",
    "model_info_from_openai",
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
    from llmrelay.core.catalog import ModelInfo

    created = entry.get("created")
    length = entry.get("max_model_len") or entry.get("context_length") or entry.get("context_window")
    return ModelInfo(
        id=str(entry["id"]),
        created=created if isinstance(created, int) and not isinstance(created, bool) else None,
        context_length=length if isinstance(length, int) and not isinstance(length, bool) else None,
        provider=entry.get("owned_by") if isinstance(entry.get("owned_by"), str) else None,
    )


class OpenAICompatibleProvider(HTTPProvider):
    """A service that speaks OpenAI's ``/chat/completions``, ``/models`` and ``/embeddings``.

    ``transport`` replaces the pooled HTTP transport (tests pass a
    ``MockTransport``); ``sleep`` and ``clock`` drive the retry policy.
    """

    name = "openai"
    settings_model: ClassVar[type[ProviderSettings]] = OpenAICompatibleSettings
    env_prefix: ClassVar[str] = "OPENAI_"
    requires_api_key: ClassVar[bool] = False
    capabilities = Capability.CORE | {Capability.EMBEDDINGS}
    default_base_url: ClassVar[str] = DEFAULT_BASE_URL
    credits_hint: ClassVar[str] = "Check the account's plan and billing"
    unreachable_hint: ClassVar[str] = "Is the server running, and is base_url right (it usually ends in /v1)?"

    # ------------------------------------------------------------------ hooks for subclasses

    def check_settings(self, settings: ProviderSettings, base_url: str) -> None:
        if settings.api_key is None and urlsplit(base_url).hostname in _KEY_REQUIRED_HOSTS:
            raise ConfigurationError(
                f"{type(self).__name__}: {base_url} needs an API key: set {self.env_prefix}API_KEY or pass api_key=... "
                "(local servers such as Ollama or vLLM need none: set base_url to theirs)"
            )

    def service_headers(self, settings: ProviderSettings) -> dict[str, str]:
        """OpenAI's ``OpenAI-Organization`` / ``OpenAI-Project`` when configured."""
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

    # ------------------------------------------------------------------ chat

    def _chat_body(self, request: RequestLike, stream: bool) -> tuple[dict[str, Any], str]:
        self.require_key()
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
            reply: ChatResponse = parse_chat_response(
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
        from llmrelay.core.catalog import ModelList

        provider = self.instance_name

        def parse(data: Any, _response: HTTPResponse) -> ModelList:
            entries = data.get("data") if isinstance(data, dict) else None
            if not isinstance(entries, list):
                raise InvalidResponseError('/models: expected {"data": [...]}', provider=provider)
            models = [model_info_from_openai(e) for e in entries if isinstance(e, dict) and e.get("id")]
            return ModelList(models=models, provider=provider)

        return self._client.request("GET", "/models", parse, what="list models")

    def probe_key(self) -> ValidationReport:
        """``GET /models``; a 429 that speaks of quota means the key has none left."""
        try:
            return super().probe_key()
        except RateLimitError as error:
            from llmrelay.core.account import ValidationReport

            if "quota" not in error.message.lower():
                return ValidationReport(
                    provider=self.instance_name, outcome="error", message=f"the key check was rate limited: {error}"
                )
            return ValidationReport(
                provider=self.instance_name,
                outcome="no_credits",
                message=f"the key is valid but has no quota left ({error.message})",
            )

    def embed(
        self, request: EmbeddingRequest | dict[str, Any], *, options: CallOptions | None = None
    ) -> EmbeddingResponse:
        if Capability.EMBEDDINGS not in self.capabilities:  # a subclass for a service without /embeddings
            return super().embed(request, options=options)
        from llmrelay.core.embeddings import EmbeddingRequest

        embedding = request if isinstance(request, EmbeddingRequest) else EmbeddingRequest.model_validate(request)
        model = embedding.model or self.settings.default_model
        if not model:
            raise ConfigurationError(f"[{self.instance_name}] the embedding request names no model")
        self.require_key()
        client = self._client
        provider = self.instance_name

        def parse(data: Any, response: HTTPResponse) -> EmbeddingResponse:
            reply: EmbeddingResponse = parse_embedding_response(
                data,
                provider=provider,
                model=model,
                on_error=lambda payload: client.error_from_payload(payload, response),
            )
            if reply.id is None:  # as on chat calls, some gateways give the id only as a header
                reply.id = response.headers.get("x-generation-id")
            return reply

        return client.request(
            "POST", "/embeddings", parse, body=embedding.to_wire(model), model=model, what="embeddings"
        )
