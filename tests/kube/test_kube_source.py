"""KubeSource against the simulator, in process: how API events become source events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from kpng.fanout.cluster import ClusterState
from kpng.model import EndpointSlice, Service
from kpng.source import Delete, Replace, SourceEvent, Synced, Upsert
from kpng_apisim import ApiSimulator
from kpng_watcher.kube_source import KubeSettings, KubeSource
from kpng_watcher.kube_watch import WatchSettings

from .deploy import eventually
from .objects import PROXY_NAME_LABEL, endpoint_slice, node, service

pytestmark = pytest.mark.kube

FAST = WatchSettings(page_size=2, backoff_initial=0.05, backoff_max=0.5)


@dataclass
class Recorder:
    """Runs a KubeSource and keeps what it says, applied to a ClusterState too."""

    source: KubeSource
    events: list[SourceEvent] = field(default_factory=list)
    state: ClusterState = field(default_factory=ClusterState)

    async def run(self) -> None:
        async for event in self.source.events():
            self.events.append(event)
            if isinstance(event, Replace):
                self.state.replace(event.objects, 0.0, event.kinds)
            elif isinstance(event, Upsert):
                self.state.upsert(event.obj, 0.0)
            elif isinstance(event, Delete):
                self.state.delete(event.kind, event.key, 0.0)

    def since(self, index: int) -> list[SourceEvent]:
        return self.events[index:]

    @property
    def synced(self) -> bool:
        return any(isinstance(e, Synced) for e in self.events)


Start = Callable[[str], Awaitable[Recorder]]


@pytest.fixture
async def start(sim: ApiSimulator) -> AsyncIterator[Start]:
    """Starts sources (``proxy_name``); stops them before the simulator stops."""
    tasks: list[asyncio.Task[None]] = []

    async def start_source(proxy_name: str = "") -> Recorder:
        settings = KubeSettings(str(sim.kubeconfig_path), proxy_name, FAST)
        rec = Recorder(KubeSource(settings))
        tasks.append(asyncio.create_task(rec.run()))
        return rec

    yield start_source
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


@pytest.fixture
async def recorder(start: Start) -> Recorder:
    return await start("")


async def test_initial_lists_are_paginated_and_gate_synced(sim: ApiSimulator, start: Start) -> None:
    for i in range(5):
        sim.store.create("services", service(f"s{i}"))
        sim.store.create("endpointslices", endpoint_slice(f"s{i}", [(f"10.244.0.{i}", "n1")]))
    sim.store.create("nodes", node("n1"))
    rec = await start("")
    await eventually("synced", lambda: rec.synced)
    replaces = [e for e in rec.events if isinstance(e, Replace)]
    assert sorted(k for e in replaces for k in e.kinds) == ["EndpointSlice", "Node", "Service"]
    assert isinstance(rec.events[3], Synced) and len(rec.events) == 4
    assert sim.request_count("list", "services") == 3  # 5 objects, 2 per page
    assert len(rec.state.services) == 5 and len(rec.state.slices) == 5
    assert rec.state.endpoints("default/s3")[0].ip == "10.244.0.3"


async def test_watch_events_become_upserts_and_deletes(
    sim: ApiSimulator, recorder: Recorder
) -> None:
    await eventually("synced", lambda: recorder.synced)
    mark = len(recorder.events)
    sim.store.create("services", service("web"))
    sim.store.create(
        "endpointslices",
        endpoint_slice("web", [("10.244.1.1", "n1")], trigger="2024-05-01T10:00:00Z"),
    )
    sim.store.delete("services", "web", "default")
    await eventually("3 events", lambda: len(recorder.since(mark)) == 3)
    events = recorder.since(mark)  # in order per kind; kinds are separate watches
    added, deleted = [e for e in events if e != events_of_slices(events)[0]]
    slice_added = events_of_slices(events)[0]
    assert isinstance(added, Upsert) and isinstance(added.obj, Service)
    assert isinstance(slice_added, Upsert) and isinstance(slice_added.obj, EndpointSlice)
    assert slice_added.obj.trigger_time == 1714557600.0
    assert deleted == Delete("Service", "default/web")


def events_of_slices(events: list[SourceEvent]) -> list[SourceEvent]:
    return [e for e in events if isinstance(e, Upsert) and isinstance(e.obj, EndpointSlice)]


async def test_malformed_objects_are_skipped_counted_and_deleted_when_modified(
    sim: ApiSimulator, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    sim.store.create("services", service("bad-port", port=70000))
    await eventually("synced", lambda: recorder.synced)
    assert "default/bad-port" not in recorder.state.services
    assert recorder.source.stats.invalid_objects == {"Service": 1}
    assert "kube Service default/bad-port: spec.ports[0].port: 70000 is out of range" in caplog.text
    good = sim.store.create("endpointslices", endpoint_slice("web", [("10.244.1.1", "n1")]))
    await eventually("slice", lambda: "default/web-1" in recorder.state.slices)
    good["endpoints"][0]["addresses"] = ["not-an-ip"]
    sim.store.update("endpointslices", good)
    # A valid object made malformed is deleted (kube_source explains why), and counted.
    await eventually("delete", lambda: "default/web-1" not in recorder.state.slices)
    assert recorder.events[-1] == Delete("EndpointSlice", "default/web-1")
    assert recorder.source.stats.invalid_objects == {"Service": 1, "EndpointSlice": 1}
    assert "endpoints[0].addresses[0]: 'not-an-ip' is not a valid IP address" in caplog.text


async def test_cut_watch_resumes_from_its_resource_version(
    sim: ApiSimulator, recorder: Recorder
) -> None:
    await eventually("synced", lambda: recorder.synced)
    await eventually("3 watches", lambda: sim.store.watch_count == 3)
    assert sim.cut_watches() == 3
    sim.store.create("services", service("during-cut"))
    await eventually("service", lambda: "default/during-cut" in recorder.state.services)
    assert sim.request_count("list", "services") == 1
    assert recorder.source.watch_stats.relists == {}


async def test_compaction_relists_as_a_replace_of_that_kind(
    sim: ApiSimulator, recorder: Recorder
) -> None:
    sim.store.create("services", service("kept"))
    await eventually("synced", lambda: recorder.synced)
    sim.cut_watches()
    sim.store.create("services", service("added-while-cut"))
    sim.compact()

    def relisted() -> set[str]:
        return {k for e in recorder.events[4:] if isinstance(e, Replace) for k in e.kinds}

    await eventually("3 relists", lambda: relisted() == {"Service", "EndpointSlice", "Node"})
    assert "default/added-while-cut" in recorder.state.services
    assert recorder.source.watch_stats.relists["Service"] == 1
    assert "default/kept" in recorder.state.services


async def test_proxy_name_mode_serves_only_labelled_objects(
    sim: ApiSimulator, start: Start
) -> None:
    mine = {PROXY_NAME_LABEL: "kpng"}
    sim.store.create("services", service("plain"))
    sim.store.create("services", service("mine", labels=mine))
    sim.store.create("services", service("theirs", labels={PROXY_NAME_LABEL: "other"}))
    sim.store.create("endpointslices", endpoint_slice("mine", [("10.244.1.1", "n1")], labels=mine))
    rec = await start("kpng")
    await eventually("synced", lambda: rec.synced)
    assert set(rec.state.services) == {"default/mine"}
    assert [e.ip for e in rec.state.endpoints("default/mine")] == ["10.244.1.1"]
