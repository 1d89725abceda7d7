"""Where the source roots are, for the layout tests."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCE_ROOTS = (
    "libs",
    "services/watcher",
    "services/agent",
    "services/observer",
    "services/auth",
    "services/cli",
    "tools",
)
PRODUCT_PACKAGES = ("kpng", "kpng_watcher", "kpng_agent", "kpng_observer", "kpng_auth", "kpng_cli")
BIN = Path(sys.executable).parent


def pythonpath(root: Path = ROOT) -> str:
    """A PYTHONPATH with every source root of the tree at ``root``."""
    return ":".join(str(root / r) for r in SOURCE_ROOTS)


def packages(root: Path = ROOT) -> dict[str, Path]:
    """Every top-level package of the source roots, by name."""
    return {
        p.parent.name: p.parent
        for r in SOURCE_ROOTS
        for p in sorted((root / r).glob("*/__init__.py"))
    }
