"""The HTTP API over ASGI (no NATS): filters, explain, programming, auth, metrics, dashboard."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from kpng.bus.client import ClientStats
from kpng.bus.codec import Status
from kpng.bus.consumer import Applied
from kpng.diff import View
from kpng.fanout.cluster import ClusterState
from kpng.model import ViewEndpoint
from kpng.observe.explain import parse_cidrs
from kpng.parse import Ignored, parse_object
from kpng_observer.api import Settings, create_app
from kpng_observer.metrics import ObserverMetrics
from kpng_observer.state import ObserverState
from tests.observer.cluster import CLUSTER_CIDR, NODES, node_view, objects

NOW = 1000.0


def observer_state() -> ObserverState:
    cluster = ClusterState()
    parsed = [parse_object(o) for o in objects()]
    cluster.replace(p for p in parsed if not isinstance(p, Ignored))
    state = ObserverState(silent_after=5)
    state.note_global(Applied("snapshot", "e1", 0, cluster.global_view(), ()), NOW)
    for name in NODES:
        state.note_published(name, "e1", 2, NOW)
        latency = ((NOW - 1, 0.05), (NOW, 0.15))
        state.note_status(Status(name, "e1", 2, "dump", True, NOW, latency=latency), NOW)
    return state


async def fetch(node: str) -> tuple[str, int, View[ViewEndpoint]]:
    if node == "missing":
        raise LookupError("no watcher answered")
    return "e1", 2, node_view(node)


def client(token: str | None = None, detect_local: str = "ClusterCIDR") -> httpx.AsyncClient:
    state = observer_state()
    metrics = ObserverMetrics(state, ClientStats, clock=lambda: NOW)
    metrics.observe_latency("node-a1", [0.05, 0.15])
    pods = parse_cidrs(CLUSTER_CIDR)
    settings = Settings(token=token, cluster_cidrs=pods, detect_local=detect_local)
    app = create_app(state, fetch, lambda: True, metrics.registry, settings, clock=lambda: NOW)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://observer")


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with client() as c:
        yield c


async def test_services_filter_by_label_selector(http: httpx.AsyncClient) -> None:
    everything = (await http.get("/api/v1/services")).json()
    web = (await http.get("/api/v1/services", params={"label": "app=web"})).json()
    assert [s["name"] for s in web] == ["web"] and web[0]["labels"]["app"] == "web"
    not_web = (await http.get("/api/v1/services", params={"label": "app!=web"})).json()
    assert len(not_web) == len(everything) - 1
    assert (await http.get("/api/v1/services", params={"label": "nolabel"})).json() == []
    bad = await http.get("/api/v1/services", params={"label": "a=(b"})
    assert bad.status_code == 400 and "label" in bad.json()["detail"]


async def test_services_filter_by_namespace_type_and_name(http: httpx.AsyncClient) -> None:
    names = [s["name"] for s in (await http.get("/api/v1/services")).json()]
    assert names == ["cache", "empty", "shop", "web"]
    by_type = (await http.get("/api/v1/services", params={"type": "NodePort"})).json()
    assert [s["name"] for s in by_type] == ["web"]
    assert (await http.get("/api/v1/services", params={"namespace": "nope"})).json() == []
    assert len((await http.get("/api/v1/services", params={"name": "ca"})).json()) == 1
    assert (await http.get("/api/v1/services", params={"type": "Bogus"})).status_code == 422
    web = (await http.get("/api/v1/services/demo/web")).json()
    assert web["endpointCounts"] == {"total": 3, "ready": 2, "usable": 2}


async def test_nodes_latency_and_programming(http: httpx.AsyncClient) -> None:
    nodes = (await http.get("/api/v1/nodes")).json()
    assert {n["name"]: n["state"] for n in nodes} == dict.fromkeys(NODES, "ok")
    assert (await http.get("/api/v1/nodes/node-a1")).json()["zone"] == "zone-a"
    assert (await http.get("/api/v1/nodes/zzz")).status_code == 404
    latency = (await http.get("/api/v1/latency", params={"window": 60})).json()
    assert latency["cluster"]["count"] == 6 and latency["cluster"]["p99"] == 0.15
    programming = (await http.get("/api/v1/services/demo/web/programming")).json()
    assert programming["programmedOn"] == sorted(NODES)


async def test_explain_endpoint(http: httpx.AsyncClient) -> None:
    params = {"destination": "10.96.10.3", "port": 6379, "source": "192.168.1.12"}
    body = (await http.get("/api/v1/nodes/node-a2/explain", params=params)).json()
    assert (body["verdict"], body["service"], body["seq"]) == ("drop", "demo/cache", 2)
    params = {"destination": NODES["node-a1"], "port": 30080, "source": "10.244.1.5"}
    body = (await http.get("/api/v1/nodes/node-a1/explain", params=params)).json()
    assert body["verdict"] == "forward" and body["masquerade"] is True
    assert body["targets"][0] == {
        "ip": "10.244.1.20",
        "port": 8080,
        "node": "node-a1",
        "local": True,
        "terminating": False,
    }
    params = {
        "destination": "10.96.10.1",
        "port": 80,
        "source": "10.9.9.9",
        "clusterCIDR": "10.0.0.0/8",
    }
    assert (await http.get("/api/v1/nodes/node-a1/explain", params=params)).json()[
        "masquerade"
    ] is False
    bad = await http.get("/api/v1/nodes/node-a1/explain", params={"destination": "x", "port": 1})
    assert bad.status_code == 422
    gone = await http.get(
        "/api/v1/nodes/missing/explain", params={"destination": "10.0.0.1", "port": 1}
    )
    assert gone.status_code == 503


async def test_explain_tells_pods_by_the_nodes_pod_cidrs_with_node_cidr() -> None:
    """--detect-local-mode NodeCIDR: a pod is a source in the node's own spec.podCIDRs
    (node-a1: 10.244.1.0/24), not in --cluster-cidr (10.244.0.0/16); a node without pod
    CIDRs tells none; a clusterCIDR in the query still decides."""

    async def masquerade(http: httpx.AsyncClient, node: str, source: str, **more: str) -> Any:
        params = {"destination": "10.96.10.1", "port": "80", "source": source, **more}
        body = (await http.get(f"/api/v1/nodes/{node}/explain", params=params)).json()
        assert body["verdict"] == "forward", body
        return body["masquerade"]

    async with client(detect_local="NodeCIDR") as http:
        assert await masquerade(http, "node-a1", "10.244.1.5") is False
        assert await masquerade(http, "node-a1", "10.244.2.5") is True
        assert await masquerade(http, "node-a2", "10.244.2.5") is None
        assert await masquerade(http, "node-a1", "10.244.2.5", clusterCIDR=CLUSTER_CIDR) is False
    async with client() as http:  # ClusterCIDR: any pod of the cluster
        assert await masquerade(http, "node-a1", "10.244.2.5") is False


async def test_explain_takes_from_pod_where_pods_are_told_by_their_interface() -> None:
    """--detect-local-mode InterfaceNamePrefix: the query says whether the packet comes in on
    a pod's interface; in a mode that tells pods by address, fromPod is refused by name."""
    params = {"destination": "10.96.10.1", "port": "80", "source": "10.244.2.5"}
    url = "/api/v1/nodes/node-a1/explain"
    async with client(detect_local="InterfaceNamePrefix") as http:
        pod = (await http.get(url, params={**params, "fromPod": "true"})).json()
        other = (await http.get(url, params={**params, "fromPod": "false"})).json()
        unsaid = (await http.get(url, params=params)).json()
        assert (pod["masquerade"], other["masquerade"], unsaid["masquerade"]) == (
            False,
            True,
            None,
        )
        assert any("fromPod" in r for r in unsaid["reasons"])
        both = await http.get(
            url, params={**params, "fromPod": "true", "clusterCIDR": "10.0.0.0/8"}
        )
        assert both.status_code == 422 and "give one" in both.json()["detail"]
        by_address = (await http.get(url, params={**params, "clusterCIDR": CLUSTER_CIDR})).json()
        assert by_address["masquerade"] is False  # a clusterCIDR still decides, by address
    async with client() as http:
        refused = await http.get(url, params={**params, "fromPod": "true"})
        assert refused.status_code == 422
        assert "fromPod" in refused.json()["detail"] and "ClusterCIDR" in refused.json()["detail"]


