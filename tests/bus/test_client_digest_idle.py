"""A client computes its view's digest while idle after a full snapshot, in steps that let a
delta through at once: a new watcher's rebase request then finds it ready (issue 13)."""

from __future__ import annotations

import asyncio

import pytest

from kpng import digest
from kpng.bus import client as client_module
from kpng.bus.client import NodeViewClient
from kpng.bus.codec import Delta, OpCache, SnapshotChunk, Tick, encode
from kpng.bus.fake import FakeServer
from kpng.diff import SetEndpoint, SetService, View
from kpng.digest import key_hash, view_digest
from kpng.model import Service, ServiceType, ViewEndpoint
from kpng.sharedviews import apply_snapshot
from tests.integration.harness import until
from tests.objects import HTTP, http_port

SERVICES = [
    Service("default", f"s{i}", ServiceType.CLUSTER_IP, (f"10.96.0.{i}",), (http_port(),))
    for i in range(1, 60)
]
OPS = (
    *(SetService(s) for s in SERVICES),
    *(SetEndpoint(s.key, ViewEndpoint(f"10.244.{i}.1", HTTP)) for i, s in enumerate(SERVICES)),
)
LATE = SetEndpoint(SERVICES[0].key, ViewEndpoint("10.244.99.9", HTTP))


def _scratch(v: View[ViewEndpoint]) -> int:
    return view_digest(v.services, v.endpoints, v.nodes)


@pytest.mark.parametrize("idle", [0.05, None])
async def test_the_digest_is_computed_while_idle_and_a_delta_gets_through(
    idle: float | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client_module, "DIGEST_STEP", 10)  # many steps for a small view
    server = FakeServer()
    watcher, agent = server.connect(), server.connect()

    async def answer(data: bytes, subject: str, reply: str) -> None:
        await watcher.publish(reply, encode(SnapshotChunk("e1", 1, 0, 1, OPS)))

    await watcher.subscribe(watcher.subjects.node_snapshot("n1"), answer)
    client = NodeViewClient(agent, "n1", digest_idle=idle)
    seen: list[tuple[str, bool]] = []  # (kind, whether the digest was known then)
    delta = encode(Delta("e1", 2, 1.0, None, (LATE,)))

    def hash_then_deliver(*args: object) -> int:  # the delta arrives amid the first step
        if not seen[1:]:
            client._on_message(delta, "", "")
        return key_hash(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(digest, "key_hash", hash_then_deliver)

    async def follow() -> None:
        async for event in client:
            seen.append((event.kind, client.view.known_digest is not None))

    task = asyncio.create_task(follow())
    try:
        await until(lambda: len(seen) >= 1)
        if idle is None:  # not computed until asked for
            await asyncio.sleep(0.2)
            assert seen == [("snapshot", False)] and client.view.partial is None
        else:  # begun after the idle time; the delta handled before the rest of the steps
            await until(lambda: client.view.known_digest is not None)
            assert seen == [("snapshot", False), ("delta", False)]
            assert client.view.known_digest == _scratch(client.view)
            assert LATE.endpoint in client.view.endpoints[LATE.service].values()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await agent.close()
        await watcher.close()


async def test_no_digest_is_computed_while_the_process_takes_snapshots() -> None:
    """Clients sharing an OpCache (one process following many nodes): a storm's last
    snapshots are applied before any view's digest is computed (its zone views are the
    costly part), then the digest once the whole process was quiet for the idle time."""
    server = FakeServer()
    watcher, agent = server.connect(), server.connect()

    async def answer(data: bytes, subject: str, reply: str) -> None:
        await watcher.publish(reply, encode(SnapshotChunk("e1", 1, 0, 1, OPS)))

    await watcher.subscribe(watcher.subjects.node_snapshot("n1"), answer)
    cache = OpCache()
    client = NodeViewClient(agent, "n1", op_cache=cache, digest_idle=0.1)
    task = asyncio.create_task(_follow(client))
    try:
        await until(lambda: cache.prefixes.snapshots == 1)
        for _ in range(10):  # other clients of the process take snapshots: 0.3 s of storm
            await asyncio.sleep(0.03)
            apply_snapshot([OPS], cache.prefixes)
        assert client.view.known_digest is None and client.view.partial is None
        await until(lambda: client.view.known_digest is not None)
        assert client.view.known_digest == _scratch(client.view)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await agent.close()
        await watcher.close()


async def _follow(client: NodeViewClient) -> None:
    async for _ in client:
        pass


@pytest.mark.parametrize("matches", [True, False])
async def test_a_ticks_digest_waits_for_the_views_computed_in_steps(
    matches: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tick's digest at the applied seq, with the view's not yet known: not hashed at once
    inside the tick (a process following many nodes stalled 10-28 s on that in the scale
    bench), but in steps begun at once, without the idle wait; a mismatch then resyncs."""
    monkeypatch.setattr(client_module, "DIGEST_STEP", 10)
    server = FakeServer()
    watcher, agent = server.connect(), server.connect()
    requests: list[str] = []

    async def answer(data: bytes, subject: str, reply: str) -> None:
        requests.append(subject)
        await watcher.publish(reply, encode(SnapshotChunk("e1", 1, 0, 1, OPS)))

    await watcher.subscribe(watcher.subjects.node_snapshot("n1"), answer)
    client = NodeViewClient(agent, "n1", digest_idle=60.0)  # idle never comes in this test
    kinds: list[str] = []

    async def follow() -> None:
        async for event in client:
            kinds.append(event.kind)

    task = asyncio.create_task(follow())
    try:
        await until(lambda: kinds == ["snapshot"])
        assert client.view.known_digest is None
        right = digest.to_hex(_scratch(client.view))
        tick = Tick("e1", 1, 2.0, right if matches else "0123456789abcdef")
        assert client.consumer.on_tick(tick) == []  # nothing hashed inside the tick
        assert client.view.known_digest is None and client.consumer.digest_due()
        client._on_message(encode(tick), "", "")  # the same tick, through the loop
        if matches:
            await until(lambda: client.view.known_digest is not None)
            await asyncio.sleep(0.1)
            assert client.stats.resyncs == 0 and len(requests) == 1
        else:  # computed, compared, and a full snapshot taken (the view is not trusted)
            await until(lambda: len(requests) == 2)
            assert "differs" in client.stats.last_resync_reason
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await agent.close()
        await watcher.close()
