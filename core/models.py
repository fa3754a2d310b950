"""The typed domain model: requests, responses, usage, models, pricing, credits.

Everything a caller hands in or gets back is one of these pydantic v2
models, except stream chunks (see :mod:`llmrelay.core.stream`), which are
slotted dataclasses because building a pydantic object per chunk costs more
than parsing the chunk's JSON.

Plain dicts in OpenAI chat format are accepted wherever a request is:
``ChatRequest.coerce({"model": ..., "messages": [...]})``. Fields a provider
does not know pass through to the wire unchanged (``extra="allow"``), so
OpenRouter's ``models`` / ``provider`` / ``transforms`` / ``reasoning``
extensions need no special support from llmrelay.
"""

from decimal import Decimal, InvalidOperation
from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import BadRequestError

__all__ = [
    "TextPart",
    "ImageURL",
    "ImagePart",
    "ContentPart",
    "FunctionCall",
    "ToolCall",
    "Message",
    "FunctionDefinition",
    "Tool",
    "ChatRequest",
    "Usage",
    "ResponseMeta",
    "ChatResponse",
    "Pricing",
    "ModelInfo",
    "ModelList",
    "Credits",
    "GenerationStats",
    "ValidationReport",
    "EmbeddingRequest",
    "EmbeddingResponse",
    "normalize_finish_reason",
    "to_decimal",
]

MILLION = Decimal(1_000_000)

# Finish reasons are normalized to OpenAI's vocabulary where the meaning is
# the same; anything else is kept as sent (never rejected): services add new
# ones, and 2024 OpenRouter traffic still carried Anthropic's raw "end_turn".
_FINISH_ALIASES = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "STOP": "stop",
    "completed": "stop",
    "eos": "stop",
    "max_tokens": "length",
    "MAX_TOKENS": "length",
    "model_length": "length",
    "tool_use": "tool_calls",
    "function_call": "tool_calls",
    "SAFETY": "content_filter",
    "refusal": "content_filter",
}


def normalize_finish_reason(value: str | None) -> str | None:
    if value is None:
        return None
    return _FINISH_ALIASES.get(value, value)


def to_decimal(value: Any) -> Decimal | None:
    """Parse a price or amount; ``None`` for missing or unparseable values."""
    if value is None or value == "":
        return None
    if isinstance(value, Decimal):
        return value
    try:
        # str() first so that floats keep the digits they print with.
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def _problems(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or 'request'}: {error['msg']}"
        for error in exc.errors(include_url=False)
    )


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True, defer_build=True)


# --------------------------------------------------------------------------- messages


class TextPart(_Model):
    type: Literal["text"] = "text"
    text: str


class ImageURL(_Model):
    url: str
    detail: str | None = None


class ImagePart(_Model):
    type: Literal["image_url"] = "image_url"
    image_url: ImageURL


class _OtherPart(_Model):
    """Any other content part (audio, file, ...), passed through as sent."""

    type: str


ContentPart = Union[TextPart, ImagePart, _OtherPart]


class FunctionCall(_Model):
    name: str
    # A JSON document as a string, exactly as OpenAI-style APIs send it.
    arguments: str = ""


class ToolCall(_Model):
    id: str
    type: str = "function"
    function: FunctionCall


