"""Casts: a zone's part of node snapshots published once for every consumer waiting for it
(docs/bus.md, section 9a), over the in-memory bus with the real publisher and clients."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from kpng.bus.casts import CastReceiver
from kpng.bus.client import NodeViewClient
from kpng.bus.codec import OpCache
from kpng.bus.fake import FakeBus, FakeServer
from kpng.model import Endpoint, EndpointSlice, Node
from kpng.source import Replace, SourceEvent, SourceStats, Synced
from kpng_watcher.publisher import Publisher, PublisherSettings
from tests.core.test_fanout import make_service
from tests.integration.harness import until
from tests.leaks import cancel_all
from tests.objects import HTTP

NODES = tuple(f"n{i}" for i in range(6))


class ClusterSource:
    """Services with endpoints in one zone, and NODES (n0 holds a Local-policy endpoint:
    its view differs from the zone's)."""

    def __init__(self, services: int = 40) -> None:
        self.stats = SourceStats()
        self.services = services

    async def events(self) -> AsyncIterator[SourceEvent]:
        objects: list[object] = [Node(n, zone="z1") for n in NODES]
        for i in range(1, self.services + 1):
            objects.append(make_service(i, i == 1, False, False))
            eps = tuple(
                Endpoint(f"10.244.{i}.{k}", HTTP, node=NODES[k % len(NODES)], zone="z1")
                for k in range(1, 4)
            )
            objects.append(EndpointSlice("default", f"s{i}-a", f"s{i}", "IPv4", eps))
        yield Replace(tuple(objects))  # type: ignore[arg-type]
        yield Synced()
        await asyncio.Event().wait()


@dataclass
class Stack:
    server: FakeServer
    publisher: Publisher
    buses: list[FakeBus] = field(default_factory=list)
    cast_messages: int = 0

    def bus(self) -> FakeBus:
        bus = self.server.connect(name=f"c{len(self.buses)}")
        self.buses.append(bus)
        return bus


@asynccontextmanager
async def stack(window: float = 0.05, keep: int = 8, casts: bool = True) -> AsyncIterator[Stack]:
    server = FakeServer()
    watcher_bus = server.connect(name="watcher")
    settings = PublisherSettings(
        coalesce=0.01, tick_interval=3600.0, tick_refresh=3600.0, cast_window=window, casts=casts
    )
    publisher = Publisher(watcher_bus, ClusterSource(), settings)
    publisher.fanout.casts.min_size = 1  # a small view as a cast too
    publisher.fanout.casts.keep = keep
    s = Stack(server, publisher)
    counted = server.lose

    def count(subject: str, data: bytes) -> bool:
        if subject.startswith("kpng.v1.cast."):
            s.cast_messages += 1
        return counted(subject, data) if counted is not None else False

    server.lose = count
    task = asyncio.create_task(publisher.run())
    await publisher.ready.wait()
    try:
        yield s
    finally:
        await cancel_all([task])
        for bus in (*s.buses, watcher_bus):
            await bus.close()


async def follow(clients: list[NodeViewClient]) -> list[asyncio.Task[None]]:
    async def run(client: NodeViewClient) -> None:
        async for _ in client:
            pass

    return [asyncio.create_task(run(c)) for c in clients]


async def test_one_round_serves_every_consumer_waiting() -> None:
    async with stack() as s:
        plain = NodeViewClient(s.bus(), "n1", casts=False)  # the reference: inline
        clients = [NodeViewClient(s.bus(), n) for n in NODES]
        tasks = await follow([plain, *clients])
        try:
            await until(lambda: all(c.consumer.synced for c in (plain, *clients)))
            for c in clients:
                assert c.stats.casts == 1, c.node
                assert c.stats.snapshot_failures == 0
            assert plain.stats.casts == 0
            assert clients[1].view == plain.view  # n1 by cast == n1 inline
            # n0's own part (its Local endpoint) came after the zone's
            assert clients[0].view.endpoints_of("default/s1") != plain.view.endpoints_of(
                "default/s1"
            )
            stats = s.publisher.fanout.stats
            assert stats.casts_offered == 1
            # six consumers asked within the window: the cast went out once
            assert stats.cast_rounds == 1
            assert s.cast_messages == len(s.publisher.fanout.cast(next(iter(ids(s)))) or [])
        finally:
            await cancel_all(tasks)


def ids(s: Stack) -> list[str]:
    return list(s.publisher.fanout.casts._casts)


async def test_a_process_of_many_views_hears_each_cast_once() -> None:
    async with stack() as s:
        bus, cache = s.bus(), OpCache()
        shared = CastReceiver(bus, cache, keep=2)
        clients = [NodeViewClient(bus, n, op_cache=cache, casts=shared) for n in NODES]
        tasks = await follow(clients)
        try:
            await until(lambda: all(c.consumer.synced for c in clients))
            assert all(c.stats.casts == 1 for c in clients)
            chunks = len(s.publisher.fanout.cast(ids(s)[0]) or [])
            # one subscription for the process: each chunk delivered once per round
            assert s.cast_messages == chunks * s.publisher.fanout.stats.cast_rounds
        finally:
            await cancel_all(tasks)


async def test_a_cast_no_longer_kept_falls_back_to_an_inline_snapshot() -> None:
    async with stack(keep=0) as s:  # every cast dropped as soon as offered
        client = NodeViewClient(s.bus(), "n2")
        tasks = await follow([client])
        try:
            await until(lambda: client.consumer.synced)
            assert s.publisher.stats.unknown_casts == 1
            assert client.stats.snapshot_failures == 1
            assert client.stats.casts == 0  # the retry asked for none
            assert "default/s3" in client.view.services
        finally:
            await cancel_all(tasks)


async def test_a_lost_cast_times_out_and_the_retry_goes_without() -> None:
    async with stack() as s:
        lost = [0]
        count = s.server.lose

        def lose_casts(subject: str, data: bytes) -> bool:
            if subject.startswith("kpng.v1.cast.") and lost[0] < 1:
                lost[0] += 1
                return True
            return count(subject, data) if count is not None else False

        s.server.lose = lose_casts
        client = NodeViewClient(s.bus(), "n3", snapshot_timeout=0.5, max_backoff=0.1)
        tasks = await follow([client])
        try:
            await until(lambda: client.consumer.synced)
            assert lost[0] == 1
            assert client.stats.snapshot_failures == 1
            assert client.stats.casts == 0
            assert len(client.view.services) == 40
        finally:
            await cancel_all(tasks)


async def test_later_consumers_get_a_later_round() -> None:
    async with stack(window=0.01) as s:
        first = NodeViewClient(s.bus(), "n4")
        tasks = await follow([first])
        try:
            await until(lambda: first.consumer.synced)
            second = NodeViewClient(s.bus(), "n5")
            tasks += await follow([second])
            await until(lambda: second.consumer.synced)
            assert second.stats.casts == 1
            assert s.publisher.fanout.stats.cast_rounds == 2
            assert s.publisher.fanout.stats.casts_offered == 1  # the same bytes
        finally:
            await cancel_all(tasks)


async def test_a_watcher_with_no_casts_sends_snapshots_whole() -> None:
    async with stack(casts=False) as s:  # kpng-watcher --no-casts
        client = NodeViewClient(s.bus(), "n1")
        tasks = await follow([client])
        try:
            await until(lambda: client.consumer.synced)
            assert client.stats.casts == 0 and client.stats.snapshot_failures == 0
            assert s.publisher.fanout.stats.casts_offered == 0 and s.cast_messages == 0
            assert len(client.view.services) == 40
        finally:
            await cancel_all(tasks)


async def test_a_one_off_fetch_leaves_nothing_behind() -> None:
    """The observer fetches a node's snapshot once per API request: each leaves no
    subscription and no listener on its connection."""
    async with stack() as s:
        bus = s.bus()
        for _ in range(3):
            chunks = await NodeViewClient(bus, "n1").fetch_snapshot()
            assert len(chunks) >= 2  # the cast's, then the node's own
        assert bus.listeners.permission_violation == []
        assert not any(sub.bus is bus for sub in s.server._subs)
        assert s.publisher.fanout.stats.cast_rounds == 3


async def test_garbage_on_a_cast_subject_is_dropped_counted_and_exported() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from kpng_agent.backends.dump import DumpBackend
    from kpng_agent.wiring import register_collectors

    async with stack() as s:
        evil = s.bus()
        sent = [0]
        count = s.server.lose

        def garbage_first(subject: str, data: bytes) -> bool:
            """The first cast chunk goes out after a message that is no chunk of it."""
            if subject.startswith("kpng.v1.cast.") and sent[0] == 0:
                sent[0] += 1

                async def resend() -> None:
                    await evil.publish(subject, b"\xc1 not msgpack")
                    await evil.publish(subject, data)

                asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(resend()))
                return True
            return count(subject, data) if count is not None else False

        s.server.lose = garbage_first
        client = NodeViewClient(s.bus(), "n3", snapshot_timeout=5)
        registry = CollectorRegistry()
        register_collectors(registry, "n3", client, DumpBackend("n3", "/nonexistent/unused"))
        tasks = await follow([client])
        try:
            await until(lambda: client.consumer.synced)
            assert client.stats.casts == 1 and len(client.view.services) == 40  # still the cast
            assert client.casts is not None and client.casts.stats.malformed == 1
            assert b"kpng_agent_bus_cast_malformed_total 1.0" in generate_latest(registry)
        finally:
            await cancel_all(tasks)
