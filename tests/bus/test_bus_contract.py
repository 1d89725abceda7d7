"""The bus seam's contract, run against both implementations: the in-memory FakeBus and
NatsBus over a real nats-server. Anything the component tier relies on from the fake is
checked here to be what NATS does."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from kpng.bus.fake import FakeServer
from kpng.bus.nats import connect
from kpng.bus.protocol import Bus, BusError
from tests.integration.harness import Deployment, until

Connect = Callable[[], Awaitable[Bus]]


@pytest.fixture(params=["fake", pytest.param("nats", marks=pytest.mark.integration)])
async def connector(
    request: pytest.FixtureRequest, deployment: Deployment
) -> AsyncIterator[Connect]:
    opened: list[Bus] = []
    if request.param == "fake":
        server = FakeServer(max_payload=64 * 1024)

        async def make() -> Bus:
            bus = server.connect()
            opened.append(bus)
            return bus
    else:
        deployment.start_nats(max_payload=64 * 1024)

        async def make() -> Bus:
            bus = await connect(deployment.url, retry_forever=False)
            opened.append(bus)
            return bus

    yield make
    for bus in opened:
        await bus.close()


class Inbox:
    def __init__(self) -> None:
        self.got: list[tuple[bytes, str, str]] = []

    def __call__(self, data: bytes, subject: str, reply: str) -> None:
        self.got.append((data, subject, reply))

    @property
    def subjects(self) -> list[str]:
        return [s for _, s, _ in self.got]


async def settle(*buses: Bus) -> None:
    for bus in buses:
        await bus.flush()
    await asyncio.sleep(0.05)


async def test_wildcards_match_as_nats_does(connector: Connect) -> None:
    sub_bus, pub_bus = await connector(), await connector()
    star, tail, exact = Inbox(), Inbox(), Inbox()
    await sub_bus.subscribe("kpng.v1.node.*.delta", star)
    await sub_bus.subscribe("kpng.v1.>", tail)
    await sub_bus.subscribe("kpng.v1.global.delta", exact)
    await settle(sub_bus)
    for subject in (
        "kpng.v1.node.a.delta",
        "kpng.v1.node.a.b.delta",
        "kpng.v1.global.delta",
        "kpng.v1",
        "other.v1.node.a.delta",
    ):
        await pub_bus.publish(subject, b"x")
    await settle(pub_bus)
    assert star.subjects == ["kpng.v1.node.a.delta"]
    assert tail.subjects == [
        "kpng.v1.node.a.delta",
        "kpng.v1.node.a.b.delta",
        "kpng.v1.global.delta",
    ]
    assert exact.subjects == ["kpng.v1.global.delta"]


async def test_order_is_kept_per_subscription(connector: Connect) -> None:
    sub_bus, pub_bus = await connector(), await connector()
    inbox = Inbox()
    await sub_bus.subscribe("s.order", inbox)
    await settle(sub_bus)
    for i in range(500):
        await pub_bus.publish("s.order", str(i).encode())
    await pub_bus.flush()
    await until(lambda: len(inbox.got) == 500)
    assert [int(d) for d, _, _ in inbox.got] == list(range(500))


async def test_queue_group_delivers_to_one_member(connector: Connect) -> None:
    bus_a, bus_b, pub = await connector(), await connector(), await connector()
    a, b = Inbox(), Inbox()
    await bus_a.subscribe("s.work", a, queue="workers")
    await bus_b.subscribe("s.work", b, queue="workers")
    await settle(bus_a, bus_b)
    for _ in range(40):
        await pub.publish("s.work", b"job")
    await pub.flush()
    await until(lambda: len(a.got) + len(b.got) == 40)
    await asyncio.sleep(0.05)
    assert len(a.got) + len(b.got) == 40


async def test_request_reply_and_no_responders(connector: Connect) -> None:
    server_bus, client_bus = await connector(), await connector()

    async def answer(data: bytes, subject: str, reply: str) -> None:
        await server_bus.publish(reply, data.upper())

    await server_bus.subscribe("s.echo", answer)
    await settle(server_bus)
    assert await client_bus.request("s.echo", b"ping", timeout=2) == b"PING"
    with pytest.raises(BusError, match="no responders"):
        await client_bus.request("s.nobody", b"ping", timeout=2)
    # a plain publish with a reply subject that nobody serves gets one empty reply
    inbox = Inbox()
    reply_to = client_bus.new_inbox()
    await client_bus.subscribe(reply_to, inbox)
    await settle(client_bus)
    await client_bus.publish("s.nobody", b"ping", reply=reply_to)
    await until(lambda: len(inbox.got) == 1)
    assert inbox.got[0][0] == b""


async def test_payload_limit_and_invalid_subjects_are_errors(connector: Connect) -> None:
    bus = await connector()
    assert bus.max_payload == 64 * 1024
    with pytest.raises(BusError):
        await bus.publish("s.big", b"x" * (64 * 1024 + 1))
    await bus.publish("s.fits", b"x" * (64 * 1024 - 1024))
    assert bus.connected


async def test_unsubscribe_stops_delivery(connector: Connect) -> None:
    sub_bus, pub_bus = await connector(), await connector()
    inbox = Inbox()
    sub = await sub_bus.subscribe("s.u", inbox)
    await settle(sub_bus)
    await pub_bus.publish("s.u", b"1")
    await until(lambda: len(inbox.got) == 1)
    await sub.unsubscribe()
    await settle(sub_bus)
    await pub_bus.publish("s.u", b"2")
    await settle(pub_bus)
    assert len(inbox.got) == 1


async def test_a_slow_consumer_loses_messages_and_is_told(connector: Connect) -> None:
    sub_bus, pub_bus = await connector(), await connector()
    slow: list[int] = []
    sub_bus.listeners.slow_consumer.append(slow.append)
    release = asyncio.Event()
    got: list[bytes] = []

    async def stuck(data: bytes, subject: str, reply: str) -> None:
        await release.wait()
        got.append(data)

    sub = await sub_bus.subscribe("s.slow", stuck, pending_msgs=10)
    await settle(sub_bus)
    for i in range(100):
        await pub_bus.publish("s.slow", str(i).encode())
    await pub_bus.flush()
    await until(lambda: bool(slow))
    release.set()
    await asyncio.sleep(0.2)
    assert sub.sid in slow
    assert 0 < len(got) < 100
