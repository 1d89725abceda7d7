"""The scale benchmark's failover phase at a tiny size: the leading watcher killed (-9), a
standby takes over, then a restarted single watcher; every agent moves to the new epoch by
a rebase (no full snapshot, no catch-up), and the phase reports its figures and targets.

Behaviour only, as in test_scale_smoke: no timing is checked against its limit here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
NODES = 12


def test_a_failover_moves_every_agent_by_a_rebase(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    argv = [sys.executable, "-m", "kpng_scale", "-n", str(NODES), "-s", "40", "-d", "1"]
    # a lease wait past the idle time after which the agents' processes (many views each)
    # compute their views' digests: a rebase needs them (kpng.bus.client.DIGEST_IDLE)
    argv += ["-r", "20", "--warmup", "0.5", "--processes", "2", "--lease-wait", "7"]
    argv += ["--json", str(out), "--workdir", str(tmp_path)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(out.read_text())
    failover = result["failover"]
    for name in ("standby", "restart"):
        case = failover[name]
        old, new = case["epochs"]
        assert old != new, name
        # the same cluster (the churn replayed): one rebase per agent, nothing else
        assert (case["rebases"], case["catchups"], case["full_snapshots"]) == (NODES, 0, 0)
        # a tick, a request with the digest and a reply without operations, per node
        assert 0 < case["bytes_per_node"] < 1024, case["bytes"]
        assert case["bytes"]["request_bytes"] > 0 and case["bytes"]["reply_bytes"] > 0
        assert 0 <= case["seconds"] <= case["seconds_from_kill"]
        assert 0 <= case["digests_computed"] <= NODES
    assert failover["standby"]["seconds_from_kill"] >= 7  # the lease wait
    assert failover["restart"]["load_s"] > 0
    # the standby's rebases made every agent compute its digest: none left for the restart
    assert failover["restart"]["digests_computed"] == 0
    assert set(result["targets"]) >= {"failover_s", "failover_bytes_per_node"}
    assert result["targets"]["failover_bytes_per_node"]["ok"]
    assert result["targets"]["failover_s"]["limit"] == 1.0
    assert result["crashed_processes"] == []  # the killed watchers are no crash
    assert result["agents"]["converged"] == NODES
    assert "failover, restart" in done.stdout
