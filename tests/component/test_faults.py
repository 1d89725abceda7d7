"""Faults on the bus, end to end: what an agent programs is right again after each.

Each test runs the whole chain on virtual time, so waiting out tick intervals is free and
the times asserted are exact.
"""

from __future__ import annotations

import asyncio
from contextlib import suppress

from kpng.bus.client import SILENCE, NodeViewClient
from kpng.bus.codec import Delta, encode
from kpng.diff import DeleteEndpoint
from kpng.model import Object
from kpng.runtime.clock import LoopClock
from tests.component.chain import WATCHER, Chain, MemorySource, parse_objects, running
from tests.component.chain import NodeSpec as Node
from tests.component.vtime import run_virtual
from tests.integration.harness import node, service, slice_

NODES = (Node("node-a", "192.168.0.10"), Node("node-b", "192.168.0.11"))
POD = "10.244.9.9"
WEB, API = "10.96.0.10", "10.96.0.11"


def cluster(web_endpoint: str) -> tuple[Object, ...]:
    """Two services; ``web`` has one endpoint (on node-a), which the tests move."""
    return parse_objects(
        [
            node("node-a", "zone-1", "192.168.0.10"),
            node("node-b", "zone-1", "192.168.0.11"),
            service("web", WEB),
            slice_("web", [(web_endpoint, "node-a")]),
            service("api", API),
            slice_("api", [("10.244.2.7", "node-b")]),
        ]
    )


def web_on(chain: Chain, name: str) -> set[str]:
    """Where ``web`` sends a pod's connection on that node, as programmed there."""
    return set(chain[name].trace(POD, "tcp", WEB, 80).endpoint_ips)


def test_a_lost_delta_is_repaired_within_a_tick_interval() -> None:
    async def main() -> None:
        source = MemorySource(cluster("10.244.1.1"))
        async with running(source, NODES) as chain:
            await chain.settle()
            subject = chain.publisher.bus.subjects.node_delta("node-a")
            chain.server.lose_next(subject)
            source.replace(cluster("10.244.1.2"))
            await chain.advance(2 * WATCHER.coalesce)  # published: node-a's copy is lost
            assert chain.server.lost == 1
            assert web_on(chain, "node-a") == {"10.244.1.1"}  # stale
            assert web_on(chain, "node-b") == {"10.244.1.2"}
            took = await chain.settle(within=WATCHER.tick_interval + 0.1)
            assert web_on(chain, "node-a") == {"10.244.1.2"}, took
            client = chain["node-a"].agent.client
            assert client.stats.resyncs == 1
            assert "tick at seq" in client.stats.last_resync_reason
            assert client.stats.catchups == 1  # only what it missed, not a full snapshot

    run_virtual(main())


def test_a_reconnected_agent_resyncs() -> None:
    async def main() -> None:
        source = MemorySource(cluster("10.244.1.1"))
        async with running(source, NODES) as chain:
            await chain.settle()
            chain["node-a"].bus.disconnect()
            source.replace(cluster("10.244.1.2"))
            await chain.advance(3 * WATCHER.tick_interval)  # deltas and ticks go unheard
            assert web_on(chain, "node-a") == {"10.244.1.1"}
            assert web_on(chain, "node-b") == {"10.244.1.2"}
            chain["node-a"].bus.reconnect()
            await chain.settle(within=0.5)  # at once, not at the next tick
            assert web_on(chain, "node-a") == {"10.244.1.2"}
            client = chain["node-a"].agent.client
            assert client.stats.last_resync_reason == "reconnected to NATS"

    run_virtual(main())


def test_a_slow_consumer_resyncs() -> None:
    async def main() -> None:
        source = MemorySource(cluster("10.244.1.1"))
        async with running(source, NODES) as chain:
            await chain.settle()
            client = chain["node-a"].agent.client
            subscription = chain["node-a"].bus._subs[client._sub.sid]  # type: ignore[union-attr]
            subscription.pending_msgs = 0  # falls behind: NATS drops what comes
            source.replace(cluster("10.244.1.2"))
            await chain.advance(2 * WATCHER.coalesce)
            assert subscription.dropped == 1
            subscription.pending_msgs = 1_000_000
            await chain.settle(within=0.5)
            assert web_on(chain, "node-a") == {"10.244.1.2"}
            assert client.stats.last_resync_reason == "slow consumer: NATS dropped messages"

    run_virtual(main())


def test_a_delayed_bus_converges_in_order() -> None:
    async def main() -> None:
        source = MemorySource(cluster("10.244.1.1"))
        async with running(source, NODES) as chain:
            await chain.settle()
            chain.server.delay = 0.4
            for ip in ("10.244.1.2", "10.244.1.3", "10.244.1.4"):
                source.replace(cluster(ip))
                await chain.advance(0.15)  # each change its own delta, all in flight
            await chain.settle(within=1.0)
            assert web_on(chain, "node-a") == {"10.244.1.4"}
            assert chain["node-a"].agent.client.stats.resyncs == 0  # in order: nothing lost

    run_virtual(main())


