"""The typed domain model of a chat call: messages, requests, responses, usage.

Everything a caller hands in or gets back from a chat call is one of these
pydantic v2 models, except stream chunks (see :mod:`llmrelay.core.stream`),
which are dataclasses because validating a pydantic object per chunk
costs more than parsing the chunk's JSON. The results of the other
operations live in their own modules:
:mod:`llmrelay.core.catalog` (``list_models``: models and pricing),
:mod:`llmrelay.core.account` (credits, generation stats, ``validate_config``)
and :mod:`llmrelay.core.embeddings` (``embed``).

Plain dicts in OpenAI chat format are accepted wherever a request is:
``ChatRequest.coerce({"model": ..., "messages": [...]})``. Fields a provider
does not know pass through to the wire unchanged (``extra="allow"``), so
OpenRouter's ``models`` / ``provider`` / ``transforms`` / ``reasoning``
extensions need no special support from llmrelay.
"""

from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import BadRequestError

__all__ = [
    "ChatRequest",
    "ChatResponse",
    "ContentPart",
    "FunctionCall",
    "FunctionDefinition",
    "ImagePart",
    "ImageURL",
    "Message",
    "ResponseMeta",
    "TextPart",
    "Tool",
    "ToolCall",
    "Usage",
    "normalize_finish_reason",
    "to_decimal",
]

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


ContentPart = TextPart | ImagePart | _OtherPart


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
                raise BadRequestError(f"invalid chat request: {_problems(exc)}", provider=provider) from None
        else:
            raise BadRequestError(
                f"a chat request must be a ChatRequest or a dict in OpenAI chat format, not {type(request).__name__}",
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
    # The service's own cost when ``cost`` carries a markup (the pricing plugin); None otherwise.
    base_cost: Decimal | None = None

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