class Message(_Model):
    """One chat message. Build with ``Message.user("hi")`` and friends."""

    role: str
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    reasoning: str | None = None

    @field_validator("content", mode="before")
    @classmethod
    def _parts_by_type(cls, value: Any) -> Any:
        # A union of models would try each in turn; dispatching on "type"
        # keeps validation cheap and error messages short.
        if isinstance(value, list):
            out = []
            for part in value:
                if isinstance(part, dict):
                    kind = part.get("type")
                    if kind == "text":
                        part = TextPart.model_validate(part)
                    elif kind == "image_url":
                        part = ImagePart.model_validate(part)
                    else:
                        part = _OtherPart.model_validate(part)
                out.append(part)
            return out
        return value

    @model_validator(mode="after")
    def _check_role(self) -> "Message":
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a tool message needs tool_call_id (the id of the call it answers)")
        return self

    @classmethod
    def system(cls, text: str) -> "Message":
        return cls(role="system", content=text)

    @classmethod
    def user(cls, text: str, *, images: list[str] | None = None) -> "Message":
        if not images:
            return cls(role="user", content=text)
        parts: list[Any] = [TextPart(text=text)]
        parts += [ImagePart(image_url=ImageURL(url=url)) for url in images]
        return cls(role="user", content=parts)

    @classmethod
    def assistant(cls, text: str | None = None, *, tool_calls: list[ToolCall] | None = None) -> "Message":
        return cls(role="assistant", content=text, tool_calls=tool_calls)

    @classmethod
    def tool(cls, content: str, *, tool_call_id: str, name: str | None = None) -> "Message":
        return cls(role="tool", content=content, tool_call_id=tool_call_id, name=name)

    @property
    def text(self) -> str:
        """The text of the message, parts joined."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text for p in self.content if isinstance(p, TextPart))

    @property
    def has_images(self) -> bool:
        return isinstance(self.content, list) and any(isinstance(p, ImagePart) for p in self.content)


class FunctionDefinition(_Model):
    name: str
    description: str | None = None
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})


class Tool(_Model):
    type: str = "function"
    function: FunctionDefinition


# --------------------------------------------------------------------------- request

_WIRE_EXCLUDE = {"extra_body"}


class ChatRequest(_Model):
    """A chat completion request in OpenAI's shape.

    ``model`` may be left out when the provider's config names a
    ``default_model``. Provider-specific fields go in ``extra_body`` or
    directly as extra keys; both are sent as top-level body fields.
    """

    model: str | None = None
    messages: list[Message] = Field(min_length=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, gt=0)
    stop: str | list[str] | None = None
    seed: int | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    tools: list[Tool] | None = None
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    user: str | None = None
    extra_body: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def coerce(
        cls,
        request: "ChatRequest | dict[str, Any]",
        *,
        default_model: str | None = None,
        provider: str | None = None,
    ) -> "ChatRequest":
        """Accept a ChatRequest or a plain OpenAI-format dict.

        Bad input raises :class:`~llmrelay.core.errors.BadRequestError`
        naming each wrong field, never pydantic's own error. ``default_model``
        fills in a missing ``model``.
        """
        if isinstance(request, ChatRequest):
            chat = request
        elif isinstance(request, dict):
            try:
                chat = cls.model_validate(request)
            except ValidationError as exc:
                raise BadRequestError(
                    f"invalid chat request: {_problems(exc)}", provider=provider
                ) from None
        else:
            raise BadRequestError(
                f"a chat request must be a ChatRequest or a dict in OpenAI chat format, "
                f"not {type(request).__name__}",
                provider=provider,
            )
        if chat.model is None and default_model:
            chat = chat.model_copy(update={"model": default_model})
        return chat

    def to_wire(self) -> dict[str, Any]:
        """The JSON body for an OpenAI-compatible endpoint (without ``stream``)."""
        body = self.model_dump(exclude_none=True, exclude=_WIRE_EXCLUDE)
        body.pop("stream", None)
        if self.extra_body:
            body.update(self.extra_body)
        return body

    @property
    def has_images(self) -> bool:
        return any(m.has_images for m in self.messages)


# --------------------------------------------------------------------------- response


class Usage(_Model):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None
    # USD, as reported by the service (OpenRouter's usage.cost) when it does.
    cost: Decimal | None = None

    @classmethod
    def from_openai(cls, data: dict[str, Any] | None) -> "Usage | None":
        """From an OpenAI / OpenRouter ``usage`` object (details flattened)."""
        if not data:
            return None
        prompt = data.get("prompt_tokens") or 0
        completion = data.get("completion_tokens") or 0
        prompt_details = data.get("prompt_tokens_details") or {}
        completion_details = data.get("completion_tokens_details") or {}
        return cls.model_construct(
            prompt_tokens=prompt,
            completion_tokens=completion,
            total_tokens=data.get("total_tokens") or prompt + completion,
            cached_tokens=prompt_details.get("cached_tokens"),
            reasoning_tokens=completion_details.get("reasoning_tokens"),
            cost=to_decimal(data.get("cost")),
        )


class ResponseMeta(_Model):
    """How llmrelay produced a result (filled in by the layers)."""

    cache: str | None = None  # "hit", "stale", "miss", "bypass"
    stale: bool = False
    attempts: int = 1
    answered_by: str | None = None  # provider/model that answered, in a fallback chain


class ChatResponse(_Model):
    id: str | None = None
    model: str | None = None
    provider: str | None = None  # the llmrelay provider ("openrouter")
    served_by: str | None = None  # the upstream that served it ("Amazon Bedrock")
    message: Message
    finish_reason: str | None = None
    native_finish_reason: str | None = None
    usage: Usage | None = None
    created: int | None = None
    meta: ResponseMeta = Field(default_factory=ResponseMeta)

    @property
    def text(self) -> str:
        return self.message.text

    @property
    def tool_calls(self) -> list[ToolCall]:
        return self.message.tool_calls or []

    @property
    def cost(self) -> Decimal | None:
        return self.usage.cost if self.usage else None


# --------------------------------------------------------------------------- models and pricing


class Pricing(_Model):
    """USD per unit, as ``Decimal``. Per token unless the name says otherwise.

    A negative price means "unknown / variable" (OpenRouter prices its
    ``openrouter/auto`` router at ``"-1"``); use :meth:`known` before doing
    arithmetic with a field.
    """

    prompt: Decimal | None = None
    completion: Decimal | None = None
    request: Decimal | None = None
    image: Decimal | None = None
    web_search: Decimal | None = None
    internal_reasoning: Decimal | None = None
    input_cache_read: Decimal | None = None
    input_cache_write: Decimal | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _decimal(cls, value: Any) -> Any:
        # Unparseable prices become None instead of failing a whole /models list.
        return to_decimal(value) if isinstance(value, (str, int, float)) else value

    @staticmethod
    def known(value: Decimal | None) -> bool:
        return value is not None and value >= 0

    @property
    def is_unknown(self) -> bool:
        return not (self.known(self.prompt) and self.known(self.completion))

    @property
    def is_free(self) -> bool:
        return self.prompt == 0 and self.completion == 0

    @property
    def prompt_per_million(self) -> Decimal | None:
        return self.prompt * MILLION if self.known(self.prompt) else None  # type: ignore[operator]

    @property
    def completion_per_million(self) -> Decimal | None:
        return self.completion * MILLION if self.known(self.completion) else None  # type: ignore[operator]


class ModelInfo(_Model):
    id: str
    name: str | None = None
    description: str | None = None
    created: int | None = None
    context_length: int | None = None
    max_completion_tokens: int | None = None
    input_modalities: list[str] = Field(default_factory=list)
    output_modalities: list[str] = Field(default_factory=list)
    supported_parameters: list[str] = Field(default_factory=list)
    pricing: Pricing = Field(default_factory=Pricing)
    provider: str | None = None

    @property
    def supports_images(self) -> bool:
        return "image" in self.input_modalities

    @property
    def supports_tools(self) -> bool:
        return "tools" in self.supported_parameters


class ModelList(_Model):
    """The result of ``list_models``: iterable like a list of :class:`ModelInfo`."""

    models: list[ModelInfo] = Field(default_factory=list)
    provider: str | None = None
    # True when this is llmrelay's built-in list, used because the service
    # could not be reached and nothing was cached: prices may be out of date.
    fallback: bool = False
    meta: ResponseMeta = Field(default_factory=ResponseMeta)

    def __iter__(self):  # type: ignore[override]
        return iter(self.models)

    def __len__(self) -> int:
        return len(self.models)

    def __getitem__(self, index: int) -> ModelInfo:
        return self.models[index]

    def get(self, model_id: str) -> ModelInfo | None:
        for model in self.models:
            if model.id == model_id:
                return model
        return None

    @property
    def ids(self) -> list[str]:
        return [m.id for m in self.models]


class Credits(_Model):
    total_credits: Decimal
    total_usage: Decimal
    provider: str | None = None
    meta: ResponseMeta = Field(default_factory=ResponseMeta)

    @property
    def remaining(self) -> Decimal:
        return self.total_credits - self.total_usage


class GenerationStats(_Model):
    """Stats of one finished generation (OpenRouter ``/generation``)."""

    id: str
    model: str | None = None
    provider_name: str | None = None
    total_cost: Decimal | None = None
    tokens_prompt: int | None = None
    tokens_completion: int | None = None
    native_tokens_prompt: int | None = None
    native_tokens_completion: int | None = None
    native_tokens_reasoning: int | None = None
    native_tokens_cached: int | None = None
    latency: float | None = None
    generation_time: float | None = None
    finish_reason: str | None = None
    native_finish_reason: str | None = None
    streamed: bool | None = None
    cancelled: bool | None = None
    created_at: str | None = None
    meta: ResponseMeta = Field(default_factory=ResponseMeta)


Outcome = Literal["valid", "config_error", "invalid_key", "no_credits", "unreachable", "error"]


class ValidationReport(_Model):
    """What ``validate_config`` found. ``ok`` is True only for ``outcome == "valid"``."""

    provider: str
    outcome: Outcome
    message: str
    problems: list[str] = Field(default_factory=list)
    key_label: str | None = None
    limit: Decimal | None = None
    limit_remaining: Decimal | None = None
    usage: Decimal | None = None
    is_free_tier: bool | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == "valid"


class EmbeddingRequest(_Model):
    model: str | None = None
    input: str | list[str]
    extra_body: dict[str, Any] = Field(default_factory=dict)


class EmbeddingResponse(_Model):
    model: str | None = None
    provider: str | None = None
    embeddings: list[list[float]]
    usage: Usage | None = None
    meta: ResponseMeta = Field(default_factory=ResponseMeta)
