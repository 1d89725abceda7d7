"""kubectl drives the simulator: create, get, apply, patch, label, delete."""

from __future__ import annotations

import json

import pytest

from kpng_apisim import ApiSimulator

from .conftest import Kubectl

pytestmark = pytest.mark.kube

SERVICE_YAML = """
apiVersion: v1
kind: Service
metadata:
  name: web
  labels: {app: web}
spec:
  selector: {app: web}
  ports:
  - name: http
    port: 80
    targetPort: {target}
"""

SLICE_AND_NODE_YAML = """
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-abc
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
endpoints:
- addresses: [10.0.0.1]
  conditions: {ready: true}
  nodeName: n1
ports:
- {name: http, port: 8080, protocol: TCP}
---
apiVersion: v1
kind: Node
metadata:
  name: n1
  labels: {topology.kubernetes.io/zone: z1}
"""


async def get_json(kubectl: Kubectl, *args: str) -> dict[str, object]:
    result = await kubectl("get", *args, "-o", "json")
    body: dict[str, object] = json.loads(result.out)
    return body


async def test_create_get_and_defaults(kubectl: Kubectl) -> None:
    await kubectl("create", "-f", "-", stdin=SERVICE_YAML.replace("{target}", "8080"))
    svc = await get_json(kubectl, "service", "web")
    spec = svc["spec"]
    assert isinstance(spec, dict)
    assert spec["clusterIP"].startswith("10.96.")
    assert spec["ports"] == [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]
    listing = await kubectl("get", "svc")
    header, row = listing.out.splitlines()
    assert header.split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    assert row.split()[:5] == ["web", "ClusterIP", spec["clusterIP"], "<none>", "80/TCP"]
    again = await kubectl("create", "-f", "-", stdin=SERVICE_YAML, check=False)
    assert again.rc != 0
    assert "AlreadyExists" in again.err or "already exists" in again.err


async def test_apply_twice_updates(kubectl: Kubectl) -> None:
    await kubectl("apply", "-f", "-", stdin=SERVICE_YAML.replace("{target}", "8080"))
    first = await get_json(kubectl, "svc", "web")
    await kubectl("apply", "-f", "-", stdin=SERVICE_YAML.replace("{target}", "9090"))
    second = await get_json(kubectl, "svc", "web")
    assert second["spec"]["ports"][0]["targetPort"] == 9090  # type: ignore[index]
    assert second["spec"]["clusterIP"] == first["spec"]["clusterIP"]  # type: ignore[index]
    assert int(second["metadata"]["resourceVersion"]) > int(  # type: ignore[index]
        first["metadata"]["resourceVersion"]  # type: ignore[index]
    )


async def test_apply_endpointslice_and_node_server_side(kubectl: Kubectl) -> None:
    await kubectl("apply", "-f", "-", stdin=SLICE_AND_NODE_YAML)
    await kubectl("apply", "--server-side", "-f", "-", stdin=SLICE_AND_NODE_YAML)
    slices = await get_json(kubectl, "endpointslices", "-A")
    assert [i["metadata"]["name"] for i in slices["items"]] == ["web-abc"]  # type: ignore[attr-defined]
    nodes = await get_json(kubectl, "nodes")
    assert [i["metadata"]["name"] for i in nodes["items"]] == ["n1"]  # type: ignore[attr-defined]


async def test_patch_merge_and_json(kubectl: Kubectl) -> None:
    await kubectl("create", "-f", "-", stdin=SERVICE_YAML.replace("{target}", "8080"))
    await kubectl("patch", "svc", "web", "--type", "merge", "-p", '{"spec":{"type":"NodePort"}}')
    ops = '[{"op":"replace","path":"/spec/ports/0/port","value":81}]'
    await kubectl("patch", "svc", "web", "--type", "json", "-p", ops)
    spec = (await get_json(kubectl, "svc", "web"))["spec"]
    assert isinstance(spec, dict)
    assert spec["type"] == "NodePort"
    assert spec["ports"][0]["port"] == 81
    assert 30000 <= spec["ports"][0]["nodePort"] <= 32767
    bad = await kubectl(
        "patch", "svc", "web", "--type", "json", "-p", '[{"op":"bad"}]', check=False
    )
    assert bad.rc != 0


async def test_label_selector_and_delete(kubectl: Kubectl, sim: ApiSimulator) -> None:
    await kubectl("create", "-f", "-", stdin=SERVICE_YAML.replace("{target}", "8080"))
    await kubectl("label", "svc", "web", "tier=frontend")
    await kubectl("label", "svc", "web", "app-")
    labels = (await get_json(kubectl, "svc", "web"))["metadata"]["labels"]  # type: ignore[index]
    assert labels == {"tier": "frontend"}
    assert "web" in (await kubectl("get", "svc", "-l", "tier=frontend")).out
    assert "web" not in (await kubectl("get", "svc", "-l", "tier notin (frontend)")).out
    await kubectl("delete", "svc", "web")
    assert sim.store.list("services", "default")[1] == []
    missing = await kubectl("get", "svc", "web", check=False)
    assert missing.rc != 0 and "NotFound" in missing.err
