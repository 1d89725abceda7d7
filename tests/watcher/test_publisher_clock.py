"""The Publisher's waits and timestamps come from its Clock; ``on_batch`` sees each batch."""

from __future__ import annotations

from collections.abc import Sequence

from kpng.bus.codec import Delta, Tick, decode
from kpng.bus.fake import FakeServer
from kpng.fanout.fanout import Outgoing
from kpng.model import Node
from kpng.runtime.clock import FakeClock
from kpng.source import Replace, Synced, Upsert
from kpng_watcher.publisher import Publisher, PublisherSettings
from tests.loops import running
from tests.watcher.test_publish_order import SERVICE, _slice

SETTINGS = PublisherSettings(coalesce=0.25, tick_interval=2.0, tick_refresh=10.0)


def loaded(publisher: Publisher) -> None:
    publisher.handle(Replace((Node("n1"), Node("n2"), SERVICE, _slice("10.244.0.1"))))
    publisher.handle(Synced())


async def test_a_batch_waits_the_coalescing_window_and_is_stamped_by_the_clock() -> None:
    bus = FakeServer().connect()
    clock = FakeClock(epoch=1000.0)
    batches: list[Sequence[Outgoing]] = []
    publisher = Publisher(bus, None, SETTINGS, clock, on_batch=batches.append)  # type: ignore[arg-type]
    loaded(publisher)
    clock.advance(3.0)
    publisher.handle(Upsert(_slice("10.244.0.1", "10.244.0.2")))
    await running(publisher._flush_loop, lambda: publisher.stats.batches == 1)
    assert clock.sleeps == [0.25]
    [batch] = batches
    deltas = [decode(o.data, "global" if o.node is None else "node") for o in batch]
    assert deltas and all(isinstance(d, Delta) and d.time == 1003.25 for d in deltas)
    assert {o.node for o in batch} == {None, "n1", "n2"}
    assert bus.published == len(batch)
    await bus.close()


async def test_ticks_wait_the_tick_interval_on_the_clock_and_are_not_batches() -> None:
    server = FakeServer()
    bus, watching = server.connect(), server.connect()
    ticks: list[Tick] = []

    def on_delta(data: bytes, subject: str, reply: str) -> None:
        message = decode(data, "node")
        if isinstance(message, Tick):
            ticks.append(message)

    await watching.subscribe(bus.subjects.node_delta("n1"), on_delta)
    clock = FakeClock(epoch=1000.0)
    batches: list[Sequence[Outgoing]] = []
    publisher = Publisher(bus, None, SETTINGS, clock, on_batch=batches.append)  # type: ignore[arg-type]
    loaded(publisher)
    await running(publisher._tick_loop, lambda: len(ticks) >= 1)
    assert clock.sleeps[0] == 2.0 and set(clock.sleeps) == {2.0}
    assert ticks[0].time == 1002.0  # the first round goes to every node
    assert batches == []
    await bus.close()
    await watching.close()
