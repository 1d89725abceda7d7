"""Names say what things are: one class per name in the library, loggers named by module."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

from tests.layout.tree import ROOT, SOURCE_ROOTS


def _trees(*roots: str) -> dict[Path, ast.Module]:
    return {
        path: ast.parse(path.read_text(), str(path))
        for r in roots
        for path in sorted((ROOT / r).rglob("*.py"))
    }


def test_each_library_class_name_is_used_once() -> None:
    """Two ``Target`` classes (a rendered nft target, an endpoint of an explanation) read the
    same in a traceback or an import; each name now says which it is."""
    where: defaultdict[str, list[str]] = defaultdict(list)
    for path, tree in _trees("libs").items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                where[node.name].append(str(path.relative_to(ROOT)))
    assert {name: paths for name, paths in where.items() if len(paths) > 1} == {}


def test_loggers_are_named_by_module() -> None:
    """``logging.getLogger(__name__)``: a log line's name is the module that wrote it."""
    wrong = []
    for path, tree in _trees(*SOURCE_ROOTS).items():
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "getLogger"
                and not (
                    len(node.args) == 1
                    and isinstance(node.args[0], ast.Name)
                    and node.args[0].id == "__name__"
                )
            ):
                wrong.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert wrong == []
