"""Running one of a component's loops in a test, without leaking its task."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from tests.integration.harness import until


async def running(loop: Callable[[], Awaitable[None]], done: Callable[[], bool]) -> None:
    """Run ``loop`` as a task until ``done()`` holds (or ``until`` times out), then cancel it."""
    task = asyncio.create_task(loop())
    try:
        await until(done)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
