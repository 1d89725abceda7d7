"""The virtual-time loop: sleeps cost no wall time, timers keep their order."""

from __future__ import annotations

import asyncio
import time

import pytest

from kpng.runtime.clock import LoopClock
from tests.component.vtime import Deadlock, run_virtual


def test_an_hour_of_sleep_takes_no_wall_time() -> None:
    async def main() -> tuple[float, float]:
        loop = asyncio.get_running_loop()
        before = loop.time()
        await asyncio.sleep(3600)
        return before, loop.time()

    started = time.monotonic()
    before, after = run_virtual(main())
    assert time.monotonic() - started < 1.0
    assert after - before == pytest.approx(3600)


def test_timers_fire_in_order_at_their_virtual_times() -> None:
    async def main() -> list[tuple[str, float]]:
        loop = asyncio.get_running_loop()
        fired: list[tuple[str, float]] = []

        async def after(name: str, delay: float) -> None:
            await asyncio.sleep(delay)
            fired.append((name, loop.time()))

        async with asyncio.TaskGroup() as tasks:
            for name, delay in (("c", 30.0), ("a", 0.5), ("b", 2.0)):
                tasks.create_task(after(name, delay))
        return fired

    fired = run_virtual(main())
    assert [name for name, _ in fired] == ["a", "b", "c"]
    assert [at for _, at in fired] == pytest.approx([0.5, 2.0, 30.0])


def test_wait_for_times_out_on_virtual_time() -> None:
    async def main() -> float:
        loop = asyncio.get_running_loop()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.Event().wait(), 120)
        return loop.time()

    assert run_virtual(main()) == pytest.approx(120)


def test_loop_clock_reads_virtual_time() -> None:
    async def main() -> tuple[float, float]:
        clock = LoopClock(epoch=1000.0)
        before = clock.time()
        await clock.sleep(30)
        return before, clock.time()

    before, after = run_virtual(main())
    assert after - before == pytest.approx(30)
    assert before == pytest.approx(1000.0)


def test_a_wait_nothing_can_end_is_a_deadlock_not_a_hang() -> None:
    async def main() -> None:
        await asyncio.Event().wait()

    with pytest.raises(Deadlock):
        run_virtual(main())


def test_leaked_tasks_fail_the_run() -> None:
    async def main() -> None:
        asyncio.get_running_loop().create_task(asyncio.sleep(10))

    with pytest.raises(AssertionError, match="tasks left running"):
        run_virtual(main())
