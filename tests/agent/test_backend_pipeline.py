"""A full sync's steps are applied in order, each while the next is planned; a failed step
stops the planning and fails the sync."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from kpng.bus.consumer import Applied
from kpng.dataplane.nft.fake import FakeNftables
from kpng.dataplane.nft.objects import Element, NftError, Table
from kpng.dataplane.nft.planner import Planner
from kpng.dataplane.nft.transaction import Ruleset, Transaction
from kpng_agent.backends import nftables
from kpng_agent.backends.nftables import NftablesBackend, Settings
from kpng_agent.backends.pipeline import apply_steps
from tests.nft.helpers import ep, svc, view

T = Table("ip", "kpng")


def tx(n: int) -> Transaction:
    t = Transaction(T)
    t.add(Element("cluster_ips", (f"10.96.0.{n}",)))
    return t


class Recording:
    """Steps whose planning waits for the previous step's run to start, and runs that wait
    for the next step's planning to start: only an overlap of the two gets through."""

    def __init__(self, count: int, fail_at: int = -1) -> None:
        self.ran: list[int] = []
        self.fail_at = fail_at
        self.planning = [threading.Event() for _ in range(count)]
        self.started = [threading.Event() for _ in range(count)]

    async def run(self, t: Transaction) -> None:
        n = len(self.ran)
        self.started[n].set()
        if n + 1 < len(self.planning):
            # the step after this one is being planned meanwhile (in a thread)
            await asyncio.to_thread(self.planning[n + 1].wait, 5)
            assert self.planning[n + 1].is_set()
        self.ran.append(n)
        if n == self.fail_at:
            raise NftError("refused")

    async def read(self, table: Table) -> Ruleset | None:
        return None

    def steps(self, planned: list[int]) -> Iterator[Transaction]:
        for n in range(len(self.planning)):
            self.planning[n].set()
            if n:  # the previous step is being applied meanwhile (unless it failed)
                assert self.started[n - 1].wait(5 if self.fail_at < 0 else 0.1) or self.fail_at >= 0
            planned.append(n)
            yield tx(n + 1)


async def test_steps_are_applied_in_order_while_the_next_is_planned() -> None:
    nft, planned = Recording(4), []
    ops = await apply_steps(nft, nft.steps(planned), thread_above=0)
    assert nft.ran == [0, 1, 2, 3] and planned == [0, 1, 2, 3]
    assert ops == 4


async def test_a_failed_step_stops_the_planning_and_is_raised() -> None:
    nft, planned = Recording(9, fail_at=1), []
    with pytest.raises(NftError, match="refused"):
        await apply_steps(nft, nft.steps(planned), thread_above=0)
    assert nft.ran == [0, 1]
    assert len(planned) < 9  # the planning stopped


async def test_a_planning_error_is_raised_after_the_steps_started() -> None:
    def steps() -> Iterator[Transaction]:
        yield tx(1)
        raise ValueError("bad view")

    nft = FakeNftables()
    with pytest.raises(ValueError, match="bad view"):
        await apply_steps(nft, steps())


async def test_the_backend_applies_a_new_table_in_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    sizes: list[int] = []
    original = Planner.plan_full_steps

    def small_steps(self: Planner, v, live, step=0):  # type: ignore[no-untyped-def]
        for t in original(self, v, live, 2):
            sizes.append(len(t))
            yield t

    monkeypatch.setattr(Planner, "plan_full_steps", small_steps)
    nft = FakeNftables()
    backend = NftablesBackend(Settings("node-a", families=(4,)), nft, list)
    v = view(*((svc(f"s{i}", ip=f"10.96.0.{i + 1}"), [ep(f"10.244.0.{i + 1}")]) for i in range(5)))
    await backend.program(Applied("snapshot", "e1", 1, v, ()), full=True)
    assert len(sizes) == 3 and nft.transactions == 3
    assert backend.last_ops == sum(sizes)
    assert "10.96.0.5" in nft.dump(T)
    assert nftables.apply_steps is apply_steps
