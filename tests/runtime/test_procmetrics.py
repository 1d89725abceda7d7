"""The process metrics every service exports: kube-proxy's ``process_*`` names, and the CPU of
the process's exited children (an agent's forked full sync, nft runs)."""

from __future__ import annotations

import os
import time

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from kpng.runtime.procmetrics import register_process_metrics


def samples(registry: CollectorRegistry) -> dict[str, float]:
    text = generate_latest(registry).decode()
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}


def test_the_process_metrics_are_exported() -> None:
    registry = CollectorRegistry()
    register_process_metrics(registry)
    got = samples(registry)
    assert got["process_cpu_seconds_total"] > 0
    assert got["process_resident_memory_bytes"] > 10 * 2**20
    assert got["process_open_fds"] > 0
    assert abs(got["process_start_time_seconds"] - time.time()) < 24 * 3600
    assert "python_info" in got
    assert "kpng_process_children_cpu_seconds_total" in got


def test_a_waited_for_child_s_cpu_is_counted() -> None:
    registry = CollectorRegistry()
    register_process_metrics(registry)
    before = samples(registry)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child burns ~0.2 s of CPU, then leaves
        end = time.process_time() + 0.2
        while time.process_time() < end:
            pass
        os._exit(0)
    os.waitpid(pid, 0)
    after = samples(registry)
    spent = after["kpng_process_children_cpu_seconds_total"]
    assert spent - before["kpng_process_children_cpu_seconds_total"] >= 0.15
    # the parent's own CPU did not include it
    assert after["process_cpu_seconds_total"] - before["process_cpu_seconds_total"] < 0.15
