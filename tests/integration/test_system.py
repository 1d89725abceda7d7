"""Watcher and agents as real processes over a real nats-server (acceptance a, b, c, f, g).

The watcher's and NATS's kill -9 are in the fault matrix (tests/faults/test_fault_matrix.py)."""

from __future__ import annotations

import asyncio
import time

import pytest

from kpng.bus.client import NodeViewClient
from kpng.bus.nats import connect
from tests.integration.harness import (
    Deployment,
    node,
    service,
    slice_,
    wait_until,
)

pytestmark = pytest.mark.integration

NODES = [node("n1", "z1", "192.168.0.1"), node("n2", "z2", "192.168.0.2")]


def cluster(endpoint_ip: str = "10.244.1.5") -> list[dict[str, object]]:
    return [
        *NODES,
        service("web", "10.96.0.10"),
        slice_("web", [(endpoint_ip, "n1"), ("10.244.2.5", "n2")]),
        service("local", "10.96.0.11", type="NodePort", externalTrafficPolicy="Local"),
        slice_("local", [("10.244.1.7", "n1")]),
    ]


def test_watcher_and_two_agents_converge(deployment: Deployment) -> None:
    deployment.write_cluster(cluster())
    deployment.start_nats()
    deployment.start_watcher()
    deployment.start_agent("n1")
    deployment.start_agent("n2")
    deployment.wait_converged("n1", "n2")
    n2 = deployment.dump("n2")
    assert n2 is not None
    local = n2["services"]["default/local"]["endpoints"]
    assert [(e["ip"], e["internal"], e["external"]) for e in local] == [("10.244.1.7", True, False)]


def test_late_agent_gets_the_whole_view_by_snapshot(deployment: Deployment) -> None:
    deployment.write_cluster(cluster())
    deployment.start_nats()
    deployment.start_watcher()
    deployment.start_agent("n1")
    deployment.wait_converged("n1")
    deployment.write_cluster(cluster("10.244.1.42"))
    deployment.wait_converged("n1")
    deployment.start_agent("n2")
    deployment.wait_converged("n2")


def test_yaml_edit_reaches_dumps_and_broken_edit_keeps_state(deployment: Deployment) -> None:
    deployment.write_cluster(cluster())
    deployment.start_nats()
    watcher = deployment.start_watcher()
    deployment.start_agent("n1")
    deployment.wait_converged("n1")

    deployment.write_cluster(cluster("10.244.1.77"))
    deployment.wait_converged("n1")

    good = deployment.dump("n1")
    deployment.cluster_file.write_text("kind: Service\nmetadata: {name: [unclosed\n")
    wait_until("the watcher to log the broken file", lambda: "not loaded" in watcher.log())
    assert "keeping the last good state" in watcher.log()
    time.sleep(2 * deployment.tick_interval)
    assert deployment.dump("n1") == good


def test_snapshot_larger_than_max_payload_arrives_in_chunks(deployment: Deployment) -> None:
    objects: list[dict[str, object]] = [*NODES]
    for i in range(150):
        objects.append(service(f"svc-{i}", f"10.96.1.{i}"))
        objects.append(slice_(f"svc-{i}", [(f"10.244.1.{i}", "n1"), (f"10.244.2.{i}", "n2")]))
    deployment.write_cluster(objects)
    deployment.start_nats(max_payload=8192)
    deployment.start_watcher()
    deployment.start_agent("n1")
    deployment.wait_converged("n1", timeout=15)

    async def fetch() -> int:
        bus = await connect(deployment.url, retry_forever=False)
        try:
            assert bus.max_payload == 8192
            chunks = await NodeViewClient(bus, "n1").fetch_snapshot()
            assert all(c.seq == chunks[0].seq for c in chunks)
            return len(chunks)
        finally:
            await bus.close()

    assert asyncio.run(fetch()) > 1
