"""A checker of Prometheus text exposition (format 0.0.4), for the tests of what llmrelay exports."""

from __future__ import annotations

import re

__all__ = ["SAMPLE", "check_exposition"]

_LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"'
SAMPLE = re.compile(
    r"^([a-zA-Z_:][a-zA-Z0-9_:]*)((?:\{"
    + _LABEL
    + "(?:,"
    + _LABEL
    + r")*\})?) (?:[-+]?[0-9.]+(?:e[-+]?[0-9]+)?|\+Inf)$"
)
_SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count"), "counter": (), "gauge": ()}


def check_exposition(text: str) -> dict[str, str]:
    """Assert ``text`` is valid exposition; return each family's type.

    Every sample line is well formed and belongs to a family whose HELP and
    TYPE came before it, once each; a family's samples are contiguous and no
    sample (name and labels) appears twice.
    """
    assert text.endswith("\n"), "exposition must end with a newline"
    types: dict[str, str] = {}
    helped: set[str] = set()
    seen: set[tuple[str, str]] = set()
    finished: set[str] = set()
    current: str | None = None
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split()[2]
            assert name not in helped, f"HELP twice for {name}"
            helped.add(name)
            if current is not None:
                finished.add(current)
            current = name
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            assert name not in types, f"TYPE twice for {name}"
            assert kind in _SUFFIXES, line
            types[name] = kind
        else:
            match = SAMPLE.match(line)
            assert match, line
            name, labels = match.groups()
            family = next(
                (f for f in types if name == f or any(name == f + suffix for suffix in _SUFFIXES[types[f]])),
                None,
            )
            assert family is not None and family in helped, f"sample before its HELP/TYPE: {line}"
            assert family == current and family not in finished, f"samples of {family} are not together: {line}"
            assert (name, labels) not in seen, f"duplicate sample: {line}"
            seen.add((name, labels))
    return types
