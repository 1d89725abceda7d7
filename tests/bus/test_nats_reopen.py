"""NatsBus survives the server closing the connection for any reason (issue 14): nats-py
gives up for good after a server error such as a control line too long; the bus then
connects anew with backoff, subscribes again, and says so through its listeners."""

from __future__ import annotations

import asyncio

import pytest

from kpng.bus.nats import connect
from tests.integration.harness import Deployment, until

pytestmark = pytest.mark.integration


async def test_a_connection_the_server_closes_for_good_is_made_anew(
    deployment: Deployment,
) -> None:
    deployment.start_nats()
    bus = await connect(deployment.url, name="victim")
    other = await connect(deployment.url, name="other")
    got: list[bytes] = []
    events: list[str] = []
    bus.listeners.disconnected.append(lambda: events.append("disconnected"))
    bus.listeners.reconnected.append(lambda: events.append("reconnected"))
    try:
        await bus.subscribe("kpng.test", lambda data, subject, reply: got.append(data))
        await bus.flush()
        first_nc = bus.nc
        # the server answers a control line over 4 KiB with -ERR and closes the connection;
        # nats-py then closes its client for good (no reconnect)
        await bus.publish("kpng." + "x" * 5000, b"boom")
        await until(lambda: first_nc.is_closed, 10)
        await until(lambda: bus.connected and bus.reopens == 1, 15)
        assert events[0] == "disconnected" and events[-1] == "reconnected"
        await other.publish("kpng.test", b"after")
        await other.flush()
        await until(lambda: got == [b"after"], 5)
        await bus.publish("kpng.test", b"self")  # publishing works on the new connection
        await until(lambda: got == [b"after", b"self"], 5)
    finally:
        await other.close()
        await bus.close()


async def test_a_bus_closed_by_its_owner_stays_closed(deployment: Deployment) -> None:
    deployment.start_nats()
    bus = await connect(deployment.url, name="owner")
    await bus.close()
    await asyncio.sleep(0.2)
    assert not bus.connected and bus.reopens == 0


async def test_the_bus_connects_anew_once_the_server_is_back(deployment: Deployment) -> None:
    deployment.start_nats()
    bus = await connect(deployment.url, name="patient")
    got: list[bytes] = []
    try:
        await bus.subscribe("kpng.test", lambda data, subject, reply: got.append(data))
        # the server closes us for good while it goes away: a new connection waits for it
        first_nc = bus.nc
        await bus.publish("kpng." + "x" * 5000, b"boom")
        await until(lambda: first_nc.is_closed, 10)
        deployment.group.stop()
        await until(lambda: not bus.connected, 10)
        await asyncio.sleep(1.5)  # a few attempts fail
        deployment.start_nats()  # the same port
        await until(lambda: bus.connected, 20)
        other = await connect(deployment.url, name="other")
        try:
            await other.publish("kpng.test", b"back")
            await other.flush()
            await until(lambda: got == [b"back"], 5)
        finally:
            await other.close()
    finally:
        await bus.close()
