"""The layout's import rules, read from the source (docs/ARCHITECTURE.md draws them).

Every ``import`` statement counts, including those inside functions: an
import deferred into a function still ties the two modules together, and a
cycle hidden that way breaks as soon as someone moves the import up. Imports
under ``if TYPE_CHECKING:`` are for type checkers only and do not count.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = {"core": "llmrelay.core", "providers": "llmrelay.providers", "plugins": "llmrelay.plugins"}


def _module_name(path: Path) -> str:
    folder, *rest = path.relative_to(ROOT).with_suffix("").parts
    parts = [SOURCES[folder], *rest]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                yield from _runtime_imports(child)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        yield from _runtime_imports(node)


def _targets(module: str, is_package: bool, node: ast.Import | ast.ImportFrom, known: set[str]) -> set[str]:
    """The llmrelay modules an import statement loads."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        if node.level:
            base = module.split(".")
            if not is_package:
                base.pop()
            base = base[: len(base) - (node.level - 1)]
            prefix = ".".join([*base, node.module] if node.module else base)
        else:
            prefix = node.module or ""
        # `from pkg import name` loads pkg.name when that is a module, else pkg.
        names = [f"{prefix}.{alias.name}" if f"{prefix}.{alias.name}" in known else prefix for alias in node.names]
    found = set()
    for name in names:
        while name and name not in known:
            name = name.rpartition(".")[0]
        if name:
            found.add(name)
    return found


def _graph() -> dict[str, set[str]]:
    paths = [p for folder in SOURCES for p in (ROOT / folder).rglob("*.py")]
    known = {_module_name(p) for p in paths}
    graph: dict[str, set[str]] = {}
    for path in paths:
        module = _module_name(path)
        tree = ast.parse(path.read_text(), str(path))
        edges: set[str] = set()
        for node in _runtime_imports(tree):
            edges |= _targets(module, path.name == "__init__.py", node, known)
        edges.discard(module)
        graph[module] = edges
    return graph


GRAPH = _graph()


def _cycle_from(start: str) -> list[str] | None:
    stack = [(start, [start])]
    seen: set[str] = set()
    while stack:
        node, path = stack.pop()
        for nxt in GRAPH[node]:
            if nxt == start:
                return [*path, start]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, [*path, nxt]))
    return None


def _is_ancestor_package(package: str, module: str) -> bool:
    return module.startswith(package + ".")


def test_the_graph_is_read() -> None:
    # Guards the test itself: a graph that came out empty would make every rule below pass.
    assert len(GRAPH) > 40
    assert "llmrelay.core.errors" in GRAPH["llmrelay.core.provider"]
    assert "llmrelay.core.http.transport" in GRAPH["llmrelay.core.http.client"]


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_no_import_cycle(module: str) -> None:
    cycle = _cycle_from(module)
    # A package's __init__ re-exporting its own submodule is not a cycle of concerns.
    if cycle is not None and all(_is_ancestor_package(a, b) or _is_ancestor_package(b, a) for a, b in pairwise(cycle)):
        cycle = None
    assert cycle is None, " -> ".join(cycle or [])


def test_core_never_imports_a_provider_or_plugin() -> None:
    offenders = {
        (module, target)
        for module, targets in GRAPH.items()
        if module.startswith("llmrelay.core")
        for target in targets
        if not target.startswith("llmrelay.core")
    }
    assert offenders == set()


def test_providers_and_plugins_never_import_each_other() -> None:
    offenders = {
        (module, target)
        for module, targets in GRAPH.items()
        for target in targets
        if (module.startswith("llmrelay.providers") and target.startswith("llmrelay.plugins"))
        or (module.startswith("llmrelay.plugins") and target.startswith("llmrelay.providers"))
    }
    assert offenders == set()


KERNEL = "llmrelay.core."
SUBPACKAGES = ("llmrelay.core.http", "llmrelay.core.compose", "llmrelay.core.cli", "llmrelay.core.gateway")


def test_the_kernel_imports_no_subpackage() -> None:
    # The kernel (core/*.py) is what everything else builds on; the sub-packages sit above it.
    offenders = {
        (module, target)
        for module, targets in GRAPH.items()
        if module.startswith(KERNEL) and module.count(".") == 2 and not module.startswith(SUBPACKAGES)
        for target in targets
        if target.startswith(SUBPACKAGES)
    }
    assert offenders == set()


def test_the_provider_interface_does_not_import_config() -> None:
    assert "llmrelay.core.config" not in GRAPH["llmrelay.core.provider"]
