"""The bench's dual-stack floor (kpng_bench.pairfloor): its children write real tables in
namespaces of their own, released together, and leave no namespace behind."""

from __future__ import annotations

import subprocess
import sys

import pytest

from kpng_bench import pairfloor

pytestmark = pytest.mark.netns


def _bench_namespaces() -> set[str]:
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in listed.splitlines() if line.endswith("-bench")}


def test_a_small_round_measures_each_layout_and_cleans_up() -> None:
    before = _bench_namespaces()
    m = pairfloor.measure(size=20, rounds=1)
    assert _bench_namespaces() == before
    assert len(m["alone_s"]) == len(m["pair_s"]) == len(m["dual_s"]) == 1
    assert len(m["cpu_pair_s"]) == 2 and all(c > 0 for c in m["cpu_pair_s"])
    assert m["ratio"] == m["pair_s"][0] / m["alone_s"][0]
    assert "floor of a dual-stack sync here, 20 services" in pairfloor.line(m)


def test_a_child_that_is_not_released_writes_nothing() -> None:
    """A child told anything but ``go`` leaves before making its namespace's table (the
    namespace itself is made and removed around the wait)."""
    child = subprocess.run(
        [sys.executable, "-m", "kpng_bench.pairfloor", "--child", "ipv4", "5"],
        input="stop\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == 1 and child.stdout.strip() == "ready", child
