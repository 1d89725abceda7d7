"""A rotated token file renews the bus connection; an unchanged one does not."""

from __future__ import annotations

import asyncio
from pathlib import Path

from kpng.bus.protocol import BusError
from kpng.bus.rotation import renew_on_rotation, renewing
from kpng.runtime.clock import FakeClock


async def test_renews_once_per_rotation_and_retries_a_failed_renewal(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("one\n")
    clock = FakeClock()
    calls: list[str] = []
    fail = [True]

    async def renew() -> None:
        calls.append(token.read_text().strip())
        if fail[0]:
            fail[0] = False
            raise BusError("kpng-auth down")

    task = asyncio.create_task(renew_on_rotation(str(token), renew, clock, interval=5))
    try:
        for _ in range(5):
            await asyncio.sleep(0)
        assert calls == []  # unchanged: nothing to do
        token.write_text("two\n")
        for _ in range(10):
            await asyncio.sleep(0)
        assert calls == ["two", "two"]  # failed once, tried again at the next look
        token.write_text("")  # kubelet's write in progress: not a token
        for _ in range(10):
            await asyncio.sleep(0)
        assert calls == ["two", "two"]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert set(clock.sleeps) == {5}


async def test_renewing_without_a_token_file_does_nothing() -> None:
    async def renew() -> None:
        raise AssertionError("no token file, no renewal")

    async with renewing("", renew, FakeClock()):
        await asyncio.sleep(0)
