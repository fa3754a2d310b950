"""How many tokens a request may ask for, and the request with its asks lowered to that.

A model's output budget is the smallest of what the catalog says:

* ``max_completion_tokens``: the most the model writes in one reply;
* ``context_length`` minus the prompt (estimated) minus a safety margin:
  services that count prompt and reply against one window (OpenAI's
  "maximum context length is ... however you requested ...") refuse a
  request whose prompt plus ``max_tokens`` overflows it.

The budget is never below 1: a prompt estimated to fill the window alone is
sent with ``max_tokens = 1`` and the service says what is wrong with it.

**The prompt estimate** is about one token per ``bytes_per_token`` (4) bytes
of UTF-8, plus 4 tokens per message for the chat format. With four bytes a
token the estimate is about right for English prose under GPT-4-class
tokenizers, somewhat low for code, a quarter low for Chinese or Japanese (3
bytes a character, about one character a token) and high for Cyrillic. What it counts: message text,
names, reasoning, tool calls' names and arguments, the tool definitions and
the response format, as JSON. Images, audio and files are not counted; near
the window's end, raise ``margin`` or lower ``bytes_per_token``. Only the
context rule uses the estimate, so it matters only for prompts that come
close to filling the window.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeGuard

from llmrelay.core.models import TextPart

if TYPE_CHECKING:
    from llmrelay.core.catalog import ModelInfo
    from llmrelay.core.models import ChatRequest

__all__ = [
    "Budget",
    "ClampReport",
    "ModelLimits",
    "TokenClamp",
    "clamp_request",
    "completion_budget",
    "estimate_prompt_tokens",
    "has_token_fields",
]

#: Tokens each message costs for the chat format around its content (OpenAI's cookbook counts 3 or 4).
TOKENS_PER_MESSAGE = 4
#: The request fields that cap the reply: ``max_completion_tokens`` is OpenAI's newer name
#: (its reasoning models refuse ``max_tokens``), an extra field on ChatRequest.
EXTRA_FIELD = "max_completion_tokens"
#: Fields in ``extra_body``, which is merged into the wire body last and so overrides the others.
BODY_FIELDS = ("max_tokens", "max_completion_tokens")

Basis = Literal["max_completion_tokens", "context_length"]


@dataclass(frozen=True, slots=True)
class ModelLimits:
    """The two limits of one model the catalog knows; ``None`` when it does not say (or says 0)."""

    context_length: int | None
    max_completion_tokens: int | None

    @classmethod
    def of(cls, model: ModelInfo) -> ModelLimits:
        # OpenRouter lists some models with a context length of 0: no limit worth clamping to.
        return cls(_positive(model.context_length), _positive(model.max_completion_tokens))


@dataclass(frozen=True, slots=True)
class Budget:
    """The most a request may ask for, and which limit set it."""

    tokens: int
    basis: Basis


@dataclass(frozen=True, slots=True)
class TokenClamp:
    """One request field the layer changed: ``requested`` is ``None`` when it was unset (``set_default``)."""

    field: str  # "max_tokens", "max_completion_tokens", "extra_body.max_tokens", ...
    requested: int | None
    sent: int


@dataclass(frozen=True, slots=True)
class ClampReport:
    """What the tokens layer did to one request; on the result as ``meta.token_clamp``."""

    model: str
    limit: int
    basis: Basis
    changes: tuple[TokenClamp, ...]


def _positive(value: int | None) -> int | None:
    return value if value is not None and value > 0 else None


def _is_count(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


# --------------------------------------------------------------------------- the budget


def completion_budget(
    limits: ModelLimits, request: ChatRequest, *, margin: int, bytes_per_token: float
) -> Budget | None:
    """The smallest of the model's limits for ``request``; ``None`` when the catalog gives neither."""
    budget: Budget | None = None
    if limits.max_completion_tokens is not None:
        budget = Budget(limits.max_completion_tokens, "max_completion_tokens")
    if limits.context_length is not None:
        room = limits.context_length - estimate_prompt_tokens(request, bytes_per_token) - margin
        room = max(room, 1)
        if budget is None or room < budget.tokens:
            budget = Budget(room, "context_length")
    return budget


def estimate_prompt_tokens(request: ChatRequest, bytes_per_token: float = 4.0) -> int:
    """About how many tokens ``request``'s prompt is (see the module's docstring for what is counted)."""
    size = 0
    for text in _prompt_texts(request):
        # isascii is a flag check: most prompts need no encoding to be measured.
        size += len(text) if text.isascii() else len(text.encode("utf-8"))
    return math.ceil(size / bytes_per_token) + TOKENS_PER_MESSAGE * len(request.messages)


def _prompt_texts(request: ChatRequest) -> Iterator[str]:
    for message in request.messages:
        content = message.content
        if isinstance(content, str):
            yield content
        elif content:
            yield from (part.text for part in content if isinstance(part, TextPart))
        for text in (message.name, message.reasoning):
            if text:
                yield text
        for call in message.tool_calls or ():
            yield call.function.name
            yield call.function.arguments
    for tool in request.tools or ():
        yield json.dumps(tool.function.model_dump(exclude_none=True), ensure_ascii=False)
    if request.response_format:
        yield json.dumps(request.response_format, ensure_ascii=False)


# --------------------------------------------------------------------------- the clamp


def has_token_fields(request: ChatRequest) -> bool:
    """Whether ``request`` sets any field that caps the reply."""
    if request.max_tokens is not None:
        return True
    extra = request.model_extra
    if extra and EXTRA_FIELD in extra:
        return True
    return any(name in request.extra_body for name in BODY_FIELDS)


def clamp_request(
    request: ChatRequest, budget: Budget, *, set_default: bool = False
) -> tuple[ChatRequest, tuple[TokenClamp, ...]]:
    """``request`` with every cap above ``budget`` lowered to it, and what changed.

    The caller's request is never changed: a changed one is a copy (its
    ``extra_body`` a new dict). With ``set_default`` a request that sets no
    cap at all gets ``max_tokens = budget``. A cap that is not an integer is
    left for the service to refuse.
    """
    limit = budget.tokens
    changes: list[TokenClamp] = []
    update: dict[str, Any] = {}
    if request.max_tokens is not None and request.max_tokens > limit:
        update["max_tokens"] = limit
        changes.append(TokenClamp("max_tokens", request.max_tokens, limit))
    extra_value = (request.model_extra or {}).get(EXTRA_FIELD)
    if _is_count(extra_value) and extra_value > limit:
        update[EXTRA_FIELD] = limit
        changes.append(TokenClamp(EXTRA_FIELD, extra_value, limit))
    body = request.extra_body
    lowered = {name: limit for name in BODY_FIELDS if _is_count(body.get(name)) and body[name] > limit}
    if lowered:
        update["extra_body"] = {**body, **lowered}
        changes.extend(TokenClamp(f"extra_body.{name}", body[name], limit) for name in lowered)
    if set_default and not has_token_fields(request):
        update["max_tokens"] = limit
        changes.append(TokenClamp("max_tokens", None, limit))
    if not update:
        return request, ()
    return request.model_copy(update=update), tuple(changes)
