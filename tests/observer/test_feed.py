"""The observer's feed of node deltas: decoded once per zone, not once per node."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from kpng.bus.codec import Status, encode
from kpng.bus.subjects import Subjects
from kpng.fanout.cluster import ClusterState
from kpng.fanout.fanout import Fanout
from kpng.model import Endpoint, EndpointPort, EndpointSlice, Node, TransportProtocol
from kpng.runtime.clock import FakeClock
from kpng_observer.feed import Feed
from kpng_observer.state import ObserverState
from tests.core.test_fanout import make_service
from tests.integration.harness import until

PORT = (EndpointPort("http", TransportProtocol.TCP, 8080),)


def _feed() -> Feed:
    bus: Any = SimpleNamespace(subjects=Subjects("kpng"))
    return Feed(bus, ObserverState())


def test_node_deltas_that_share_their_operations_are_decoded_once() -> None:
    nodes = [Node(f"n{i}", zone=f"z{i % 3}") for i in range(300)]
    services = [make_service(i, False, False, False) for i in range(1, 4)]
    cluster = ClusterState()
    cluster.replace([*nodes, *services])
    fanout = Fanout("e1")
    fanout.load(cluster)
    eps = tuple(Endpoint(f"10.244.0.{i}", PORT, node=f"n{i}") for i in range(1, 6))
    changes = cluster.upsert(EndpointSlice("default", "s1-a", "s1", "IPv4", eps), 1.0)
    out = [o for o in fanout.publish(cluster, changes, 1.0) if o.node is not None]
    assert len(out) == 300
    feed = _feed()
    for o in out:
        feed._on_delta(o.data, feed.bus.subjects.node_delta(o.node or ""), "")
    assert feed.op_cache.array_hits >= 297  # one decode per zone, hits for the rest
    published = {n: (p.published_epoch, p.published_seq) for n, p in feed.state.nodes.items()}
    assert published == {n.name: ("e1", 1) for n in nodes}
    assert feed.state.programming.nodes["n7"].changed == {"default/s1": 1}


def test_a_malformed_node_delta_is_counted_and_changes_nothing() -> None:
    feed = _feed()
    feed._on_delta(b"\x81\xa1v\x01", feed.bus.subjects.node_delta("n1"), "")
    feed._on_delta(b"\xc1", feed.bus.subjects.node_delta("n1"), "")
    assert feed.state.malformed == 2 and feed.state.nodes == {}


async def test_the_sweep_waits_on_the_clock_and_statuses_are_stamped_by_it() -> None:
    clock = FakeClock(epoch=2000.0)
    bus: Any = SimpleNamespace(subjects=Subjects("kpng"))
    feed = Feed(bus, ObserverState(silent_after=1.0, unknown_node_ttl=1e9), clock=clock)
    status = Status("n1", "e1", 3, "dump", True, time=2000.0)
    feed._on_status(encode(status), bus.subjects.node_status("n1"), "")
    assert feed.state.nodes["n1"].status_received_at == 2000.0
    sweeping = asyncio.create_task(feed.sweep(interval=0.5))
    try:
        await until(lambda: feed.state.node_states.get("n1") == "silent")
    finally:
        sweeping.cancel()
        await asyncio.gather(sweeping, return_exceptions=True)
    assert set(clock.sleeps) == {0.5} and len(clock.sleeps) >= 2
