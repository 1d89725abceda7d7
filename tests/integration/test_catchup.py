"""Catch-up resync over a real nats-server: agents that keep a trusted view get only what
they missed (no full snapshot), and a history that does not reach back means a full one."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import msgpack
import pytest

from kpng.bus.client import NodeViewClient
from kpng.bus.codec import SnapshotRequest, encode
from kpng.bus.nats import connect
from kpng.bus.protocol import Bus
from kpng_watcher.file_source import FileSource
from kpng_watcher.publisher import Publisher, PublisherSettings
from tests.integration.harness import Deployment, node, service, slice_, until, wait_until

pytestmark = pytest.mark.integration
FULL = re.compile(r"full snapshot at seq")
CATCH_UP = re.compile(r"catch-up from seq (\d+) to (\d+), (\d+) ops")


def cluster(*ips: str) -> list[dict[str, Any]]:
    return [
        node("n1", "z1", "192.168.0.1"),
        node("n2", "z2", "192.168.0.2"),
        service("web", "10.96.0.10"),
        service("local", "10.96.0.11", 81, type="NodePort", externalTrafficPolicy="Local"),
        slice_("web", [(ip, "n1") for ip in ips]),
        slice_("local", [(ip, "n2") for ip in ips]),
    ]


def start_converged(deployment: Deployment) -> None:
    """NATS, the watcher on ``cluster("10.244.1.1")`` and the agents of n1 and n2, converged."""
    deployment.write_cluster(cluster("10.244.1.1"))
    deployment.start_nats()
    deployment.start_watcher()
    for name in ("n1", "n2"):
        deployment.start_agent(name)
    deployment.wait_converged("n1", "n2")


def test_nats_restart_agents_catch_up_without_a_full_snapshot(deployment: Deployment) -> None:
    start_converged(deployment)
    deployment.write_cluster(cluster("10.244.1.1", "10.244.1.2"))  # seq moves on
    deployment.wait_converged("n1", "n2")

    deployment.group.children["nats-server"].stop()
    deployment.write_cluster(cluster("10.244.1.2", "10.244.1.3"))  # changed while down
    time.sleep(1.5)
    deployment.start_nats()  # same port: watcher and agents reconnect
    deployment.wait_converged("n1", "n2", timeout=40)
    for name in ("n1", "n2"):
        log = deployment.agents[name].log()
        assert len(FULL.findall(log)) == 1, log  # the first sync only
        catch_ups = CATCH_UP.findall(log)
        assert catch_ups, log
        assert all(int(b) >= int(a) for a, b, _ in catch_ups)
        assert "reconnected" in log


async def test_history_too_short_means_a_full_snapshot(deployment: Deployment) -> None:
    deployment.write_cluster(cluster("10.244.1.1"))
    deployment.start_nats()
    watcher_bus = await connect(deployment.url, retry_forever=False)
    client_bus = await connect(deployment.url, retry_forever=False)
    settings = PublisherSettings(0.01, 0.5, history=2)
    publisher = Publisher(watcher_bus, FileSource(deployment.cluster_file, 0.05), settings)
    client = NodeViewClient(client_bus, "n1")
    try:
        async with asyncio.TaskGroup() as tasks:
            watcher = tasks.create_task(publisher.run())
            await asyncio.wait_for(publisher.ready.wait(), 10)
            for i in range(3, 7):  # 4 deltas for n1
                seq = publisher.fanout.seq["n1"]
                deployment.write_cluster(cluster(*(f"10.244.1.{j}" for j in range(1, i))))
                await until(lambda s=seq: publisher.fanout.seq["n1"] > s)
            seq, epoch = publisher.fanout.seq["n1"], publisher.epoch
            [recent] = await client.fetch_snapshot((epoch, seq - 2))
            # the last two deltas: each added an endpoint to both services
            assert (recent.base, recent.seq, len(recent.ops)) == (seq - 2, seq, 4)
            [same] = await client.fetch_snapshot((epoch, seq))
            assert (same.base, same.seq, same.ops) == (seq, seq, ())
            for since in ((epoch, seq - 3), ("another-epoch", seq), (epoch, seq + 1)):
                [full] = await client.fetch_snapshot(since)
                assert (full.base, full.seq) == (-1, seq)
                assert len(full.ops) == 2 + 2 * 5 + 1  # services, endpoints and the node
            assert publisher.fanout.stats.catchups == 2
            watcher.cancel()
    finally:
        await client_bus.close()
        await watcher_bus.close()


async def _raw_chunks(bus: Any, subject: str, request: SnapshotRequest) -> list[bytes]:
    inbox = bus.new_inbox()
    replies: asyncio.Queue[bytes] = asyncio.Queue()
    sub = await bus.subscribe(inbox, lambda data, s, r: replies.put_nowait(data))
    try:
        await bus.publish(subject, encode(request), reply=inbox)
        chunks = [await asyncio.wait_for(replies.get(), 10)]
        while len(chunks) < msgpack.unpackb(chunks[0])["chunks"]:
            chunks.append(await asyncio.wait_for(replies.get(), 10))
        return chunks
    finally:
        await sub.unsubscribe()


async def _raw_snapshot(bus: Any, subject: str, request: SnapshotRequest) -> list[dict[str, Any]]:
    return [msgpack.unpackb(c) for c in await _raw_chunks(bus, subject, request)]


@contextlib.asynccontextmanager
async def _watcher(deployment: Deployment, ips: list[str]) -> AsyncIterator[tuple[Publisher, Bus]]:
    """A running watcher Publisher over ``cluster(*ips)``, and a bus for the test's client."""
    deployment.write_cluster(cluster(*ips))
    deployment.start_nats()
    watcher_bus = await connect(deployment.url, retry_forever=False)
    client_bus = await connect(deployment.url, retry_forever=False)
    publisher = Publisher(
        watcher_bus, FileSource(deployment.cluster_file, 0.05), PublisherSettings(0.01, 0.5)
    )
    try:
        async with asyncio.TaskGroup() as tasks:
            watcher = tasks.create_task(publisher.run())
            await asyncio.wait_for(publisher.ready.wait(), 10)
            yield publisher, client_bus
            watcher.cancel()
    finally:
        await client_bus.close()
        await watcher_bus.close()


