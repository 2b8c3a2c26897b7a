"""broker/api's modules import one another without a cycle (counting imports inside functions:
a deferred import is a cycle all the same)."""

from __future__ import annotations

import ast
from pathlib import Path

import broker.api

PACKAGE = Path(broker.api.__file__).parent


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "broker.api":
                found.update(f"broker.api.{alias.name}" for alias in node.names)
            else:
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("broker.api.")}


def test_the_api_package_has_no_import_cycle() -> None:
    graph = {f"broker.api.{p.stem}": _imports(p) for p in PACKAGE.glob("*.py")}
    assert graph.get("broker.api.app")  # the walk found something

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, " -> ".join((*path, module))
        for imported in sorted(graph.get(module, ())):
            visit(imported, (*path, module))

    for module in sorted(graph):
        visit(module, ())
