"""The view client's waits between failed snapshot requests: on its Clock, doubling, capped."""

from __future__ import annotations

import asyncio

from kpng.bus.client import NodeViewClient
from kpng.bus.fake import FakeServer
from kpng.runtime.clock import FakeClock
from tests.integration.harness import until


async def test_snapshot_retries_back_off_on_the_clock_up_to_max_backoff() -> None:
    bus = FakeServer().connect()  # no watcher: every snapshot request gets "no responders"
    clock = FakeClock()
    client = NodeViewClient(bus, "n1", clock=clock, max_backoff=0.4)

    async def follow() -> None:
        async for _ in client:
            pass

    task = asyncio.create_task(follow())
    try:
        await until(lambda: len(clock.sleeps) >= 5)
    finally:
        task.cancel()
        async with asyncio.timeout(5):  # a cancellation lost in the client would hang here
            await asyncio.gather(task, return_exceptions=True)
    first = clock.sleeps[:5]
    bounds = [(0.1, 0.1), (0.2, 0.2), (0.4, 0.4), (0.4, 0.4), (0.4, 0.4)]
    for seconds, (low, high) in zip(first, bounds, strict=True):
        assert 0.8 * low <= seconds <= 1.2 * high, first  # jittered by +-20%
    assert client.stats.snapshot_failures >= 5
    await bus.close()
