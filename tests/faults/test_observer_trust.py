"""Reproduction 7 of issue 14: the observer and the watcher believe only what they can trust.

A real watcher (Publisher) and observer (Feed) on one FakeServer; forged messages come
from a third connection, as anyone with bus credentials could send them."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import pytest

from kpng.bus.codec import Status, Tick, encode
from kpng.bus.fake import FakeBus, FakeServer
from kpng.model import Node
from kpng.source import Replace, SourceEvent, SourceStats, Synced, Upsert
from kpng_observer.api import create_app
from kpng_observer.feed import Feed
from kpng_observer.state import ObserverState
from kpng_watcher.publisher import Publisher, PublisherSettings
from tests.core.test_fanout import make_service
from tests.integration.harness import until
from tests.leaks import cancel_all

NODES = ("n1", "n2")


class StaticSource:
    def __init__(self) -> None:
        self.stats = SourceStats()

    async def events(self) -> AsyncIterator[SourceEvent]:
        yield Replace(tuple(Node(n, zone="z1") for n in NODES))
        yield Synced()
        await asyncio.Event().wait()


@dataclass
class Stack:
    publisher: Publisher
    feed: Feed
    observer_bus: FakeBus
    other: FakeBus  # an agent, or anyone with credentials

    @property
    def state(self) -> ObserverState:
        return self.feed.state

    async def publish_change(self, i: int) -> None:
        self.publisher.handle(Upsert(make_service(i, False, False, False)))
        await self.publisher.flush()

    async def status(self, node: str, seq: int, subject_node: str = "") -> None:
        status = Status(node, self.publisher.epoch, seq, "dump", True, time=0.0)
        subject = self.other.subjects.node_status(subject_node or node)
        await self.other.publish(subject, encode(status))


@asynccontextmanager
async def stack(state: ObserverState | None = None) -> AsyncIterator[Stack]:
    server = FakeServer()
    watcher_bus, observer_bus = server.connect(name="watcher"), server.connect(name="observer")
    settings = PublisherSettings(coalesce=0.01, tick_interval=3600.0, tick_refresh=3600.0)
    publisher = Publisher(watcher_bus, StaticSource(), settings)
    feed = Feed(observer_bus, state or ObserverState())
    await feed.start()
    tasks = [
        asyncio.create_task(publisher.run()),
        asyncio.create_task(feed.follow_global()),
        asyncio.create_task(feed.refresh_positions()),
    ]
    try:
        await until(lambda: publisher.synced and feed.state.snapshot_received)
        yield Stack(publisher, feed, observer_bus, server.connect(name="other"))
    finally:
        await cancel_all(tasks)
        for bus in (watcher_bus, observer_bus):
            await bus.close()


def published(state: ObserverState, node: str) -> tuple[str, int]:
    progress = state.nodes[node]
    return progress.published_epoch, progress.published_seq


async def test_a_status_on_another_nodes_subject_does_not_count() -> None:
    async with stack() as s:
        await s.publish_change(1)
        await until(lambda: "n1" in s.state.nodes and "n2" in s.state.nodes)
        await s.status("n1", 1, subject_node="n2")  # n1's status on n2's subject
        await s.status("n2", 1, subject_node="n2")
        await until(lambda: s.state.nodes["n2"].status is not None)
        await asyncio.sleep(0.01)
        assert s.state.nodes["n1"].status is None
        assert s.state.untrusted_statuses == 1


async def test_a_tick_far_ahead_is_flagged_not_stored_and_refreshed() -> None:
    async with stack() as s:
        await s.publish_change(1)
        await until(lambda: "n1" in s.state.nodes and s.state.nodes["n1"].published_seq == 1)
        forged = Tick(s.publisher.epoch, 2**53 - 1, 0.0)  # the largest seq a decoder takes
        await s.other.publish(s.other.subjects.node_delta("n1"), encode(forged))
        await until(lambda: s.state.ahead == 1)
        assert published(s.state, "n1") == (s.publisher.epoch, 1)
        await until(lambda: not s.state.nodes["n1"].ahead)  # the watcher was asked
        await s.status("n1", 1)
        await until(lambda: s.state.nodes["n1"].status is not None)
        s.state.sweep(s.feed.clock.time() + 5.0)
        assert s.state.node_states["n1"] == "ok"
        assert published(s.state, "n1") == (s.publisher.epoch, 1)


async def test_a_reconnect_refreshes_published_positions_at_once() -> None:
    async with stack() as s:
        await s.publish_change(1)
        await until(lambda: "n1" in s.state.nodes and s.state.nodes["n1"].published_seq == 1)
        s.observer_bus.disconnect()
        await s.publish_change(2)  # missed: a disconnected observer receives nothing
        await s.publish_change(3)
        s.observer_bus.reconnect()
        await until(lambda: published(s.state, "n1")[1] == 3, timeout=1.0)  # no tick needed
        assert published(s.state, "n2")[1] == 3


async def test_phantom_nodes_are_bounded_and_expire() -> None:
    state = ObserverState(max_unknown_nodes=50, unknown_node_ttl=30.0)
    async with stack(state) as s:
        names = [f"phantom-{i}" for i in range(500)]
        for name in names:  # valid statuses, each on its own (random) subject
            await s.status(name, 0)
        await until(lambda: s.state.unknown_nodes_dropped == 450)
        phantoms = {n for n in s.state.nodes if n.startswith("phantom-")}
        assert len(phantoms) == 50
        assert set(s.state.nodes) - phantoms <= set(NODES)  # and the cluster's, once ticked
        s.state.sweep(s.feed.clock.time() + 31.0)
        assert not set(s.state.nodes) & set(names)


async def test_junk_on_random_status_subjects_serves_no_node_at_the_watcher() -> None:
    async with stack() as s:
        rng = random.Random(7)
        for _ in range(2000):
            token = "".join(rng.choices("abcdefghijklmnopqrstuvwxyz0123456789", k=12))
            await s.other.publish(s.other.subjects.node_status(token), b"x")
        await s.status("n9", 0, subject_node="n1")  # a valid status, on another's subject
        await until(lambda: s.publisher.stats.untrusted_statuses == 2001)
        assert sorted(s.publisher.fanout.seq) == list(NODES)
        await s.status("n9", 0)  # an agent of a node without Node object: served
        await until(lambda: "n9" in s.publisher.fanout.seq)


async def test_malformed_message_warnings_are_rate_limited(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with stack() as s:
        with caplog.at_level(logging.WARNING, logger="kpng_observer.feed"):
            for i in range(1000):
                await s.other.publish(s.other.subjects.node_status(f"m{i}"), b"\xc1")
            await until(lambda: s.state.malformed == 1000)
        lines = [r for r in caplog.records if r.name == "kpng_observer.feed"]
        assert len(lines) == 1 and "malformed status" in lines[0].getMessage()


async def test_a_gone_watcher_is_shown_and_readyz_says_so() -> None:
    now = [1000.0]
    async with stack() as s:
        await s.publisher._send(s.publisher.fanout.ticks(now[0]))  # a global tick
        await until(lambda: s.state.watcher_heard_at is not None)
        app = create_app(s.state, _no_view, lambda: True, clock=lambda: now[0])
        heard = s.state.watcher_heard_at
        assert heard is not None
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://o") as client:
            now[0] = heard + 2.0
            ready = await client.get("/readyz")
            assert ready.status_code == 200 and ready.json()["watcher"] == "ok"
            now[0] = heard + 3.5  # three ticks (1 s apart) missed
            gone = await client.get("/readyz")
            assert gone.status_code == 503
            assert gone.json()["watcher"] == "gone" and "watcher gone" in gone.json()["reason"]


async def _no_view(node: str) -> tuple[str, int, object]:
    raise LookupError(node)
