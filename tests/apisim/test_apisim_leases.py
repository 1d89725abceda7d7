"""Leases (coordination.k8s.io/v1): what leader election needs from the API server."""

from __future__ import annotations

import asyncio
import json

import pytest
from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client.exceptions import ApiException

from kpng_apisim import ApiSimulator

from .conftest import Kubectl

pytestmark = pytest.mark.kube


def lease(holder: str) -> client.V1Lease:
    return client.V1Lease(
        metadata=client.V1ObjectMeta(name="kpng-watcher", namespace="kube-system"),
        spec=client.V1LeaseSpec(holder_identity=holder, lease_duration_seconds=15),
    )


async def test_create_get_replace_and_stale_update_conflicts(
    sim: ApiSimulator, api: client.ApiClient
) -> None:
    coord = client.CoordinationV1Api(api)
    created = await coord.create_namespaced_lease("kube-system", lease("a"))
    assert created.spec.holder_identity == "a"
    seen_by_b = await coord.read_namespaced_lease("kpng-watcher", "kube-system")
    seen_by_c = await coord.read_namespaced_lease("kpng-watcher", "kube-system")
    seen_by_b.spec.holder_identity = "b"
    won = await coord.replace_namespaced_lease("kpng-watcher", "kube-system", seen_by_b)
    assert won.spec.holder_identity == "b"
    assert int(won.metadata.resource_version) > int(seen_by_c.metadata.resource_version)
    seen_by_c.spec.holder_identity = "c"
    with pytest.raises(ApiException) as info:
        await coord.replace_namespaced_lease("kpng-watcher", "kube-system", seen_by_c)
    assert info.value.status == 409
    assert json.loads(info.value.body)["reason"] == "Conflict"
    with pytest.raises(ApiException) as again:
        await coord.create_namespaced_lease("kube-system", lease("d"))
    assert again.value.status == 409
    assert sim.store.get("leases", "kpng-watcher", "kube-system")["spec"]["holderIdentity"] == "b"


async def test_patch_list_and_watch(sim: ApiSimulator, api: client.ApiClient) -> None:
    coord = client.CoordinationV1Api(api)
    await coord.create_namespaced_lease("kube-system", lease("a"))
    listed = await coord.list_namespaced_lease("kube-system")
    assert [x.metadata.name for x in listed.items] == ["kpng-watcher"]
    async with watch.Watch() as w:
        stream = w.stream(
            coord.list_namespaced_lease,
            "kube-system",
            resource_version=listed.metadata.resource_version,
            timeout_seconds=10,
        )
        await coord.patch_namespaced_lease(
            "kpng-watcher", "kube-system", {"spec": {"holderIdentity": "z"}}
        )
        event = await asyncio.wait_for(anext(aiter(stream)), timeout=10)
    assert event["type"] == "MODIFIED"
    assert event["object"].spec.holder_identity == "z"


async def test_kubectl_sees_leases(kubectl: Kubectl, sim: ApiSimulator) -> None:
    sim.store.create(
        "leases",
        {"metadata": {"name": "kpng-watcher"}, "spec": {"holderIdentity": "w-1"}},
        "kube-system",
    )
    out = (await kubectl("get", "leases", "-n", "kube-system")).out
    assert "kpng-watcher" in out and "w-1" in out
    got = await kubectl(
        "get", "lease.coordination.k8s.io", "kpng-watcher", "-n", "kube-system", "-o", "json"
    )
    assert json.loads(got.out)["spec"]["holderIdentity"] == "w-1"
