"""Asyncio tasks a test leaves running: what the autouse fixture of ``tests/conftest.py`` checks.

A task still pending when a test (and its fixtures) ended outlives the test that made it: it
keeps running into the next test's time, holds sockets or subscriptions, and hides a missing
``cancel``/``await`` in the code under test. The check gives such tasks a few loop
iterations to finish (a cancelled task needs one to unwind), then names each one left by its
coroutine and where it is suspended.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Collection, Sequence
from typing import Any

SETTLE_ROUNDS = 5


async def pending_tasks(
    before: Collection[asyncio.Task[object]], rounds: int = SETTLE_ROUNDS
) -> list[asyncio.Task[object]]:
    """Tasks not in ``before`` (nor the caller) still pending after ``rounds`` iterations."""
    for _ in range(rounds):
        await asyncio.sleep(0)
    current = asyncio.current_task()
    left = [t for t in asyncio.all_tasks() if t not in before and t is not current]
    return sorted((t for t in left if not t.done()), key=describe)


def describe(task: asyncio.Task[object]) -> str:
    """``qualname at file:line`` of the task's coroutine (where it waits), and the task name."""
    coro = task.get_coro()
    name = getattr(coro, "__qualname__", repr(coro))
    frame = getattr(coro, "cr_frame", None)
    where = f" at {frame.f_code.co_filename}:{frame.f_lineno}" if frame is not None else ""
    return f"{name}{where} (task {task.get_name()})"


def report(leaked: list[asyncio.Task[object]]) -> str:
    lines = "\n".join(f"  {describe(t)}" for t in leaked)
    return f"{len(leaked)} asyncio task(s) still pending after the test:\n{lines}"


async def cancel_all(tasks: Sequence[asyncio.Task[Any]]) -> None:
    """Cancel and wait for ``tasks`` so that a leak does not spill into the next test."""
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(BaseException):
            await task
