"""The watcher's Prometheus endpoint: kpng_watcher_* counters that parse and move."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from kpng_devrun.procs import free_port, wait_for_port
from tests.integration.harness import Deployment, node, service, slice_, wait_until

pytestmark = pytest.mark.integration


def scrape(port: int) -> dict[str, float]:
    with httpx.Client(timeout=3) as client:
        text = client.get(f"http://127.0.0.1:{port}/metrics").text
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[sample.name + (f"{{{labels}}}" if labels else "")] = sample.value
    return samples


def test_watcher_metrics_parse_and_count(deployment: Deployment) -> None:
    objects = [node("n1", "z1", "192.168.0.1"), service("web", "10.96.0.10")]
    bad = service("bad", "10.96.0.11", port=70000)
    deployment.write_cluster([*objects, slice_("web", [("10.244.1.5", "n1")]), bad])
    deployment.start_nats()
    port = free_port()
    deployment.start_watcher(extra_args=("--metrics-bind-address", f"127.0.0.1:{port}"))
    deployment.start_agent("n1")
    deployment.wait_converged("n1")
    wait_for_port("127.0.0.1", port)

    before = scrape(port)
    assert before["kpng_watcher_invalid_objects_total{kind=Service}"] == 1
    # the process's own, as kube-proxy exports them
    assert before["process_resident_memory_bytes"] > 0
    assert before["process_cpu_seconds_total"] > 0
    assert "kpng_process_children_cpu_seconds_total" in before
    assert before["kpng_watcher_fanout_snapshots_total"] >= 1
    deployment.write_cluster([*objects, slice_("web", [("10.244.1.6", "n1")])])
    deployment.wait_converged("n1")
    wait_until(
        "a batch to be counted",
        lambda: (
            scrape(port)["kpng_watcher_publisher_batches_total"]
            > before["kpng_watcher_publisher_batches_total"]
        ),
    )
    after = scrape(port)
    assert (
        after["kpng_watcher_fanout_messages_total"] > before["kpng_watcher_fanout_messages_total"]
    )
    assert (
        after["kpng_watcher_fanout_encodings_total"] > before["kpng_watcher_fanout_encodings_total"]
    )
