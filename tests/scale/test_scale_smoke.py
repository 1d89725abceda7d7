"""The scale benchmark at a tiny size: every figure is reported and every agent converges.

Behaviour only: the timings of a 20-node run on a busy machine say nothing, so none is
checked against a limit here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

FIELDS = {
    "params": {"nodes", "services", "endpoints", "rate", "duration"},
    "latency": {"batches", "complete_batches", "p50_s", "p99_s", "max_s", "mean_per_agent_s"},
    "latency_first_changes": {"batches", "p50_s", "p99_s", "max_s", "worst"},
    "initial": {"seconds", "watcher_cpu_s", "snapshot_requests", "snapshot_bytes_per_node"},
    "storm": {"seconds", "watcher_cpu_s", "watcher_snapshot_seconds", "snapshot_requests"},
    "storm_cold": {
        "seconds",
        "snapshot_requests",
        "full_snapshots",
        "snapshot_bytes_per_node",
        "compressions",
        "compression_ratio",
        "casts",
        "cast_rounds",
        "sent_bytes_per_full_snapshot",
    },
    "watcher": {
        "cpu_percent_churn",
        "cpu_percent_storm",
        "rss_bytes",
        "peak_rss_bytes",
        "gc_max_pause_cpu_in_churn_s",
    },
    "per_change_per_node": {"messages", "bytes"},
    "encodings": {"per_change", "per_distinct_op", "probe_encodings", "probe_distinct_ops"},
    "publish": {"watcher_msgs_per_s", "raw_msgs_per_s", "efficiency"},
    "agents": {"total", "converged"},
    "storm_cold_delivery": {"seconds", "bytes", "replies", "gbit_per_s"},
    "targets": {
        "p99_latency_s",
        "snapshot_storm_s",
        "snapshot_storm_cold_s",
        "watcher_peak_rss_bytes",
        "bytes_per_change_per_node",
        "encodings_per_distinct_op",
    },
}


def test_tiny_run_reports_every_figure_and_converges(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    # 300 services: a zone part over 64 KiB, so the cold storm's snapshots come by casts
    argv = [sys.executable, "-m", "kpng_scale", "-n", "20", "-s", "300", "-d", "5"]
    argv += ["-r", "50", "--processes", "2", "--json", str(out), "--workdir", str(tmp_path)]
    argv += ["--no-failover"]  # test_failover
    done = subprocess.run(argv, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(out.read_text())
    for section, fields in FIELDS.items():
        assert fields <= set(result[section]), (section, fields - set(result[section]))
    agents = result["agents"]
    assert (agents["total"], agents["converged"], agents["processes"]) == (20, 20, 2)
    assert agents["peak_rss_bytes"] > 0 and agents["gc_pauses_over_10ms_in_churn"] >= 0
    assert result["crashed_processes"] == []
    assert result["bus_security"] == "roles+tls"  # as deployed: users, roles and TLS
    assert result["changes"] > 0
    assert result["latency"]["complete_batches"] == result["latency"]["batches"] > 0
    assert result["latency_first_changes"]["batches"] > 0
    # warm storm: every agent resynced with only what it missed, no full snapshot
    assert result["storm"]["catchups"] >= 20
    assert result["storm"]["full_snapshots"] == 0
    assert result["storm_cold"]["full_snapshots"] >= 20
    # the agents ask for zstd: a zone's part is compressed once, not once per node
    assert 3 <= result["storm_cold"]["compressions"] < 20
    assert result["storm_cold"]["compression_ratio"] > 2
    # the zone part came by casts: one per round for all the agents waiting, so the
    # watcher sent far less than a zone part per node
    cold = result["storm_cold"]
    assert cold["casts"] == cold["full_snapshots"] and cold["snapshot_failures"] == 0
    assert 1 <= cold["cast_rounds"] < 20
    assert cold["sent_bytes_per_full_snapshot"] < cold["cast_bytes"] / cold["cast_rounds"]
    # the watcher's side of a cold storm: every node's full view, counted by a raw reader
    delivery = result["storm_cold_delivery"]
    per_node = result["storm_cold"]["snapshot_bytes_per_node"]
    assert delivery["replies"] >= 20 and delivery["bytes"] >= 20 * per_node * 0.5
    # node-independent services: each distinct operation encoded once, not once per node
    assert result["encodings"]["per_distinct_op"] == 1.0
    assert result["encodings"]["probe_samples"] > 0
    assert "lat" in done.stdout.lower() and "target" in done.stdout
