"""The agent's I/O around its bookkeeping, through fakes: retries wait on the injected clock
with backoff, hooks never fail a sync, the status goes out after each attempt and on time."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator

import pytest

from kpng.bus.codec import Status, decode
from kpng.bus.consumer import Applied
from kpng.bus.fake import FakeBus, FakeServer
from kpng.dataplane.claims import Conflict
from kpng.model import ViewEndpoint
from kpng.runtime.clock import FakeClock
from kpng_agent.agent import Agent, AgentSettings
from tests.agent.helpers import NODE, ep, event, make_agent, udp, view
from tests.integration.harness import until
from tests.loops import running

SNAPSHOT = event(view((udp(), [ep("10.244.1.5")])))


class FlakyBackend:
    """Fails its first ``failures`` programmings, then programs."""

    name = "flaky"
    conflicts: tuple[Conflict, ...] = ()

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls: list[tuple[int, bool]] = []

    async def program(self, event: Applied[ViewEndpoint], full: bool) -> None:
        self.calls.append((event.seq, full))
        if len(self.calls) <= self.failures:
            raise OSError(f"netlink busy ({len(self.calls)})")

    async def close(self) -> None:
        pass


class Hook:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.seen: list[tuple[int, bool]] = []

    async def synced(self, event: Applied[ViewEndpoint], full: bool) -> None:
        self.seen.append((event.seq, full))
        if self.fail:
            raise RuntimeError("hook broke")


@pytest.fixture
async def buses() -> AsyncIterator[tuple[FakeBus, list[Status]]]:
    """The agent's bus, and the statuses another connection receives; afterwards, undoes
    the gc.freeze of the agent's full syncs."""
    server = FakeServer()
    bus, watching = server.connect(), server.connect()
    statuses: list[Status] = []

    def on_status(data: bytes, subject: str, reply: str) -> None:
        message = decode(data)
        assert isinstance(message, Status)
        statuses.append(message)

    await watching.subscribe(bus.subjects.node_status(NODE), on_status)
    yield bus, statuses
    await bus.close()
    await watching.close()
    gc.unfreeze()


async def test_a_failed_sync_is_retried_as_a_full_sync_with_capped_backoff(
    buses: tuple[FakeBus, list[Status]],
) -> None:
    bus, statuses = buses
    clock, backend = FakeClock(), FlakyBackend(failures=3)
    agent = make_agent(bus, backend, clock=clock, settings=AgentSettings(sync_period=0.75))
    agent.state.received(SNAPSHOT)  # as the consume loop does before programming
    assert not await agent._program(SNAPSHOT, full=False)
    assert agent.state.retrying and clock.sleeps == []
    await running(agent._retry_loop, lambda: agent.state.programmed == 1)
    assert clock.sleeps == [0.5, 0.75, 0.75]  # doubling, capped by the sync period
    assert backend.calls == [(1, False), (1, True), (1, True), (1, True)]
    assert not agent.state.retrying and agent.state.failures == 3
    await until(lambda: len(statuses) == 4)
    assert [len(s.errors) for s in statuses] == [1, 1, 1, 0]
    assert statuses[0].errors == ("OSError: netlink busy (1)",)
    assert statuses[-1].errors == () and statuses[-1].seq == 1


async def test_a_failing_hook_does_not_fail_the_sync_nor_stop_the_next_hook(
    buses: tuple[FakeBus, list[Status]],
) -> None:
    bus, statuses = buses
    broken, after = Hook(fail=True), Hook()
    agent = make_agent(bus, FlakyBackend(failures=0), hooks=(broken, after))
    assert await agent._program(SNAPSHOT, full=True)
    assert broken.seen == after.seen == [(1, True)]
    assert agent.state.errors == () and not agent.state.retrying
    await until(lambda: len(statuses) == 1)
    assert statuses[0].errors == () and statuses[0].seq == 1


async def test_the_sync_is_timed_and_stamped_by_the_injected_clock(
    buses: tuple[FakeBus, list[Status]],
) -> None:
    bus, statuses = buses
    clock = FakeClock(epoch=5000.0)

    class Slow(FlakyBackend):
        async def program(self, event: Applied[ViewEndpoint], full: bool) -> None:
            clock.advance(0.25)

    agent = make_agent(bus, Slow(0), clock=clock)
    assert await agent._program(SNAPSHOT, full=True)
    assert (agent.state.last_sync, agent.state.sync_duration) == (5000.25, 0.25)
    assert agent.health.last_updated == 5000.25
    await until(lambda: len(statuses) == 1)
    assert statuses[0].time == 5000.25


async def test_the_status_goes_out_every_status_interval_of_the_clock(
    buses: tuple[FakeBus, list[Status]],
) -> None:
    bus, statuses = buses
    clock = FakeClock()
    agent: Agent = make_agent(
        bus, FlakyBackend(0), clock=clock, settings=AgentSettings(status_interval=7.0)
    )
    await running(agent._status_loop, lambda: len(statuses) >= 3)
    assert clock.sleeps[:3] == [7.0, 7.0, 7.0]
    assert [s.time - statuses[0].time for s in statuses[:3]] == [0.0, 7.0, 14.0]
