"""Issue 14, reproduction 5: one operation larger than max_payload (a Service with 30,000
ports) jammed every agent even after the file was fixed: its delta and every catch-up reply
exceeded max_payload and it stayed in the replay history. Now the watcher refuses that
version (logged with its size, counted); every other change flows, a new agent syncs, and
the fixed version is published."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.integration.harness import Deployment, node, service, slice_, wait_until

pytestmark = pytest.mark.integration


def cluster(web_ip: str, big_ports: int) -> list[dict[str, Any]]:
    big = service("big", "10.96.0.20")
    big["spec"]["ports"] = [
        {"name": f"p{i}", "port": i + 1, "targetPort": i + 1} for i in range(big_ports)
    ]
    return [
        node("n1", "z1", "192.168.0.1"),
        node("n2", "z1", "192.168.0.2"),
        service("web", "10.96.0.10"),
        slice_("web", [(web_ip, "n1")]),
        big,
    ]


def holds(deployment: Deployment, name: str, text: str) -> bool:
    return text in json.dumps(deployment.dump(name))


def test_repro5_a_service_with_30000_ports_jams_nothing(deployment: Deployment) -> None:
    deployment.write_cluster(cluster("10.244.1.1", 2))
    # 128 KiB: the service's 1.5 MB operation stays over it even zstd-compressed (146 KB),
    # as it stays over the default 1 MiB when its ports are less regular
    deployment.start_nats(max_payload=128 * 1024)
    watcher = deployment.start_watcher()
    deployment.start_agent("n1")
    deployment.wait_converged("n1")
    deployment.write_cluster(cluster("10.244.1.2", 30_000))
    wait_until(  # parsing the 30,000 ports in YAML takes seconds
        "the web edit beside the oversize one", lambda: holds(deployment, "n1", "10.244.1.2"), 60
    )
    deployment.start_agent("n2")  # a full snapshot while the oversize version is current
    wait_until("n2 synced", lambda: holds(deployment, "n2", "10.244.1.2"), 20)
    log = watcher.log_path.read_text()
    assert "service default/big not published: an operation of" in log
    deployment.write_cluster(cluster("10.244.1.3", 3))  # fixed
    deployment.wait_converged("n1", "n2", timeout=20)
    assert watcher.running
