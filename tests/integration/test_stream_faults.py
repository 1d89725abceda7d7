"""Loss and garbage on the bus (acceptance d and e): repaired or ignored, never fatal."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgpack
import pytest

from kpng.bus.client import NodeViewClient
from kpng.bus.connection import Bus, connect
from kpng.codec import Status, decode
from kpng_watcher.file_source import FileSource
from kpng_watcher.publisher import Publisher, PublisherSettings
from tests.integration.harness import Deployment, node, service, slice_, until, wait_until

pytestmark = pytest.mark.integration


def objects(ip: str) -> list[dict[str, Any]]:
    return [
        node("n1", "z1", "192.168.0.1"),
        service("web", "10.96.0.10"),
        slice_("web", [(ip, "n1")]),
    ]


class DroppingBus(Bus):
    """Loses the next delta published to one subject, as a network would."""

    drop_subject = ""

    async def publish(self, subject: str, data: bytes, reply: str = "") -> None:
        if subject == self.drop_subject:
            self.drop_subject = ""
            return
        await super().publish(subject, data, reply)


async def test_lost_delta_is_repaired_within_the_tick_interval(deployment: Deployment) -> None:
    deployment.write_cluster(objects("10.244.1.1"))
    deployment.start_nats()
    watcher_bus = await connect(deployment.url, retry_forever=False)
    bus = DroppingBus(watcher_bus.nc, watcher_bus.subjects)
    client_bus = await connect(deployment.url, retry_forever=False)
    tick = 0.5
    publisher = Publisher(
        bus, FileSource(deployment.cluster_file, 0.05), PublisherSettings(0.01, tick)
    )
    client = NodeViewClient(client_bus, "n1")

    async def follow() -> None:
        async for _ in client:
            pass

    async with asyncio.TaskGroup() as tasks:
        watcher = tasks.create_task(publisher.run())
        follower = tasks.create_task(follow())
        await until(lambda: "10.244.1.1" in client.view.endpoints_of("default/web"))
        bus.drop_subject = bus.subjects.node_delta("n1")
        deployment.write_cluster(objects("10.244.1.2"))
        await until(lambda: bus.drop_subject == "")  # the delta was lost
        lost_at = time.monotonic()
        await until(lambda: "10.244.1.2" in client.view.endpoints_of("default/web"), 5)
        repaired_after = time.monotonic() - lost_at
        assert repaired_after < tick + 1.0, repaired_after
        assert client.stats.resyncs == 1
        assert "tick at seq" in client.stats.last_resync_reason
        watcher.cancel()
        follower.cancel()
    await client_bus.close()
    await watcher_bus.close()


def test_garbage_and_wrong_schema_are_counted_and_change_nothing(
    deployment: Deployment,
) -> None:
    deployment.write_cluster(objects("10.244.1.1"))
    deployment.start_nats()
    deployment.start_watcher()
    agent = deployment.start_agent("n1")
    deployment.wait_converged("n1")
    before = deployment.dump("n1")

    async def inject() -> Status:
        bus = await connect(deployment.url, retry_forever=False)
        statuses: list[Status] = []

        def on_status(data: bytes, subject: str, reply: str) -> None:
            message = decode(data)
            assert isinstance(message, Status)
            statuses.append(message)

        await bus.subscribe(bus.subjects.node_status("n1"), on_status)
        subject = bus.subjects.node_delta("n1")
        await bus.publish(subject, b"\x00\xffgarbage")
        await bus.publish(subject, msgpack.packb({"v": 2, "kind": "delta", "seq": 99}))
        await bus.publish(subject, msgpack.packb({"v": 1, "kind": "delta", "seq": "x"}))
        await bus.publish(subject, msgpack.packb([1, 2, 3]))
        await until(lambda: bool(statuses) and statuses[-1].counts.get("malformed") == 4)
        await bus.close()
        return statuses[-1]

    status = asyncio.run(inject())
    assert status.healthy and status.counts["resyncs"] == 0
    assert agent.running
    assert deployment.dump("n1") == before
    wait_until("no change", lambda: deployment.dump("n1") == before, 1)
