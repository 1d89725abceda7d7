"""The Publisher's gate: a standby (or a fenced leader) keeps its views but sends nothing."""

from __future__ import annotations

import asyncio

from kpng.bus.codec import Delta, SnapshotRequest, Tick, decode, encode
from kpng.bus.fake import FakeServer
from kpng.bus.protocol import BusError
from kpng.runtime.clock import FakeClock
from kpng.source import Upsert
from kpng_watcher.publisher import Publisher
from tests.integration.harness import until
from tests.watcher.test_publish_order import _slice
from tests.watcher.test_publisher_clock import SETTINGS, loaded, running


class Gate:
    def __init__(self, open_for: int = 0) -> None:
        self.open_for = open_for  # calls answered yes before it closes
        self.calls = 0

    def __call__(self) -> bool:
        self.calls += 1
        return self.calls <= self.open_for


async def test_a_standby_computes_its_views_but_publishes_nothing() -> None:
    server = FakeServer()
    bus = server.connect()
    publisher = Publisher(bus, None, SETTINGS, FakeClock(), gate=Gate(0))  # type: ignore[arg-type]
    loaded(publisher)
    publisher.handle(Upsert(_slice("10.244.0.1", "10.244.0.2")))
    await publisher.flush()
    assert publisher.fanout.seq == {"n1": 1, "n2": 1}  # the views moved on
    assert bus.published == 0
    assert publisher.stats.fenced_messages == 3  # n1, n2 and the global view
    await bus.close()


async def test_a_leader_whose_gate_closes_mid_batch_sends_no_more_of_it() -> None:
    bus = FakeServer().connect()
    publisher = Publisher(bus, None, SETTINGS, FakeClock(), gate=Gate(1))  # type: ignore[arg-type]
    loaded(publisher)
    publisher.handle(Upsert(_slice("10.244.0.1", "10.244.0.2")))
    await publisher.flush()
    assert bus.published == 1 and publisher.stats.fenced_messages == 2
    await bus.close()


async def test_a_standby_answers_no_snapshot_request() -> None:
    server = FakeServer()
    bus, agent = server.connect(), server.connect()
    gate = Gate(0)
    publisher = Publisher(bus, None, SETTINGS, FakeClock(), gate=gate)  # type: ignore[arg-type]
    loaded(publisher)
    subject = bus.subjects.node_snapshot("n1")
    await bus.subscribe(subject, publisher._on_snapshot_request)
    request = encode(SnapshotRequest())
    try:
        await agent.request(subject, request, timeout=0.2)
        raise AssertionError("a standby answered")
    except BusError:
        pass
    gate.open_for = 10**9
    assert await agent.request(subject, request, timeout=2.0)
    await bus.close()
    await agent.close()


async def test_take_over_ticks_every_node_at_once_with_the_views_kept() -> None:
    server = FakeServer()
    bus, agent = server.connect(), server.connect()
    got: dict[str, Tick | Delta] = {}
    for node in ("n1", "n2"):

        def on(data: bytes, subject: str, reply: str, node: str = node) -> None:
            message = decode(data, "node")
            assert isinstance(message, Tick | Delta)
            got[node] = message

        await agent.subscribe(bus.subjects.node_delta(node), on)
    gate = Gate(0)
    publisher = Publisher(bus, None, SETTINGS, FakeClock(), gate=gate)  # type: ignore[arg-type]
    loaded(publisher)
    publisher.handle(Upsert(_slice("10.244.0.1", "10.244.0.2")))
    await publisher.flush()
    gate.open_for = 10**9
    publisher.take_over()
    await running(publisher._takeover_loop, lambda: len(got) == 2)
    assert all(isinstance(m, Tick) and m.seq == 1 for m in got.values())
    assert {m.epoch for m in got.values()} == {publisher.epoch}
    await asyncio.sleep(0)
    await bus.close()
    await agent.close()


async def test_take_over_before_the_initial_load_ticks_once_loaded() -> None:
    server = FakeServer()
    bus, agent = server.connect(), server.connect()
    ticks: list[Tick] = []
    await agent.subscribe(
        bus.subjects.node_delta("n1"),
        lambda d, s, r: ticks.append(decode(d, "node")),  # type: ignore[arg-type]
    )
    publisher = Publisher(bus, None, SETTINGS, FakeClock())  # type: ignore[arg-type]
    publisher.take_over()
    task = asyncio.create_task(publisher._takeover_loop())
    try:
        for _ in range(5):
            await asyncio.sleep(0)
        assert ticks == []
        loaded(publisher)
        await until(lambda: len(ticks) == 1)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    await bus.close()
    await agent.close()


async def test_a_snapshot_reply_stops_when_the_gate_closes_mid_reply() -> None:
    server = FakeServer()
    bus, agent = server.connect(), server.connect()
    publisher = Publisher(bus, None, SETTINGS, FakeClock(), gate=Gate(2))  # type: ignore[arg-type]
    loaded(publisher)
    got: list[bytes] = []
    inbox = agent.new_inbox()
    await agent.subscribe(inbox, lambda d, s, r: got.append(d))
    await publisher._reply(inbox, [b"one", b"two", b"three"])  # closes after two chunks
    publisher.gate = Gate(1)
    await publisher._reply(inbox, [b"four", b"five"])
    await until(lambda: len(got) == 3)
    assert got == [b"one", b"two", b"four"]
    assert publisher.stats.fenced_messages == 2
    await bus.close()
    await agent.close()


async def _ticks_to(agent: object, bus: object, node: str) -> list[Tick]:
    ticks: list[Tick] = []

    def on(data: bytes, subject: str, reply: str) -> None:
        message = decode(data, "node")
        assert isinstance(message, Tick)
        ticks.append(message)

    await agent.subscribe(bus.subjects.node_delta(node), on)  # type: ignore[attr-defined]
    return ticks


async def test_a_watcher_alone_ticks_every_node_as_its_initial_load_completes() -> None:
    # a restarted single watcher: its agents learn the new epoch at once (then rebase by
    # digest), not at the first tick interval (up to a second later)
    server = FakeServer()
    bus, agent = server.connect(), server.connect()
    ticks = await _ticks_to(agent, bus, "n1")
    clock = FakeClock()
    publisher = Publisher(bus, None, SETTINGS, clock)  # type: ignore[arg-type]
    task = asyncio.create_task(publisher._takeover_loop())
    try:
        loaded(publisher)
        await until(lambda: len(ticks) == 1)
        assert ticks[0].epoch == publisher.epoch and clock.sleeps == []
        for _ in range(5):
            await asyncio.sleep(0)
        assert len(ticks) == 1  # once
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    await bus.close()
    await agent.close()


async def test_a_standby_ticks_nobody_when_its_initial_load_completes() -> None:
    server = FakeServer()
    bus, agent = server.connect(), server.connect()
    ticks = await _ticks_to(agent, bus, "n1")
    gate = Gate(0)
    publisher = Publisher(bus, None, SETTINGS, FakeClock(), gate=gate)  # type: ignore[arg-type]
    task = asyncio.create_task(publisher._takeover_loop())
    try:
        loaded(publisher)
        for _ in range(10):
            await asyncio.sleep(0)
        assert ticks == [] and publisher.stats.fenced_messages == 0
        gate.open_for = 10**9
        publisher.take_over()
        await until(lambda: len(ticks) == 1)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    await bus.close()
    await agent.close()
