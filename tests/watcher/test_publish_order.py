"""A batch's deltas go out before any tick that carries their seqs."""

from __future__ import annotations

import asyncio

from kpng.bus.codec import Delta, Tick, decode
from kpng.bus.fake import FakeServer
from kpng.model import Endpoint, EndpointSlice, Node, Service, ServiceType
from kpng.source import Replace, Synced, Upsert
from kpng_watcher.publisher import Publisher, PublisherSettings
from tests.objects import HTTP, http_port

SERVICE = Service("default", "web", ServiceType.CLUSTER_IP, ("10.96.0.10",), (http_port(),))


def _slice(*ips: str) -> EndpointSlice:
    endpoints = tuple(Endpoint(ip, HTTP, "n1") for ip in ips)
    return EndpointSlice("default", "web-a", "web", "IPv4", endpoints)


async def test_no_tick_overtakes_the_delta_whose_seq_it_carries() -> None:
    server = FakeServer()
    bus = server.connect()
    bus.bandwidth = 50_000  # bytes/s: a delta takes ~3 ms to go out, a tick under 1 ms
    sent: list[tuple[str, object]] = []
    watching = server.connect()
    await watching.subscribe(
        "kpng.>",
        lambda data, subject, reply: sent.append(
            (subject, decode(data, "global" if ".global." in subject else "node"))
        ),
    )
    settings = PublisherSettings(tick_interval=0.001, tick_refresh=0.001)  # full rounds
    publisher = Publisher(bus, None, settings)  # type: ignore[arg-type]
    nodes = [Node(f"n{i}") for i in range(40)]
    publisher.handle(Replace((*nodes, SERVICE, _slice("10.244.0.1"))))
    publisher.handle(Synced())
    ticking = asyncio.create_task(publisher._tick_loop())
    try:
        for i in range(2, 5):
            publisher.handle(Upsert(_slice(*(f"10.244.0.{j}" for j in range(1, i)))))
            await publisher.flush()
    finally:
        ticking.cancel()
        await asyncio.gather(ticking, return_exceptions=True)
    await bus.flush()
    await asyncio.sleep(0.01)
    await bus.close()
    await watching.close()
    seen: dict[str, int] = {}
    ticks = 0
    for subject, message in sent:
        if isinstance(message, Delta):
            seen[subject] = message.seq
        elif isinstance(message, Tick) and subject.endswith(".delta") and ".node." in subject:
            ticks += 1
            assert message.seq <= seen.get(subject, 0), (subject, message.seq, seen)
    assert ticks > 0 and len(seen) == 41  # 40 nodes and the global subject
