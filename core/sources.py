"""Merging settings from their sources, and remembering where each value came from.

A provider's settings come from the environment, the config (a file or a
dict) and keyword arguments, each overriding the one before, table by table
and field by field: a file's ``timeout = { connect = 5 }`` and the
environment's ``OPENROUTER_TIMEOUT__READ=30`` both apply. :class:`Layered`
holds the merged data and, in the same shape, the :class:`Origin` of every
leaf, which names the variable in an error message and is what
``llmrelay config`` prints beside each value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, NamedTuple

from .envsettings import EnvReading

__all__ = ["ARGUMENT_ORIGIN", "DEFAULT_ORIGIN", "Layered", "Origin", "deep_merge"]


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` over ``base``; where both hold a table, the tables merge key by key."""
    merged = dict(base)
    for key, value in override.items():
        previous = merged.get(key)
        if isinstance(value, Mapping) and isinstance(previous, Mapping):
            merged[key] = deep_merge(previous, value)
        else:
            merged[key] = value
    return merged


# A NamedTuple and a plain class, not dataclasses: they load with every
# provider build, and making a frozen dataclass costs about 1 ms of it.


class Origin(NamedTuple):
    """Where one effective setting came from: ``kind`` and, but for a default, which file, dict or variable."""

    kind: Literal["default", "config", "environment", "argument"]
    source: str | None = None

    def __str__(self) -> str:
        return self.kind if self.source is None else f"{self.kind} {self.source}"


DEFAULT_ORIGIN = Origin("default")
ARGUMENT_ORIGIN = Origin("argument", "keyword argument")


def _labelled(data: Mapping[str, Any], origin: Origin) -> dict[str, Any]:
    """``data``'s shape with ``origin`` at every leaf (an empty table sets nothing, as it merges)."""
    return {
        key: _labelled(value, origin) if isinstance(value, Mapping) else origin
        for key, value in data.items()
        if not (isinstance(value, Mapping) and not value)
    }


def _env_labelled(data: Mapping[str, Any], origins: Mapping[tuple[str, ...], str], path: tuple[str, ...] = ()) -> Any:
    labels: dict[str, Any] = {}
    for key, value in data.items():
        here = (*path, key)
        if isinstance(value, Mapping):
            if value:
                labels[key] = _env_labelled(value, origins, here)
            continue
        # The variable that set this leaf, or the one that set a whole table above it.
        variable = next((origins[here[:end]] for end in range(len(here), 0, -1) if here[:end] in origins), None)
        labels[key] = Origin("environment", variable)
    return labels


class Layered:
    """Settings merged from the environment, the config and keyword arguments, and each leaf's origin.

    ``labels`` has the shape of ``data`` with an :class:`Origin` at every leaf a source set.
    """

    __slots__ = ("data", "labels")

    def __init__(self, data: dict[str, Any], labels: dict[str, Any]) -> None:
        self.data = data
        self.labels = labels

    @classmethod
    def merge(
        cls, env: EnvReading, section: Mapping[str, Any], section_origin: Origin, kwargs: Mapping[str, Any]
    ) -> Layered:
        data = deep_merge(deep_merge(env.data, section), kwargs)
        labels = _env_labelled(env.data, env.origins)
        labels = deep_merge(deep_merge(labels, _labelled(section, section_origin)), _labelled(kwargs, ARGUMENT_ORIGIN))
        return cls(data, labels)

    def origin(self, path: tuple[str, ...]) -> Origin:
        """Where the value at ``path`` came from (a default when no source set it)."""
        node: Any = self.labels
        for part in path:
            if isinstance(node, Origin):
                return node
            if not isinstance(node, Mapping) or part not in node:
                return DEFAULT_ORIGIN
            node = node[part]
        return node if isinstance(node, Origin) else DEFAULT_ORIGIN

    def env_origins(self) -> dict[str, str]:
        """Dotted paths still set by a variable (no other source overrode them) -> that variable."""
        found: dict[str, str] = {}

        def walk(node: Mapping[str, Any], path: str) -> None:
            for key, value in node.items():
                here = f"{path}.{key}" if path else key
                if isinstance(value, Origin):
                    if value.kind == "environment" and value.source:
                        found[here] = value.source
                else:
                    walk(value, here)

        walk(self.labels, "")
        return found
