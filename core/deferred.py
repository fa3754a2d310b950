"""Names imported on first use: how the build path refers to the chat model.

Building a provider runs no chat, so the chat model (:mod:`.models`), the
stream (:mod:`.stream`) and the OpenAI wire format load with the first call
that needs them (docs/ARCHITECTURE.md, import cost). An ``import`` statement
inside a function that runs on every call costs about half a microsecond
even once the module is loaded, as much as a whole layer of the pipeline; a
:class:`Deferred` imports once and then costs one method call.
"""

from __future__ import annotations

import importlib
from typing import Any, Generic, TypeVar

__all__ = ["Deferred"]

T = TypeVar("T")


class Deferred(Generic[T]):
    """``"package.module"`` or ``"package.module:name"``, imported by the first :meth:`get`.

    Two threads that call :meth:`get` first at the same time both import;
    the import system serialises the module, so both get the same object.
    """

    __slots__ = ("target", "_value")

    def __init__(self, target: str) -> None:
        self.target = target
        self._value: Any = None

    def get(self) -> T:
        value = self._value
        if value is None:
            module_name, _, name = self.target.partition(":")
            value = importlib.import_module(module_name)
            if name:
                value = getattr(value, name)
            self._value = value
        return value  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        state = "loaded" if self._value is not None else "not loaded"
        return f"Deferred({self.target!r}, {state})"
