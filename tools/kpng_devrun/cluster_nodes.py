"""The node names of a cluster YAML file (one agent runs per node)."""

from __future__ import annotations

from pathlib import Path

from kpng.model import Node
from kpng_watcher.file_source import FileSource


def nodes_of(path: Path) -> list[Node]:
    objects = FileSource(path).load()
    if objects is None:
        raise ValueError(f"{path}: not valid YAML")
    return sorted((o for o in objects if isinstance(o, Node)), key=lambda n: n.name)
