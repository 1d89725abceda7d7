"""Time as a collaborator: what the loops of kpng's services read and wait on.

Every loop takes a :class:`Clock` instead of calling ``time.time`` or ``asyncio.sleep``, so
that a test can run a whole deployment on virtual time. :data:`SYSTEM` is the real one;
:class:`LoopClock` reads the running event loop's clock, which a virtual-time loop
advances (the component tier's); :class:`FakeClock` moves only when slept on.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    def time(self) -> float:
        """Wall-clock seconds since the epoch: timestamps that go on the wire."""
        ...

    def monotonic(self) -> float:
        """Seconds for measuring durations; never jumps."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.perf_counter()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class LoopClock:
    """The running loop's time, with wall-clock seconds counted from ``epoch``."""

    def __init__(self, epoch: float = 1_700_000_000.0) -> None:
        self.epoch = epoch

    def time(self) -> float:
        return self.epoch + asyncio.get_running_loop().time()

    def monotonic(self) -> float:
        return asyncio.get_running_loop().time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


SYSTEM: Clock = SystemClock()


class FakeClock:
    """Time that moves only when slept on: each ``sleep`` is recorded, advances the clock by
    its seconds and yields to the loop once. For pure tests of loops' waits and timestamps."""

    def __init__(self, epoch: float = 1_700_000_000.0) -> None:
        self.epoch = epoch
        self.now = 0.0  # monotonic seconds
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.epoch + self.now

    def monotonic(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(seconds, 0.0)
        await asyncio.sleep(0)
