"""Per-node identity end to end: nats-server with auth callout, kpng-auth's responder, the
API simulator's TokenReview, a watcher and agents (issue 15's acceptance)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from kpng.bus.client import NodeViewClient
from kpng.bus.codec import SnapshotRequest, Status, encode
from kpng.bus.protocol import BusError
from kpng.bus.rotation import renewing
from kpng.dataplane.backend import Backend
from kpng.runtime.clock import SYSTEM
from kpng_agent.agent import AgentSettings
from kpng_agent.backends.dump import DumpBackend
from kpng_agent.wiring import build_agent, build_parts
from kpng_watcher.file_source import FileSource
from kpng_watcher.publisher import Publisher, PublisherSettings
from tests.integration.harness import node, service, slice_, until
from tests.security.callout_harness import WATCHER_SA, CalloutBus, callout_bus, storm

pytestmark = pytest.mark.integration


def write_cluster(path: Path, services: int = 1) -> None:
    objects = [node("node-a", "z1", "192.168.0.1"), node("node-b", "z1", "192.168.0.2")]
    for i in range(services):
        objects += [
            service(f"web{i}", f"10.96.0.{10 + i}"),
            slice_(f"web{i}", [(f"10.244.1.{1 + i}", "node-a"), (f"10.244.2.{1 + i}", "node-b")]),
        ]
    path.write_text(yaml.safe_dump_all(objects))


@pytest.fixture
async def bus(tmp_path: Path) -> AsyncIterator[CalloutBus]:
    async with callout_bus(tmp_path) as b:
        yield b


@pytest.fixture
async def watcher(bus: CalloutBus, tmp_path: Path) -> AsyncIterator[Publisher]:
    cluster = tmp_path / "cluster.yaml"
    write_cluster(cluster)
    conn = await bus.connect(bus.token_file(bus.sim.tokens.issue(WATCHER_SA)))
    publisher = Publisher(conn, FileSource(cluster, 0.05), PublisherSettings(0.01, 0.5))
    task = asyncio.create_task(publisher.run())
    await publisher.ready.wait()
    yield publisher
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await conn.close()


async def follow(client: NodeViewClient) -> None:
    async for _ in client:
        pass


def status(node_name: str) -> bytes:
    return encode(Status(node_name, "e", 1, "dump", True, time.time()))


async def test_an_agent_reads_and_reports_only_its_own_node(
    bus: CalloutBus, watcher: Publisher, tmp_path: Path
) -> None:
    agent = await bus.connect(bus.agent_token("node-a"), "node-a")
    heard: list[str] = []
    observer = await bus.connect(bus.token_file(bus.sim.tokens.issue(WATCHER_SA)))
    await observer.subscribe(observer.subjects.all_status, lambda d, s, r: heard.append(s))
    client = NodeViewClient(agent, "node-a")
    task = asyncio.create_task(follow(client))
    refused: list[str] = []
    agent.listeners.permission_violation.append(refused.append)
    of_b: list[str] = []
    try:
        await until(lambda: client.consumer.synced and "default/web0" in client.view.services)
        assert client.stats.snapshots == 1  # A's snapshot, on A's own inbox
        write_cluster(tmp_path / "cluster.yaml", services=2)  # a delta for both nodes
        await until(lambda: "default/web1" in client.view.services)
        assert client.stats.deltas >= 1
        s = agent.subjects
        await agent.publish(s.node_status("node-a"), status("node-a"))
        await agent.flush()
        await until(lambda: s.node_status("node-a") in heard)
        # and nothing of node B: the server refuses each attempt
        await agent.subscribe(s.node_delta("node-b"), lambda d, subj, r: of_b.append(subj))
        await agent.subscribe("_INBOX.>", lambda d, subj, r: of_b.append(subj))
        inbox = agent.new_inbox()
        await agent.publish(s.node_snapshot("node-b"), encode(SnapshotRequest()), reply=inbox)
        await agent.publish(s.node_status("node-b"), status("node-b"))
        await agent.publish(s.node_delta("node-a"), b"forged")
        await agent.flush()
        await until(lambda: len(refused) == 5)
        assert sum("Subscription" in r or "subscription" in r for r in refused) == 2
        write_cluster(tmp_path / "cluster.yaml", services=3)  # B gets a delta now
        await until(lambda: "default/web2" in client.view.services)
        await asyncio.sleep(0.3)
        assert of_b == []
        assert s.node_status("node-b") not in heard
        assert agent.permission_violations == 5
        assert bus.responder is not None
        assert bus.responder.metrics.granted.labels("node")._value.get() == 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await agent.close()
        await observer.close()


@pytest.mark.parametrize(
    ("kw", "reason"),
    [
        ({"expires_in": -5}, "expired"),
        ({"audiences": ("https://kubernetes.default.svc",)}, "audience"),
    ],
)
async def test_an_expired_or_wrong_audience_token_is_refused(
    bus: CalloutBus, kw: dict[str, object], reason: str
) -> None:
    with pytest.raises(BusError, match="authorization violation"):
        await bus.connect(bus.agent_token("node-a", **kw), "node-a")
    assert bus.responder is not None
    await until(lambda: bus.responder.metrics.denied.labels(reason)._value.get() >= 1)  # type: ignore[union-attr]
    with pytest.raises(BusError, match="authorization violation"):
        await bus.connect(bus.token_file("not.a-token.at-all"), "node-a")


async def test_the_server_ends_a_connection_when_the_token_expires(bus: CalloutBus) -> None:
    agent = await bus.connect(bus.agent_token("node-a", expires_in=2), "node-a")
    lost: list[float] = []
    agent.listeners.disconnected.append(lambda: lost.append(time.monotonic()))
    started = time.monotonic()
    try:
        await until(lambda: bool(lost), timeout=8)
        assert 1.0 < lost[0] - started < 6
    finally:
        await agent.close()


class CountingBackend(DumpBackend):
    """The dump backend counts the writes it makes (``writes``): a call that changes
    nothing writes nothing."""


def _backend(b: CountingBackend) -> Backend:
    return b


async def test_a_rotated_token_renews_the_connection_without_resync(
    bus: CalloutBus, watcher: Publisher, tmp_path: Path
) -> None:
    token = bus.agent_token("node-a")
    conn = await bus.connect(token, "node-a")
    backend = CountingBackend("node-a", tmp_path / "a.json")
    parts = build_parts(conn, "node-a", _backend(backend), AgentSettings(0.2, 5.0))
    agent = build_agent(conn, backend, parts)
    task = asyncio.create_task(agent.run())
    try:
        client = parts.client
        await until(lambda: client.consumer.synced and backend.writes >= 1)
        writes, resyncs, reviews = backend.writes, client.stats.resyncs, bus.sim.tokens.reviews
        async with renewing(str(token), conn.renew, SYSTEM, interval=0.05):
            token.write_text(bus.sim.tokens.issue("kube-system/kpng-agent", "node-a") + "\n")
            await until(lambda: conn.renewals == 1)
            await asyncio.sleep(0.5)  # status reports go on; nothing reprogrammed
            assert bus.sim.tokens.reviews == reviews + 1  # the new token was presented
            assert backend.writes == writes and client.stats.resyncs == resyncs
            assert conn.permission_violations == 0
            write_cluster(tmp_path / "cluster.yaml", services=2)  # deltas still arrive
            await until(lambda: "default/web1" in client.view.services)
            assert client.stats.resyncs == resyncs and backend.writes == writes + 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await conn.close()


async def test_kpng_auth_down_keeps_running_agents_and_new_ones_wait(
    bus: CalloutBus, watcher: Publisher, tmp_path: Path
) -> None:
    running = await bus.connect(bus.agent_token("node-a"), "node-a")
    client = NodeViewClient(running, "node-a")
    task = asyncio.create_task(follow(client))
    waiting: asyncio.Task[object] | None = None
    try:
        await until(lambda: client.consumer.synced)
        await bus.stop_responder()
        waiting = asyncio.create_task(
            bus.connect(bus.agent_token("node-b"), "node-b", retry_forever=True)
        )
        write_cluster(tmp_path / "cluster.yaml", services=2)
        await until(lambda: "default/web1" in client.view.services)  # still served
        await running.publish(running.subjects.node_status("node-a"), status("node-a"))
        await running.flush()
        with pytest.raises(BusError):  # no fresh connection now: the current one stays
            await running.renew()
        assert not waiting.done() and running.connected and running.renewals == 0
        write_cluster(tmp_path / "cluster.yaml", services=3)
        await until(lambda: "default/web2" in client.view.services)
        back = time.monotonic()
        await bus.start_responder()
        late = await asyncio.wait_for(waiting, 20)
        print(f"new agent connected {time.monotonic() - back:.2f}s after kpng-auth came back")
        assert late.connected and client.stats.resyncs == 0
        await late.close()  # type: ignore[attr-defined]
    finally:
        if waiting is not None and not waiting.done():
            waiting.cancel()
        task.cancel()
        await asyncio.gather(task, *(t for t in [waiting] if t), return_exceptions=True)
        await running.close()


async def test_a_connection_the_callout_has_not_answered_is_not_returned(bus: CalloutBus) -> None:
    """nats-server sends its first PING to a client 2 to 2.4 s after accepting it, admitted
    or not; nats-py's connect() ended on it as on a PONG and gave back a connection that was
    never made (the one-time failure of the test above, whose connect waits 2 s for a PONG)."""
    await bus.stop_responder()
    token = bus.agent_token("node-b")
    with pytest.raises(BusError, match="not admitted"):
        await bus.connect(token, "node-b", timeout=5)  # kpng's default: outwaits that PING


async def test_a_renewal_refused_while_kpng_auth_is_down_leaves_the_connection_alone(
    bus: CalloutBus,
) -> None:
    """The candidate connection of a failed renewal is closed as nats-py closes a client:
    with its callbacks, which are not news for the bus. They told the listeners of a
    disconnection and started a reopen that later replaced the sound connection without
    closing it (each message then came twice). And the candidate the server had not
    admitted was taken (nats-py's flush() succeeds on it without a PONG): the renewal
    swapped the sound connection for a dead one."""
    token = bus.agent_token("node-a")
    conn = await bus.connect(token, "node-a", retry_forever=True, timeout=5)  # as an agent's
    heard: list[str] = []
    conn.listeners.disconnected.append(lambda: heard.append("disconnected"))
    conn.listeners.reconnected.append(lambda: heard.append("reconnected"))
    try:
        await bus.stop_responder()
        with pytest.raises(BusError):
            await conn.renew()
        assert heard == [] and conn.connected
        await bus.start_responder()
        await conn.renew()  # with a reopen under way, renew() does nothing
        assert conn.renewals == 1 and conn.reopens == 0 and heard == []
    finally:
        await conn.close()


async def test_a_storm_of_agents_is_authorized_quickly(bus: CalloutBus) -> None:
    seconds, conns = await storm(bus, 50)
    try:
        assert all(c.connected for c in conns)
        assert seconds < 10
    finally:
        await asyncio.gather(*(c.close() for c in conns))
