"""The Publisher checks a node's digests only for a consumer that holds every mark a view
can carry (port marks and shortcut marks) and its Node's pod CIDRs: one that ignores some
could never match."""

from __future__ import annotations

from types import SimpleNamespace

from kpng.bus.codec import SnapshotRequest, encode
from kpng.bus.fake import FakeServer
from kpng.bus.fetch import SnapshotFetcher
from kpng.runtime.clock import FakeClock
from kpng_watcher.publisher import Publisher
from tests.watcher.test_publisher_clock import SETTINGS, loaded


async def test_digests_only_for_a_consumer_that_holds_every_mark() -> None:
    server = FakeServer()
    bus, agent = server.connect(), server.connect()
    publisher = Publisher(bus, None, SETTINGS, FakeClock())  # type: ignore[arg-type]
    loaded(publisher)
    subject = bus.subjects.node_snapshot("n1")
    await bus.subscribe(subject, publisher._on_snapshot_request)
    try:
        for accept, digests in [
            (("eps", "marks", "shortcut", "nodefields"), True),
            (("eps", "marks", "shortcut"), False),  # an agent of before pod CIDRs and deleting
            (("eps", "marks"), False),  # of before shortcut marks
            (("eps",), False),  # of before port marks
            (("eps", "shortcut", "nodefields", "marks", "zstd"), True),
        ]:
            request = encode(SnapshotRequest(accept=accept))
            assert await agent.request(subject, request, timeout=2.0)
            assert ("n1" not in publisher.fanout.without_marks) is digests, accept
            assert bool(publisher.fanout.tick_digest("n1")) is digests, accept
    finally:
        await bus.close()
        await agent.close()


async def test_a_node_snapshot_fetcher_asks_for_every_mark() -> None:
    """What an agent of this version asks for turns its node's digests on."""
    server = FakeServer()
    bus, agent = server.connect(), server.connect()
    publisher = Publisher(bus, None, SETTINGS, FakeClock())  # type: ignore[arg-type]
    loaded(publisher)
    publisher.fanout.holds_marks("n1", False)
    subject = bus.subjects.node_snapshot("n1")
    await bus.subscribe(subject, publisher._on_snapshot_request)
    counters = SimpleNamespace(malformed=0, casts=0)
    try:
        fetcher = SnapshotFetcher(agent, subject, "node", counters, casts=False)
        assert await fetcher.fetch()
        assert "n1" not in publisher.fanout.without_marks
    finally:
        await bus.close()
        await agent.close()
