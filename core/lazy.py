"""Lazy public names for a package (PEP 562): each is imported from its module on first use, then kept.

``import llmrelay.core`` imports none of the dependencies, and a plugin's
entry point loads its package without the modules only a built layer needs.
A package lists its names once and makes its ``__getattr__`` here::

    _EXPORTS = {"ModelLimits": "budget", "TokensLayer": "layer"}   # name -> module of this package
    __getattr__ = lazy_exports(__name__, _EXPORTS, globals())
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, exports: Mapping[str, str], namespace: dict[str, Any]) -> Callable[[str], Any]:
    """A module ``__getattr__``: ``name`` imported from ``package.<exports[name]>``, then kept in ``namespace``."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f".{module}", package), name)
        namespace[name] = value  # found directly from now on: __getattr__ runs once per name
        return value

    return __getattr__
