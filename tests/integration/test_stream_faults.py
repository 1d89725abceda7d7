"""Loss and garbage on the bus (acceptance d and e): repaired or ignored, never fatal."""

from __future__ import annotations

import asyncio

import msgpack
import pytest

from kpng.bus.codec import Status, decode
from kpng.bus.nats import connect
from tests.integration.harness import (
    Deployment,
    until,
    wait_until,
    web_on_n1,
)

pytestmark = pytest.mark.integration


def test_garbage_and_wrong_schema_are_counted_and_change_nothing(
    deployment: Deployment,
) -> None:
    deployment.write_cluster(web_on_n1("10.244.1.1"))
    deployment.start_nats()
    deployment.start_watcher()
    agent = deployment.start_agent("n1")
    deployment.wait_converged("n1")
    before = deployment.dump("n1")

    async def inject() -> Status:
        bus = await connect(deployment.url, retry_forever=False)
        statuses: list[Status] = []

        def on_status(data: bytes, subject: str, reply: str) -> None:
            message = decode(data)
            assert isinstance(message, Status)
            statuses.append(message)

        await bus.subscribe(bus.subjects.node_status("n1"), on_status)
        subject = bus.subjects.node_delta("n1")
        await bus.publish(subject, b"\x00\xffgarbage")
        await bus.publish(subject, msgpack.packb({"v": 2, "kind": "delta", "seq": 99}))
        await bus.publish(subject, msgpack.packb({"v": 1, "kind": "delta", "seq": "x"}))
        await bus.publish(subject, msgpack.packb([1, 2, 3]))
        await until(lambda: bool(statuses) and statuses[-1].counts.get("malformed") == 4)
        await bus.close()
        return statuses[-1]

    status = asyncio.run(inject())
    assert status.healthy and status.counts["resyncs"] == 0
    assert agent.running
    assert deployment.dump("n1") == before
    wait_until("no change", lambda: deployment.dump("n1") == before, 1)
