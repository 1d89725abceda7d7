"""FakeBus's injected faults: loss, delay without reordering, disconnect and reconnect."""

from __future__ import annotations

import asyncio

from kpng.bus.fake import FakeServer, subject_matches
from tests.integration.harness import until


def collect() -> tuple[list[bytes], object]:
    got: list[bytes] = []
    return got, lambda data, subject, reply: got.append(data)


async def test_lose_next_loses_only_that_subject_and_count() -> None:
    server = FakeServer()
    bus = server.connect()
    got, handler = collect()
    await bus.subscribe("a.>", handler)  # type: ignore[arg-type]
    server.lose_next("a.x", 2)
    for subject in ("a.x", "a.y", "a.x", "a.x"):
        await bus.publish(subject, subject.encode())
    await until(lambda: len(got) == 2)
    assert got == [b"a.y", b"a.x"]
    assert server.lost == 2
    await bus.close()


async def test_delay_keeps_order() -> None:
    server = FakeServer()
    bus = server.connect()
    got, handler = collect()
    await bus.subscribe("d", handler)  # type: ignore[arg-type]
    server.delay = 0.05
    await bus.publish("d", b"1")
    server.delay = 0.0
    await bus.publish("d", b"2")  # due earlier than "1", delivered after it
    await asyncio.sleep(0.01)
    assert got == []
    await until(lambda: len(got) == 2)
    assert got == [b"1", b"2"]
    await bus.close()


async def test_disconnect_loses_incoming_and_buffers_outgoing() -> None:
    server = FakeServer()
    a, b = server.connect(), server.connect()
    events: list[str] = []
    a.listeners.disconnected.append(lambda: events.append("down"))
    a.listeners.reconnected.append(lambda: events.append("up"))
    got_a, handler_a = collect()
    got_b, handler_b = collect()
    await a.subscribe("to.a", handler_a)  # type: ignore[arg-type]
    await b.subscribe("to.b", handler_b)  # type: ignore[arg-type]
    a.disconnect()
    assert not a.connected
    await b.publish("to.a", b"lost")
    await a.publish("to.b", b"buffered")
    await asyncio.sleep(0.01)
    assert got_a == [] and got_b == []
    a.reconnect()
    await until(lambda: got_b == [b"buffered"])
    await b.publish("to.a", b"after")
    await until(lambda: got_a == [b"after"])
    assert events == ["down", "up"]
    await a.close()
    await b.close()


async def test_close_ends_every_delivery_task() -> None:
    server = FakeServer()
    bus = server.connect()
    before = len(asyncio.all_tasks())
    for i in range(5):
        await bus.subscribe(f"s.{i}", lambda d, s, r: None)
    assert len(asyncio.all_tasks()) == before + 5
    await bus.close()
    assert len(asyncio.all_tasks()) == before


def test_subject_matching() -> None:
    assert subject_matches("a.*.c", "a.b.c")
    assert not subject_matches("a.*.c", "a.b.b.c")
    assert subject_matches("a.>", "a.b.c")
    assert not subject_matches("a.>", "a")
    assert not subject_matches("a.b", "a.b.c")
