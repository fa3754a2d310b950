"""Embedding requests and responses (``embed``)."""

from typing import Any

from pydantic import Field

from .models import ResponseMeta, Usage, _Model

__all__ = ["EmbeddingRequest", "EmbeddingResponse"]


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
