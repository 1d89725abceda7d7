"""The import-linter contracts (pyproject.toml) hold on the tree, and break when a layer is
crossed: each case adds one forbidden import to a copy of the tree and expects lint-imports to
name the contract it breaks."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.layout.tree import BIN, ROOT, SOURCE_ROOTS, pythonpath


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": pythonpath(root)}
    return subprocess.run(
        [str(BIN / "lint-imports"), "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_contracts_hold() -> None:
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.fixture(scope="module")
def tree_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tree")
    shutil.copy(ROOT / "pyproject.toml", root)
    for r in SOURCE_ROOTS:
        shutil.copytree(ROOT / r, root / r, ignore=shutil.ignore_patterns("__pycache__"))
    return root


CROSSINGS = [
    # (module file, the import added, the contract it breaks)
    ("libs/kpng/diff.py", "import socket", "pure"),
    ("libs/kpng/bus/compression.py", "import subprocess", "pure"),
    ("libs/kpng/dataplane/nft/render.py", "import socket", "pure"),
    ("libs/kpng/observe/explain.py", "from kpng.bus import nats", "pure"),
    (
        "libs/kpng/dataplane/nft/planner.py",
        "from kpng.dataplane.nft.kernel import nlnft",
        "dataplane-kernel",
    ),
    ("libs/kpng/dataplane/claims.py", "from kpng.dataplane.nft import objects", "dataplane-nft"),
    ("libs/kpng/fanout/views.py", "from kpng.dataplane import claims", "kpng-layers"),
    ("libs/kpng/model.py", "from kpng.bus import wire", "kpng-layers"),
    ("services/agent/kpng_agent/agent.py", "import kpng_watcher", "project-layers"),
    ("libs/kpng/runtime/process.py", "import kpng_agent", "project-layers"),
    ("services/watcher/kpng_watcher/main.py", "import nats", "adapter-nats"),
    ("services/agent/kpng_agent/agent.py", "import pyroute2", "adapter-pyroute2"),
    ("services/observer/kpng_observer/state.py", "import fastapi", "adapter-http"),
]


@pytest.mark.parametrize(("module", "line", "contract"), CROSSINGS)
def test_a_crossed_layer_breaks_its_contract(
    tree_copy: Path, module: str, line: str, contract: str
) -> None:
    path = tree_copy / module
    original = path.read_text()
    path.write_text(original + f"\n{line}  # noqa\n")
    try:
        result = _lint_imports(tree_copy)
    finally:
        path.write_text(original)
    assert result.returncode != 0, result.stdout
    broken = _broken_contracts(result.stdout)
    assert _names()[contract] in broken, result.stdout


def _names() -> dict[str, str]:
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    return {c["id"]: c["name"] for c in config["contracts"]}


def _broken_contracts(stdout: str) -> set[str]:
    """The names of the contracts in lint-imports' "Broken contracts" section."""
    _, _, broken = stdout.partition("Broken contracts")
    lines = broken.splitlines()
    return {
        line.strip()
        for line, under in itertools.pairwise(lines)
        if under.strip() and set(under.strip()) == {"-"} and len(under.strip()) == len(line.strip())
    }
