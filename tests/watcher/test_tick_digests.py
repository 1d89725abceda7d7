"""A full tick's node digests are computed ahead of it, a few nodes at a time with the loop
free, not all under the publishing lock that every batch's deltas wait for."""

from __future__ import annotations

import asyncio

import pytest

import kpng.fanout.digests as digests
from kpng.source import Upsert
from tests.core.test_fanout import make_service
from tests.watcher.test_casts import stack


async def test_a_full_tick_finds_every_digest_computed(monkeypatch: pytest.MonkeyPatch) -> None:
    async with stack() as s:
        p = s.publisher
        p.handle(Upsert(make_service(1, True, True, False)))  # n0's correction dropped
        await p.flush()
        parts = []
        real = digests._part
        monkeypatch.setattr(digests, "_part", lambda *a: parts.append(a) or real(*a))
        others: list[int] = []

        async def other() -> None:  # another task of the loop: a batch's flush, say
            for i in range(10):
                others.append(i)
                await asyncio.sleep(0)

        task = asyncio.create_task(other())
        await p._warm_digests(step=2)
        assert parts, "the correction dropped by the change was computed again"
        assert 0 < len(others) < 10  # the loop ran other work between the steps
        computed = len(parts)
        ticks = p.fanout.ticks(0.0, 1.0, True)
        assert len(ticks) == len(p.fanout.seq) + 1  # every node, and the global view
        assert len(parts) == computed  # the tick itself hashed nothing
        await task