def test_a_restarted_watcher_changes_nothing_that_did_not_change() -> None:
    async def main() -> None:
        async with running(MemorySource(cluster("10.244.1.1")), NODES) as chain:
            await chain.settle()
            old_epoch = chain.publisher.epoch
            before = {n: a.dump() for n, a in chain.agents.items()}
            await chain.restart_watcher(MemorySource(cluster("10.244.1.1")))
            # the new epoch shows in its first ticks, one tick interval after it starts
            await chain.settle(within=WATCHER.tick_interval + 0.5)
            assert chain.publisher.epoch != old_epoch
            assert chain.publisher.fanout.stats.snapshots == 0
            assert chain.publisher.fanout.stats.rebases == len(chain.agents)
            for name, a in chain.agents.items():
                assert a.agent.state.epoch == chain.publisher.epoch
                stats = a.agent.client.stats
                assert (stats.snapshots, stats.rebases) == (1, 1)  # the same view: rebased
                assert a.backend.last_ops == 0, name  # the rebase wrote nothing
                assert a.dump() == before[name]
                assert web_on(chain, name) == {"10.244.1.1"}

    run_virtual(main())


def test_a_restarted_watcher_with_a_change_rewrites_only_that_service() -> None:
    async def main() -> None:
        async with running(MemorySource(cluster("10.244.1.1")), NODES) as chain:
            await chain.settle()
            before = {n: set(a.dump().splitlines()) for n, a in chain.agents.items()}
            await chain.restart_watcher(MemorySource(cluster("10.244.1.2")))
            await chain.settle(within=WATCHER.tick_interval + 0.5)
            for name, a in chain.agents.items():
                assert web_on(chain, name) == {"10.244.1.2"}
                assert chain[name].trace(POD, "tcp", API, 80).endpoint_ips == {"10.244.2.7"}
                changed = before[name] ^ set(a.dump().splitlines())
                assert changed, name
                assert all("10.244.1.1" in x or "10.244.1.2" in x for x in changed), changed

    run_virtual(main())


def _forge(chain: Chain, node: str, ip: str) -> None:
    """An outsider publishes on ``node``'s delta subject the next seq of the current epoch:
    web's endpoint removed (authentication off: nothing stops it)."""
    agent = chain[node].agent.state
    forged = Delta(
        agent.epoch, agent.seq + 1, chain.now, None, (DeleteEndpoint("default/web", ip),)
    )
    outsider = chain.server.connect(name="outsider")
    subject = chain.publisher.bus.subjects.node_delta(node)
    asyncio.get_running_loop().create_task(outsider.publish(subject, encode(forged)))


def test_a_forged_delta_is_undone_within_a_tick_interval() -> None:
    async def main() -> None:
        source = MemorySource(cluster("10.244.1.1"))
        async with running(source, NODES) as chain:
            await chain.settle()
            await chain.advance(WATCHER.tick_refresh / 2)  # quiet: no tick due for 15 s
            client = chain["node-a"].agent.client
            deltas = client.stats.deltas
            _forge(chain, "node-a", "10.244.1.1")
            await chain.advance(WATCHER.tick_interval)
            assert client.stats.deltas == deltas + 1  # the forged delta was applied
            assert web_on(chain, "node-a") == {"10.244.1.1"}  # and undone
            # its status told the watcher of a seq never sent: a tick at once, a full resync
            assert "behind the applied" in client.stats.last_resync_reason
            assert client.stats.snapshots == 2
            assert chain.converged("node-a")

    run_virtual(main())


def test_a_forged_delta_that_took_a_real_ones_seq_is_undone() -> None:
    async def main() -> None:
        source = MemorySource(cluster("10.244.1.1"))
        async with running(source, NODES) as chain:
            await chain.settle()
            client = chain["node-a"].agent.client
            _forge(chain, "node-a", "10.244.1.1")
            source.replace(cluster("10.244.1.2"))  # its delta has the forged one's seq
            await chain.advance(2 * WATCHER.coalesce + WATCHER.tick_interval)
            assert web_on(chain, "node-a") == {"10.244.1.2"}
            assert client.stats.snapshots == 2  # the view was not trusted: a full one
            assert chain.converged("node-a")

    run_virtual(main())


def test_a_follower_of_a_node_not_in_the_cluster_learns_a_new_epoch() -> None:
    """A new watcher does not know the subject: the follower re-asks after the silence
    a served subject never has (docs/bus.md, section 8), and is rebased, not resent."""

    async def main() -> None:
        async with running(MemorySource(cluster("10.244.1.1")), NODES) as chain:
            await chain.settle()
            bus = chain.server.connect(name="follower")
            client = NodeViewClient(bus, "node-x", clock=LoopClock())
            follow = asyncio.get_running_loop().create_task(_drain(client))
            await chain.advance(0.5)
            assert client.consumer.epoch == chain.publisher.epoch
            source = MemorySource(cluster("10.244.1.1"))
            await chain.restart_watcher(source)
            await chain.advance(SILENCE + WATCHER.tick_interval)
            assert client.consumer.epoch == chain.publisher.epoch
            assert (client.stats.snapshots, client.stats.rebases) == (1, 1)
            source.replace(cluster("10.244.1.2"))  # and it follows the new watcher
            await chain.advance(2 * WATCHER.coalesce)
            assert set(client.view.endpoints_of("default/web")) == {"10.244.1.2"}
            follow.cancel()
            with suppress(asyncio.CancelledError):
                await follow
            await bus.close()

    run_virtual(main())


async def _drain(client: NodeViewClient) -> None:
    async for _ in client:
        pass
