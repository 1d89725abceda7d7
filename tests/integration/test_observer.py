"""The observer's basic API over a real bus."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.integration.harness import Deployment, node, service, slice_, wait_until

pytestmark = pytest.mark.integration


def get(url: str) -> httpx.Response:
    with httpx.Client(timeout=5) as client:
        return client.get(url)


def nodes_in_sync(base: str, names: set[str]) -> bool:
    body: list[dict[str, Any]] = get(f"{base}/api/v1/nodes").json()
    in_sync = {
        n["name"]
        for n in body
        if n["inSync"] and not n["silent"] and n["published"]["seq"] >= 0  # a tick was seen
    }
    return names <= in_sync


def test_observer_reports_services_nodes_and_views(deployment: Deployment) -> None:
    deployment.write_cluster(
        [
            node("n1", "z1", "192.168.0.1"),
            node("n2", "z2", "192.168.0.2"),
            service("web", "10.96.0.10"),
            slice_("web", [("10.244.1.5", "n1")]),
        ]
    )
    deployment.start_nats()
    deployment.start_watcher()
    deployment.start_agent("n1")
    deployment.start_agent("n2")
    base = deployment.start_observer()
    assert get(f"{base}/livez").status_code == 200
    wait_until("the observer to be ready", lambda: get(f"{base}/readyz").status_code == 200)
    wait_until("both nodes in sync", lambda: nodes_in_sync(base, {"n1", "n2"}))

    nodes = {n["name"]: n for n in get(f"{base}/api/v1/nodes").json()}
    assert nodes["n1"]["zone"] == "z1"
    assert nodes["n1"]["applied"]["seq"] == nodes["n1"]["published"]["seq"]
    assert nodes["n1"]["applied"]["backend"] == "dump"

    services = get(f"{base}/api/v1/services").json()
    assert [s["name"] for s in services] == ["web"]
    web = get(f"{base}/api/v1/services/default/web").json()
    assert [e["ip"] for e in web["endpoints"]] == ["10.244.1.5"]
    assert get(f"{base}/api/v1/services/default/nope").status_code == 404

    view = get(f"{base}/api/v1/nodes/n2/view").json()
    dump = deployment.dump("n2")
    assert dump is not None and view["services"] == dump["services"]
    assert "/api/v1/nodes" in get(f"{base}/openapi.json").json()["paths"]

    deployment.agents["n2"].kill()
    wait_until("n2 to show as silent", lambda: not nodes_in_sync(base, {"n2"}), timeout=8)
    silent = {n["name"]: n["silent"] for n in get(f"{base}/api/v1/nodes").json()}
    assert silent == {"n1": False, "n2": True}
