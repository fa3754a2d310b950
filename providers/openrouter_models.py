"""OpenRouter's model list: ``/models`` entries into :class:`ModelInfo`, and the catalog llmrelay ships.

:func:`parse_model_list` reads any vintage of ``GET /models`` (the 2024
``modality`` string, null fields, ``"-1"`` prices, the 2026 ``total_count`` /
``links``). :func:`load_fallback_models` reads the shipped catalog,
``data/openrouter_fallback_models.json``, built from real ``GET /models``
responses recorded by simonw/llm-openrouter (2025-04-23 full list, 2026-08-04
entries on top; its ``source`` field says exactly where), flagged
``fallback=True``: prices as of those dates.

The result models are imported inside the functions, so importing this module
(the OpenRouter provider does) does not load the catalog models.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import TYPE_CHECKING, Any

from llmrelay.core.errors import InvalidResponseError
from pydantic import ValidationError

if TYPE_CHECKING:
    from llmrelay.core.catalog import ModelInfo, ModelList

__all__ = ["FALLBACK_FILE", "load_fallback_models", "model_info_from_openrouter", "parse_model_list"]

FALLBACK_FILE = "openrouter_fallback_models.json"


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
    from llmrelay.core.catalog import ModelInfo, Pricing  # kept out of the provider-build path

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
    links = payload.get("links")
    extras = {
        "total_count": _int_or_none(payload.get("total_count")),
        "next": links.get("next") if isinstance(links, dict) else None,
    }
    return models, extras


def load_fallback_models(provider: str = "openrouter") -> ModelList:
    """The shipped catalog, flagged ``fallback=True`` (a new list on every call: callers may change it)."""
    from llmrelay.core.catalog import ModelList

    text = (resources.files("llmrelay.providers") / "data" / FALLBACK_FILE).read_text("utf-8")
    models, _ = parse_model_list(json.loads(text), provider=provider)
    return ModelList(models=models, provider=provider, fallback=True)
