"""Issue 14, reproduction 3: a subject longer than the server's control-line limit makes it
close the connection, and the client never came back. One request for
``/api/v1/nodes/<5,000 x's>/view`` cut the observer off for good; a Node with a 5,000-character
name did the same to the watcher. Now the name is refused before any subject is built."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.harness import Deployment, node, wait_until, web_on_n1

pytestmark = pytest.mark.integration

LONG = "x" * 5000


def cluster(ip: str) -> list[dict[str, object]]:
    return [node(LONG, "z1", "192.168.0.9"), *web_on_n1(ip)]


def test_repro3_a_5000_character_node_name_does_not_cut_the_watcher_off(
    deployment: Deployment,
) -> None:
    deployment.write_cluster(cluster("10.244.1.1"))
    deployment.start_nats()
    watcher = deployment.start_watcher()
    deployment.start_agent("n1")
    deployment.wait_converged("n1")
    deployment.write_cluster(cluster("10.244.1.2"))
    deployment.wait_converged("n1", timeout=10)
    assert watcher.running
    assert "metadata.name: 5000 characters" in watcher.log_path.read_text()


def test_repro3_a_5000_character_node_path_does_not_cut_the_observer_off(
    deployment: Deployment,
) -> None:
    deployment.write_cluster(cluster("10.244.1.1")[1:])
    deployment.start_nats()
    deployment.start_watcher()
    deployment.start_agent("n1")
    base = deployment.start_observer()
    wait_until("observer ready", lambda: httpx.get(f"{base}/readyz", timeout=5).is_success)
    for name in [LONG, "*", ">"]:
        r = httpx.get(f"{base}/api/v1/nodes/{name}/view", timeout=10)
        assert r.status_code == 404, r.status_code
    r = httpx.get(f"{base}/api/v1/nodes/n1/view", timeout=10)
    assert r.status_code == 200, r.text
    ready = httpx.get(f"{base}/readyz", timeout=5)
    assert ready.status_code == 200, ready.text
