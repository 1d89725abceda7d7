"""Fixtures shared by every test tier."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kpng_devrun.procs import ProcessGroup
from tests.integration.harness import Deployment


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    """A small kpng deployment of processes, all stopped afterwards (also on failure)."""
    group = ProcessGroup(tmp_path / "logs")
    try:
        yield Deployment(tmp_path, group)
    finally:
        group.stop()
