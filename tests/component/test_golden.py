"""Golden tests: each case's cluster YAML through the whole chain gives its expected table."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.component.golden import GOLDEN, compare, run_case
from tests.component.vtime import run_virtual

CASES = sorted(p for p in GOLDEN.iterdir() if (p / "cluster.yaml").exists())


def test_every_case_has_packets_and_an_expected_table() -> None:
    assert len(CASES) >= 7
    for case in CASES:
        assert (case / "packets.txt").exists(), case
        assert (case / "expected.txt").exists(), case


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_golden(case: Path) -> None:
    compare(case, run_virtual(run_case(case)))
