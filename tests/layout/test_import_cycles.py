"""No import cycles between the modules of libs, services and tools.

Every import counts, also those under ``if TYPE_CHECKING:`` and inside functions (a cycle
hidden in a function is still a tangle); relative imports are resolved. A package's
``__init__`` importing its own submodules is how a package exports names, not a cycle, so
those edges are left out.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

from tests.layout.tree import ROOT, SOURCE_ROOTS


def modules(root: Path = ROOT) -> dict[str, Path]:
    """Every module of the source roots, by dotted name (a package by its own name)."""
    found: dict[str, Path] = {}
    for r in SOURCE_ROOTS:
        base = root / r
        for path in sorted(base.rglob("*.py")):
            parts = path.relative_to(base).with_suffix("").parts
            if not (base / parts[0] / "__init__.py").exists():
                continue  # a loose script, not part of a package
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _imported(node: ast.AST, name: str, is_package: bool) -> Iterator[tuple[str, list[str]]]:
    """(module, names imported from it) of every import statement in a module's AST."""
    for n in ast.walk(node):
        if isinstance(n, ast.Import):
            for alias in n.names:
                yield alias.name, []
        elif isinstance(n, ast.ImportFrom):
            if n.level:
                package = name if is_package else name.rpartition(".")[0]
                for _ in range(n.level - 1):
                    package = package.rpartition(".")[0]
                base = f"{package}.{n.module}" if n.module else package
            else:
                base = n.module or ""
            yield base, [a.name for a in n.names]


def import_graph(found: Mapping[str, Path]) -> dict[str, set[str]]:
    """Module -> the modules of ``found`` it imports."""
    graph: dict[str, set[str]] = {}
    for name, path in found.items():
        is_package = path.name == "__init__.py"
        edges: set[str] = set()
        for base, names in _imported(ast.parse(path.read_text(), str(path)), name, is_package):
            targets = [f"{base}.{n}" for n in names if f"{base}.{n}" in found]
            if len(targets) < len(names) or not names:
                targets.append(base)  # names defined in the module (or package) itself
            edges.update(_known(t, found) for t in targets)
        edges.discard("")
        edges.discard(name)
        if is_package:
            edges = {e for e in edges if not e.startswith(name + ".")}
        graph[name] = edges
    return graph


def _known(name: str, found: Mapping[str, Path]) -> str:
    """The innermost module of ``found`` that ``name`` is or is in ("" for a foreign one)."""
    while name and name not in found:
        name = name.rpartition(".")[0]
    return name


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def test_no_import_cycles() -> None:
    found = modules()
    assert "kpng.bus.codec" in found and "kpng_agent.main" in found and "kpng_scale" in found
    assert cycles(import_graph(found)) == []


def test_a_cycle_is_found(tmp_path: Path) -> None:
    """The walk sees relative, TYPE_CHECKING and function-level imports, and a package's own
    __init__ importing its submodules is not a cycle."""
    pkg = tmp_path / "libs" / "pkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("from pkg.a import A\nfrom . import b\n")
    (pkg / "a.py").write_text("from pkg import shared\nA = 1\n")
    (pkg / "shared.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .b import B\n"
    )
    (pkg / "b.py").write_text("def f():\n    from .a import A\n    return A\nB = 2\n")
    found = modules(tmp_path)
    assert set(found) == {"pkg", "pkg.a", "pkg.b", "pkg.shared"}
    assert cycles(import_graph(found)) == [["pkg.a", "pkg.b", "pkg.shared"]]
    (pkg / "b.py").write_text("B = 2\n")
    assert cycles(import_graph(found)) == []