async def _first_view_is_the_nodes(publisher: Publisher, client: NodeViewClient, eps: int) -> None:
    async for event in client:
        assert event.view == publisher.state.node_view(client.node)
        assert len(event.view.endpoints["default/web"]) == eps
        break


async def test_compact_endpoints_only_for_consumers_that_accept_them(
    deployment: Deployment,
) -> None:
    async with _watcher(deployment, ["10.244.1.1", "10.244.1.2"]) as (publisher, bus):
        subject = bus.subjects.node_snapshot("n1")
        kinds = {}
        for accept in ((), ("eps",)):
            chunks = await _raw_snapshot(bus, subject, SnapshotRequest(accept=accept))
            kinds[accept] = {op["op"] for c in chunks for op in c["ops"]}
        assert "eps" not in kinds[()] and "ep" in kinds[()]  # a v1 consumer as before
        assert "eps" in kinds[("eps",)] and "ep" not in kinds[("eps",)]
        # the client asks for them, and its view is the node's view either way
        await _first_view_is_the_nodes(publisher, NodeViewClient(bus, "n1"), 2)


async def test_compressed_chunks_only_for_consumers_that_accept_them(
    deployment: Deployment,
) -> None:
    ips = [f"10.244.1.{i}" for i in range(1, 201)]  # a view of several KB: worth compressing
    async with _watcher(deployment, ips) as (publisher, bus):
        sizes, fields = {}, {}
        subjects = (bus.subjects.node_snapshot("n1"), bus.subjects.global_snapshot)
        for subject in subjects:
            for accept in ((), ("eps",), ("eps", "zstd")):
                chunks = await _raw_chunks(bus, subject, SnapshotRequest(accept=accept))
                sizes[subject, accept] = sum(map(len, chunks))
                fields[subject, accept] = {k for c in chunks for k in msgpack.unpackb(c)}
        for subject in subjects:
            assert "zops" not in fields[subject, ()] | fields[subject, ("eps",)]
            assert "zops" in fields[subject, ("eps", "zstd")]
            assert sizes[subject, ("eps", "zstd")] < sizes[subject, ("eps",)] / 2
        assert publisher.fanout.stats.compressions >= 2
        # the client asks for them; its view is the node's view with or without
        for compressed in (True, False):
            client = NodeViewClient(bus, "n1", compressed=compressed)
            await _first_view_is_the_nodes(publisher, client, 200)


async def test_the_watcher_freezes_its_model_once_loaded(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cyclic GC's full passes over the loaded model paused publishing (up to 0.5 s)."""
    calls: list[bool] = []
    real = gc.freeze
    monkeypatch.setattr(gc, "freeze", lambda: calls.append(publisher.synced) or real())
    deployment.write_cluster(cluster("10.244.1.1"))
    deployment.start_nats()
    bus = await connect(deployment.url, retry_forever=False)
    publisher = Publisher(bus, FileSource(deployment.cluster_file, 0.05), PublisherSettings())
    try:
        async with asyncio.TaskGroup() as tasks:
            watcher = tasks.create_task(publisher.run())
            await asyncio.wait_for(publisher.ready.wait(), 10)
            assert calls == [True]  # once, with the model loaded
            deployment.write_cluster(cluster("10.244.1.1", "10.244.1.2"))
            await until(lambda: publisher.fanout.seq["n1"] > 0)
            assert calls == [True]  # not per change
            watcher.cancel()
    finally:
        gc.unfreeze()
        await bus.close()


def test_a_restarted_watcher_rebases_every_agent_without_a_snapshot(
    deployment: Deployment,
) -> None:
    """An unchanged cluster across a watcher restart: each agent presents its view's digest
    and the new watcher answers with a rebase (no operations), not a full snapshot; the
    dump backend writes nothing (its file keeps the old epoch, its mtime unchanged)."""
    start_converged(deployment)
    old = 1_000_000_000_000_000_000  # an mtime long past: any write shows
    dumps = {n: deployment.dump(n) for n in ("n1", "n2")}
    for name in dumps:
        os.utime(deployment.dump_path(name), ns=(old, old))
    deployment.group.children["watcher"].stop()
    deployment.start_watcher()
    for name in ("n1", "n2"):
        log = deployment.agents[name].log
        wait_until(f"{name} rebased", lambda log=log: "rebased from" in log(), 15)
        deployment.wait_converged(name)
        assert deployment.dump(name) == dumps[name]
        assert deployment.dump_path(name).stat().st_mtime_ns == old, "the dump was rewritten"
        assert len(FULL.findall(log())) == 1, log()  # the first sync only