async def test_openapi_documents_every_route(http: httpx.AsyncClient) -> None:
    paths = (await http.get("/openapi.json")).json()["paths"]
    for path in (
        "/api/v1/services",
        "/api/v1/services/{namespace}/{name}/programming",
        "/api/v1/nodes/{node}/explain",
        "/api/v1/latency",
        "/api/v1/events",
        "/metrics",
    ):
        assert path in paths


async def test_metrics_parse_with_the_prometheus_parser(http: httpx.AsyncClient) -> None:
    response = await http.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    nodes = {s.labels["state"]: s.value for s in families["kpng_observer_nodes"].samples}
    assert nodes["ok"] == 3
    assert "kpng_network_programming_duration_seconds" in families
    assert "kpng_client_resyncs" in families  # the global view client's stats


async def test_dashboard_and_static_files_are_served(http: httpx.AsyncClient) -> None:
    page = await http.get("/")
    assert page.status_code == 200 and "kpng observer" in page.text
    assert (await http.get("/static/app.js")).status_code == 200


async def test_token_protects_api_and_metrics_but_not_probes_or_dashboard() -> None:
    async with client(token="s3cret") as http:
        assert (await http.get("/api/v1/nodes")).status_code == 401
        assert (await http.get("/metrics")).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert (await http.get("/api/v1/nodes", headers=wrong)).status_code == 401
        right = {"Authorization": "Bearer s3cret"}
        assert (await http.get("/api/v1/nodes", headers=right)).status_code == 200
        assert (await http.get("/metrics", headers=right)).status_code == 200
        assert (await http.get("/api/v1/nodes?access_token=s3cret")).status_code == 401
        for open_path in ("/livez", "/readyz", "/", "/static/style.css", "/openapi.json"):
            assert (await http.get(open_path)).status_code == 200, open_path


