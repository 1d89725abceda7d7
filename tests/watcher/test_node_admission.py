"""Which nodes the watcher serves when asked: valid names only, unknown ones bounded."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from kpng.bus.codec import ErrorReply, SnapshotChunk, Status, decode, encode
from kpng.bus.fake import FakeBus, FakeServer
from kpng.model import Node
from kpng.runtime.clock import FakeClock
from kpng.source import Replace, Synced
from kpng_watcher.publisher import Publisher, PublisherSettings
from tests.integration.harness import until
from tests.watcher.test_publish_order import SERVICE

SETTINGS = PublisherSettings(coalesce=0.01, tick_interval=60.0, max_unknown_nodes=3)


@pytest.fixture
async def watcher() -> AsyncIterator[tuple[Publisher, FakeBus]]:
    server = FakeServer()
    bus, asking = server.connect(), server.connect()
    publisher = Publisher(bus, None, SETTINGS, FakeClock(epoch=1000.0))  # type: ignore[arg-type]
    subjects = bus.subjects
    await bus.subscribe(subjects.all_snapshots, publisher._on_snapshot_request)
    await bus.subscribe(subjects.all_status, publisher._on_status)
    publisher.handle(Replace((Node("n1"), SERVICE)))
    publisher.handle(Synced())
    yield publisher, asking
    await asking.close()
    await bus.close()


async def ask(bus: FakeBus, token: str) -> object:
    return decode(await bus.request(f"kpng.v1.node.{token}.snapshot", b"", 2.0))


async def test_a_token_that_is_no_node_name_is_refused_and_counted(
    watcher: tuple[Publisher, FakeBus],
) -> None:
    publisher, bus = watcher
    for token in ["Node1", "a-", "x" * 300, "-"]:
        assert isinstance(await ask(bus, token), ErrorReply)
    assert publisher.stats.invalid_nodes == 4
    assert set(publisher.fanout.seq) == {"n1"}
    status = Status("UPPER", "", -1, "dump", True, 0.0)
    await bus.publish("kpng.v1.node.UPPER.status", encode(status))
    await until(lambda: publisher.stats.invalid_nodes == 5)
    assert set(publisher.fanout.seq) == {"n1"}


async def test_unknown_nodes_are_a_bounded_set_known_ones_always_served(
    watcher: tuple[Publisher, FakeBus],
) -> None:
    publisher, bus = watcher
    for i in range(3):
        assert isinstance(await ask(bus, f"unknown-{i}"), SnapshotChunk)
    assert isinstance(await ask(bus, "unknown-3"), ErrorReply)
    await bus.publish(
        "kpng.v1.node.unknown-4.status", encode(Status("unknown-4", "", -1, "", True, 0.0))
    )
    await until(lambda: publisher.stats.refused_nodes == 2)
    assert isinstance(await ask(bus, "n1"), SnapshotChunk)  # a Node object: always served
    assert isinstance(await ask(bus, "unknown-0"), SnapshotChunk)  # served already
    assert len(publisher.fanout.seq) == 4
    assert publisher.fanout.nodes.unknown == {"unknown-0", "unknown-1", "unknown-2"}


async def test_unknown_nodes_expire_and_make_room(watcher: tuple[Publisher, FakeBus]) -> None:
    publisher, bus = watcher
    for i in range(3):
        await ask(bus, f"unknown-{i}")
    retired = publisher.fanout.retire_idle(2000.0, 600.0, publisher.state.nodes)
    assert sorted(retired) == ["unknown-0", "unknown-1", "unknown-2"]
    assert isinstance(await ask(bus, "unknown-3"), SnapshotChunk)
    assert publisher.fanout.nodes.unknown == {"unknown-3"}


async def test_a_node_object_makes_an_unknown_node_known(
    watcher: tuple[Publisher, FakeBus],
) -> None:
    publisher, bus = watcher
    await ask(bus, "n2")
    assert publisher.fanout.nodes.unknown == {"n2"}
    publisher.handle(Replace((Node("n1"), Node("n2"), SERVICE)))
    await publisher.flush()
    assert publisher.fanout.nodes.unknown == set()
    publisher.handle(Replace((Node("n1"), SERVICE)))
    await publisher.flush()
    assert publisher.fanout.nodes.unknown == {"n2"}
    await asyncio.sleep(0)


async def test_a_flood_of_invalid_subjects_logs_a_few_lines(
    watcher: tuple[Publisher, FakeBus], caplog: pytest.LogCaptureFixture
) -> None:
    publisher, bus = watcher
    status = encode(Status("n1", "", -1, "", True, 0.0))
    for i in range(1000):
        await bus.publish(f"kpng.v1.node.BAD{i}.status", status)
    await until(lambda: publisher.stats.invalid_nodes == 1000)
    lines = [r for r in caplog.records if "no valid node name" in r.getMessage()]
    assert len(lines) == 10  # 1, 2, 4, ... 512
    assert "(512 so far)" in lines[-1].getMessage()


async def test_a_message_for_a_name_that_slipped_through_is_counted_not_fatal(
    watcher: tuple[Publisher, FakeBus],
) -> None:
    from kpng.fanout.fanout import Outgoing

    publisher, _ = watcher
    await publisher._send([Outgoing("*", b"x"), Outgoing("n1", b"y")])
    assert publisher.stats.publish_errors == 1
