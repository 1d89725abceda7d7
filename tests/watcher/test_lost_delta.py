"""A lost delta (acceptance d) is noticed by the next tick and repaired by a resync."""

from __future__ import annotations

import asyncio
import time

from kpng.bus.client import NodeViewClient
from kpng.bus.fake import FakeServer
from kpng_watcher.file_source import FileSource
from kpng_watcher.publisher import Publisher, PublisherSettings
from tests.integration.harness import Deployment, until, web_on_n1


async def test_lost_delta_is_repaired_within_the_tick_interval(deployment: Deployment) -> None:
    deployment.write_cluster(web_on_n1("10.244.1.1"))
    server = FakeServer()
    bus, client_bus = server.connect(), server.connect()
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
        server.lose_next(bus.subjects.node_delta("n1"))
        deployment.write_cluster(web_on_n1("10.244.1.2"))
        await until(lambda: server.lost == 1)  # the delta was lost
        lost_at = time.monotonic()
        await until(lambda: "10.244.1.2" in client.view.endpoints_of("default/web"), 5)
        repaired_after = time.monotonic() - lost_at
        assert repaired_after < tick + 1.0, repaired_after
        assert client.stats.resyncs == 1
        assert "tick at seq" in client.stats.last_resync_reason
        watcher.cancel()
        follower.cancel()
    await client_bus.close()
    await bus.close()