async def test_a_node_path_that_is_no_node_name_is_404_before_any_fetch() -> None:
    asked: list[str] = []

    async def fetch_recording(node: str) -> tuple[str, int, View[ViewEndpoint]]:
        asked.append(node)
        return await fetch(node)

    state = observer_state()
    metrics = ObserverMetrics(state, ClientStats, clock=lambda: NOW)
    settings = Settings(cluster_cidrs=parse_cidrs(CLUSTER_CIDR))
    app = create_app(
        state, fetch_recording, lambda: True, metrics.registry, settings, clock=lambda: NOW
    )
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://observer") as http:
        for name in ["*", ">", "a%20b", "x" * 5000, "Node1"]:
            for path in [f"/api/v1/nodes/{name}/view", f"/api/v1/nodes/{name}/explain"]:
                r = await http.get(path, params={"destination": "10.96.0.1", "port": 80})
                assert r.status_code == 404, (path[:40], r.status_code)
                assert len(r.text) < 400
        assert asked == []
        info = (await http.get("/api/v1/nodes/node-a1/view")).json()["nodeInfo"]
        assert info["pod_cidrs"] == ["10.244.1.0/24"]  # a field of the response schema
        assert "deleting" not in info
        going = (await http.get("/api/v1/nodes/node-b1/view")).json()["nodeInfo"]
        assert going["deleting"] is True and "pod_cidrs" not in going
