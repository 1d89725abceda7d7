"""The REST protocol seen raw: discovery, Status errors, watch lines, defaulting."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from kpng_apisim import ApiSimulator

from .conftest import service

pytestmark = pytest.mark.kube

SERVICES = "/api/v1/namespaces/default/services"


@pytest.fixture
async def http(sim: ApiSimulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sim.url, timeout=10) as c:
        yield c


async def test_discovery_documents(http: httpx.AsyncClient) -> None:
    assert (await http.get("/version")).json()["major"] == "1"
    assert (await http.get("/api")).json()["versions"] == ["v1"]
    core = {r["name"] for r in (await http.get("/api/v1")).json()["resources"]}
    assert {"services", "nodes", "namespaces", "services/status"} <= core
    groups = (await http.get("/apis")).json()["groups"]
    assert [g["name"] for g in groups] == ["discovery.k8s.io", "coordination.k8s.io"]
    assert (await http.get("/apis/discovery.k8s.io")).json()["kind"] == "APIGroup"
    eps = (await http.get("/apis/discovery.k8s.io/v1")).json()["resources"]
    assert [r["kind"] for r in eps] == ["EndpointSlice"]
    leases = (await http.get("/apis/coordination.k8s.io/v1")).json()["resources"]
    assert [r["kind"] for r in leases] == ["Lease"]
    assert "api/v1" in (await http.get("/openapi/v3")).json()["paths"]


@pytest.mark.parametrize(
    ("method", "path", "body", "code", "reason"),
    [
        ("GET", f"{SERVICES}/nope", None, 404, "NotFound"),
        ("GET", "/api/v1/widgets", None, 404, "NotFound"),
        ("POST", SERVICES, b"{not json", 400, "BadRequest"),
        ("POST", SERVICES, b'{"metadata": {}}', 422, "Invalid"),
        (
            "POST",
            "/api/v1/namespaces/missing/services",
            b'{"metadata":{"name":"a"}}',
            404,
            "NotFound",
        ),
        ("POST", f"{SERVICES}/x", b"{}", 405, "MethodNotAllowed"),
        ("GET", f"{SERVICES}?labelSelector=a%20in%20(", None, 400, "BadRequest"),
        ("GET", f"{SERVICES}?continue=garbage", None, 400, "BadRequest"),
        ("POST", SERVICES, b'{"kind":"Node","metadata":{"name":"a"}}', 400, "BadRequest"),
    ],
)
async def test_errors_are_status_objects(
    http: httpx.AsyncClient, method: str, path: str, body: bytes | None, code: int, reason: str
) -> None:
    response = await http.request(method, path, content=body)
    assert response.status_code == code
    status = response.json()
    assert (status["kind"], status["code"], status["reason"]) == ("Status", code, reason)


async def test_create_conflict_and_update_conflict(http: httpx.AsyncClient) -> None:
    created = (await http.post(SERVICES, json=service("a"))).json()
    again = await http.post(SERVICES, json=service("a"))
    assert (again.status_code, again.json()["reason"]) == (409, "AlreadyExists")
    stale = {**created, "metadata": {**created["metadata"], "resourceVersion": "1"}}
    conflict = await http.put(f"{SERVICES}/a", json=stale)
    assert (conflict.status_code, conflict.json()["reason"]) == (409, "Conflict")
    fresh = await http.put(f"{SERVICES}/a", json=created)
    assert fresh.status_code == 200
    assert int(fresh.json()["metadata"]["resourceVersion"]) > int(
        created["metadata"]["resourceVersion"]
    )
    deleted = await http.delete(f"{SERVICES}/a")
    assert deleted.json()["metadata"]["name"] == "a"


async def test_service_defaulting(http: httpx.AsyncClient) -> None:
    lb = service("lb")
    lb["spec"] = {
        "type": "LoadBalancer",
        "externalTrafficPolicy": "Local",
        "ports": [{"port": 53, "protocol": "UDP"}],
    }
    spec = (await http.post(SERVICES, json=lb)).json()["spec"]
    assert spec["clusterIPs"] == [spec["clusterIP"]]
    assert spec["ipFamilies"] == ["IPv4"] and spec["ipFamilyPolicy"] == "SingleStack"
    assert spec["internalTrafficPolicy"] == "Cluster" and spec["sessionAffinity"] == "None"
    assert 30000 <= spec["ports"][0]["nodePort"] <= 32767
    assert spec["ports"][0]["targetPort"] == 53
    assert 30000 <= spec["healthCheckNodePort"] <= 32767
    ext = service("ext")
    ext["spec"] = {"type": "ExternalName", "externalName": "example.com"}
    ext_spec = (await http.post(SERVICES, json=ext)).json()["spec"]
    assert "clusterIP" not in ext_spec
    taken = service("taken")
    taken["spec"]["clusterIP"] = spec["clusterIP"]  # type: ignore[index]
    assert (await http.post(SERVICES, json=taken)).status_code == 422


async def watch_lines(http: httpx.AsyncClient, query: str, count: int) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    async with http.stream("GET", f"{SERVICES}?watch=1&{query}") as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            lines.append(json.loads(line))
            if len(lines) == count:
                break
    return lines


async def test_watch_replays_history_and_reports_expired(
    sim: ApiSimulator, http: httpx.AsyncClient
) -> None:
    start = sim.store.resource_version
    sim.store.create("services", service("a"))
    sim.store.delete("services", "a", "default")
    events = await watch_lines(http, f"resourceVersion={start}", 2)
    assert [e["type"] for e in events] == ["ADDED", "DELETED"]
    sim.compact()
    expired = await watch_lines(http, f"resourceVersion={start}", 1)
    assert expired[0]["type"] == "ERROR"
    assert (expired[0]["object"]["code"], expired[0]["object"]["reason"]) == (410, "Expired")
    exact = await http.get(f"{SERVICES}?resourceVersion={start}&resourceVersionMatch=Exact")
    assert exact.status_code == 410


async def test_watch_initial_events_end_bookmark(
    sim: ApiSimulator, http: httpx.AsyncClient
) -> None:
    sim.store.create("services", service("a"))
    query = "sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan"
    events = await watch_lines(http, query, 2)
    assert events[0]["type"] == "ADDED"
    assert events[1]["type"] == "BOOKMARK"
    annotations = events[1]["object"]["metadata"]["annotations"]
    assert annotations == {"k8s.io/initial-events-end": "true"}


async def test_list_exact_rv_and_field_selector(sim: ApiSimulator, http: httpx.AsyncClient) -> None:
    sim.store.create("services", service("a"))
    before = sim.store.resource_version
    sim.store.create("services", service("b"))
    old = (await http.get(f"{SERVICES}?resourceVersion={before}&resourceVersionMatch=Exact")).json()
    assert [i["metadata"]["name"] for i in old["items"]] == ["a"]
    assert old["metadata"]["resourceVersion"] == str(before)
    named = (await http.get(f"{SERVICES}?fieldSelector=metadata.name%3Db")).json()
    assert [i["metadata"]["name"] for i in named["items"]] == ["b"]


async def test_namespace_delete_cascades(sim: ApiSimulator, http: httpx.AsyncClient) -> None:
    await http.post("/api/v1/namespaces", json={"metadata": {"name": "team"}})
    sim.store.create("services", service("a", namespace="team"))
    assert (await http.delete("/api/v1/namespaces/team")).status_code == 200
    assert sim.store.list("services")[1] == []
    assert sim.request_count("delete", "namespaces") == 1


async def test_status_subresource(sim: ApiSimulator, http: httpx.AsyncClient) -> None:
    sim.store.create("services", service("a"))
    ingress = {"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}}
    patched = await http.patch(
        f"{SERVICES}/a/status",
        content=json.dumps(ingress),
        headers={"content-type": "application/merge-patch+json"},
    )
    assert patched.json()["status"] == ingress["status"]
    ignored = await http.patch(
        f"{SERVICES}/a",
        content=json.dumps({"status": {"loadBalancer": {}}}),
        headers={"content-type": "application/merge-patch+json"},
    )
    assert ignored.json()["status"] == ingress["status"]
