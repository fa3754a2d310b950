"""Embedding requests and responses (``embed``)."""

from decimal import Decimal
from typing import Any

from pydantic import Field

from .models import ResponseMeta, Usage, _Model

__all__ = ["EmbeddingRequest", "EmbeddingResponse"]


class EmbeddingRequest(_Model):
    """``input`` (one text or many) for ``model``.

    Fields llmrelay has no name for (``dimensions``, ``encoding_format``,
    OpenRouter's ``provider`` routing...) are sent as given, as extra keys or
    in ``extra_body``.
    """

    model: str | None = None
    input: str | list[str]
    extra_body: dict[str, Any] = Field(default_factory=dict)

    def to_wire(self, model: str) -> dict[str, Any]:
        """The JSON body of an OpenAI-style ``/embeddings`` call for ``model``."""
        return {**(self.model_extra or {}), **self.extra_body, "model": model, "input": self.input}


class EmbeddingResponse(_Model):
    """The vectors, in input order, and what they cost.

    ``id`` is the service's id for the call (OpenRouter: ``gen-emb-...``);
    ``served_by`` the upstream that computed them (OpenRouter's ``provider``,
    e.g. "DeepInfra"); ``usage.cost`` the USD cost the service reported.
    """

    id: str | None = None
    model: str | None = None
    provider: str | None = None  # the llmrelay provider ("openrouter")
    served_by: str | None = None
    embeddings: list[list[float]]
    usage: Usage | None = None
    meta: ResponseMeta = Field(default_factory=ResponseMeta)

    @property
    def cost(self) -> Decimal | None:
        return self.usage.cost if self.usage else None
