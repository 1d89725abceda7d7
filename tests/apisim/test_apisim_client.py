"""kubernetes_asyncio against the simulator: pagination, watches, bookmarks, 410, cuts."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client.exceptions import ApiException

from kpng_apisim import ApiSimulator

from .conftest import eventually, service

pytestmark = pytest.mark.kube


async def test_list_pagination_with_continue(sim: ApiSimulator, api: client.ApiClient) -> None:
    for i in range(25):
        sim.store.create("services", service(f"svc-{i:02d}"))
    v1 = client.CoreV1Api(api)
    names: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        kwargs: dict[str, Any] = {"limit": 10}
        if token:
            kwargs["_continue"] = token
        page = await v1.list_service_for_all_namespaces(**kwargs)
        names += [s.metadata.name for s in page.items]
        pages += 1
        token = page.metadata._continue
        if not token:
            break
    assert pages == 3
    assert names == [f"svc-{i:02d}" for i in range(25)]
    assert sim.request_count("list", "services") == 3


async def test_continue_is_a_consistent_snapshot(sim: ApiSimulator, api: client.ApiClient) -> None:
    for i in range(4):
        sim.store.create("services", service(f"svc-{i}"))
    v1 = client.CoreV1Api(api)
    first = await v1.list_namespaced_service("default", limit=2)
    sim.store.delete("services", "svc-3", "default")
    sim.store.create("services", service("svc-9"))
    rest = await v1.list_namespaced_service("default", limit=10, _continue=first.metadata._continue)
    assert [s.metadata.name for s in rest.items] == ["svc-2", "svc-3"]
    assert rest.metadata.resource_version == first.metadata.resource_version


async def test_continue_after_compaction_is_gone(sim: ApiSimulator, api: client.ApiClient) -> None:
    for i in range(3):
        sim.store.create("services", service(f"svc-{i}"))
    v1 = client.CoreV1Api(api)
    first = await v1.list_namespaced_service("default", limit=1)
    sim.store.create("services", service("later"))
    sim.compact()
    with pytest.raises(ApiException) as info:
        await v1.list_namespaced_service("default", limit=1, _continue=first.metadata._continue)
    assert info.value.status == 410


async def test_label_selector_filters_lists(sim: ApiSimulator, api: client.ApiClient) -> None:
    sim.store.create("services", service("plain"))
    sim.store.create(
        "services", service("other", **{"service.kubernetes.io/service-proxy-name": "x"})
    )
    sim.store.create("services", service("headless", **{"service.kubernetes.io/headless": ""}))
    v1 = client.CoreV1Api(api)
    selector = "!service.kubernetes.io/service-proxy-name,!service.kubernetes.io/headless"
    ours = await v1.list_service_for_all_namespaces(label_selector=selector)
    assert [s.metadata.name for s in ours.items] == ["plain"]
    theirs = await v1.list_service_for_all_namespaces(
        label_selector="service.kubernetes.io/service-proxy-name=x"
    )
    assert [s.metadata.name for s in theirs.items] == ["other"]


async def collect(stream: watch.Watch, count: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    async for event in stream:
        events.append(event)
        if len(events) == count:
            break
    return events


async def test_watch_added_modified_deleted_and_bookmark(
    sim: ApiSimulator, api: client.ApiClient
) -> None:
    v1 = client.CoreV1Api(api)
    listed = await v1.list_namespaced_service("default")
    rv = listed.metadata.resource_version
    async with watch.Watch() as w:
        stream = w.stream(
            v1.list_namespaced_service,
            "default",
            resource_version=rv,
            allow_watch_bookmarks=True,
            timeout_seconds=20,
        )
        sim.store.create("services", service("a"))
        obj = sim.store.get("services", "a", "default")
        obj["metadata"]["labels"] = {"changed": "yes"}
        sim.store.update("services", obj)
        sim.store.delete("services", "a", "default")
        events = await asyncio.wait_for(collect(stream, 4), timeout=10)
    types = [e["type"] for e in events]
    assert types == ["ADDED", "MODIFIED", "DELETED", "BOOKMARK"]
    assert events[1]["object"].metadata.labels == {"changed": "yes"}
    assert events[3]["raw_object"]["metadata"]["resourceVersion"] == str(sim.store.resource_version)


async def test_watch_without_rv_starts_with_synthetic_added(
    sim: ApiSimulator, api: client.ApiClient
) -> None:
    sim.store.create("services", service("existing"))
    async with watch.Watch() as w:
        stream = w.stream(
            client.CoreV1Api(api).list_namespaced_service, "default", timeout_seconds=5
        )
        events = await asyncio.wait_for(collect(stream, 1), timeout=5)
    assert events[0]["type"] == "ADDED"
    assert events[0]["object"].metadata.name == "existing"


async def test_watch_from_compacted_rv_is_gone(sim: ApiSimulator, api: client.ApiClient) -> None:
    v1 = client.CoreV1Api(api)
    rv = (await v1.list_namespaced_service("default")).metadata.resource_version
    sim.store.create("services", service("a"))
    sim.compact()
    async with watch.Watch() as w:
        stream = w.stream(
            v1.list_namespaced_service, "default", resource_version=rv, timeout_seconds=5
        )
        with pytest.raises(ApiException) as info:
            await asyncio.wait_for(collect(stream, 1), timeout=5)
    assert info.value.status == 410


async def test_cut_watches_ends_streams(sim: ApiSimulator, api: client.ApiClient) -> None:
    v1 = client.CoreV1Api(api)
    rv = (await v1.list_namespaced_service("default")).metadata.resource_version

    async def watch_until_end() -> list[str]:
        async with watch.Watch() as w:
            stream = w.stream(
                v1.list_namespaced_service, "default", resource_version=rv, timeout_seconds=60
            )
            return [e["type"] async for e in stream]

    watchers = [asyncio.create_task(watch_until_end()) for _ in range(3)]
    await eventually(lambda: sim.store.watch_count == 3)
    sim.store.create("services", service("a"))
    await asyncio.sleep(0.1)
    assert sim.cut_watches() == 3
    results = await asyncio.wait_for(asyncio.gather(*watchers), timeout=5)
    assert results == [["ADDED"]] * 3


async def test_concurrent_watchers_with_selectors(sim: ApiSimulator, api: client.ApiClient) -> None:
    v1 = client.CoreV1Api(api)
    rv = (await v1.list_service_for_all_namespaces()).metadata.resource_version

    async def watch_names(selector: str, count: int) -> list[tuple[str, str]]:
        async with watch.Watch() as w:
            stream = w.stream(
                v1.list_service_for_all_namespaces,
                resource_version=rv,
                label_selector=selector,
                timeout_seconds=20,
            )
            events = await collect(stream, count)
        return [(e["type"], e["object"].metadata.name) for e in events]

    ours = asyncio.create_task(watch_names("!service.kubernetes.io/service-proxy-name", 3))
    theirs = asyncio.create_task(watch_names("service.kubernetes.io/service-proxy-name=x", 1))
    await eventually(lambda: sim.store.watch_count == 2)
    sim.store.create("services", service("a"))
    sim.store.create("services", service("b", **{"service.kubernetes.io/service-proxy-name": "x"}))
    obj = sim.store.get("services", "a", "default")
    obj["metadata"]["labels"] = {"service.kubernetes.io/service-proxy-name": "x"}
    obj = sim.store.update("services", obj)
    obj["metadata"]["labels"] = {}
    sim.store.update("services", obj)
    ours_events, theirs_events = await asyncio.wait_for(asyncio.gather(ours, theirs), timeout=10)
    assert ours_events == [("ADDED", "a"), ("DELETED", "a"), ("ADDED", "a")]
    assert theirs_events == [("ADDED", "b")]


async def test_restart_keeps_or_drops_the_store(sim: ApiSimulator, api: client.ApiClient) -> None:
    sim.store.create("services", service("kept"))
    port = sim.port
    await sim.restart()
    assert sim.port == port
    v1 = client.CoreV1Api(api)
    assert [s.metadata.name for s in (await v1.list_namespaced_service("default")).items] == [
        "kept"
    ]
    await sim.restart(keep_store=False)
    assert (await v1.list_namespaced_service("default")).items == []
