"""Slotted records: the base of the small mutable value types on the build path.

Written out rather than ``@dataclass(slots=True)``: a dataclass compiles its
generated methods when its module is imported (about 2.3M instructions per
class), and these modules are imported by every provider build. A subclass
declares ``__slots__`` and its ``__init__``; this gives it field-by-field
equality and a repr naming the fields (``_repr_fields`` picks them).
"""

from __future__ import annotations

__all__ = ["Record"]


class Record:
    """Compared field by field (same type only); mutable, so unhashable."""

    __slots__ = ()
    _repr_fields: tuple[str, ...] = ()

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self.__slots__)

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._repr_fields or self.__slots__)
        return f"{type(self).__name__}({fields})"
