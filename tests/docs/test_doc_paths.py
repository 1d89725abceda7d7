"""Every repository path the README and docs/ name exists: a moved or renamed file shows up
here, not in a reader's failed ``ls``."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))
TOPS = ("libs", "services", "tools", "tests", "docs", "examples", "deploy")
# a backticked path: `libs/kpng/model.py`, `tests/nft/test_trace.py::test_x`, `docs/bus.md#x`
BACKTICKED = re.compile(rf"`((?:{'|'.join(TOPS)})/[^`\s]*)`")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def expand(path: str) -> list[str]:
    """``a/{b,c}.py`` -> ``a/b.py``, ``a/c.py`` (shell brace expansion, one level)."""
    parts = re.split(r"\{([^{}]*)\}", path)
    choices = [[p] if i % 2 == 0 else p.split(",") for i, p in enumerate(parts)]
    return ["".join(c) for c in itertools.product(*choices)]


def named_paths(text: str) -> list[str]:
    """The repository paths a Markdown text names in backticks, as file system paths."""
    out = []
    for m in BACKTICKED.finditer(text):
        path = re.split(r"::|#|:\d", m.group(1))[0].rstrip(".,;)")
        out.extend(expand(path))
    return out


def _exists(path: str) -> bool:
    if any(c in path for c in "*?["):
        return any(ROOT.glob(path))
    return (ROOT / path).exists()


def test_the_path_extraction() -> None:
    text = (
        "see `libs/kpng/{model,diff}.py`, `tests/nft/test_trace.py::test_x`, `docs/bus.md#x`,"
        " `tools/kpng_apisim/`, `kpng.bus` and `make run`"
    )
    assert named_paths(text) == [
        "libs/kpng/model.py",
        "libs/kpng/diff.py",
        "tests/nft/test_trace.py",
        "docs/bus.md",
        "tools/kpng_apisim/",
    ]


def test_every_path_the_docs_name_exists() -> None:
    missing = [
        f"{doc.relative_to(ROOT)}: {path}"
        for doc in DOCS
        for path in named_paths(doc.read_text())
        if not _exists(path)
    ]
    assert missing == []
    assert sum(len(named_paths(doc.read_text())) for doc in DOCS) > 50  # the docs do name paths


def test_every_relative_link_of_the_docs_resolves() -> None:
    missing = []
    for doc in DOCS:
        for target in LINK.findall(doc.read_text()):
            if target.startswith(("http://", "https://", "#", "mailto:")):
                continue
            if not (doc.parent / target.split("#")[0]).exists():
                missing.append(f"{doc.relative_to(ROOT)}: {target}")
    assert missing == []
