"""Waiting on the benchmark's processes: the watcher loaded, every agent current."""

from __future__ import annotations

import asyncio
import time

from kpng.bus.protocol import Bus
from kpng_scale import control
from kpng_scale.settings import Settings


async def wait_watcher(bus: Bus, timeout: float, watcher: str = control.WATCHER) -> control.Json:
    deadline = time.monotonic() + timeout
    while True:
        try:
            [stats] = await control.request(bus, f"{watcher}.stats", timeout=2.0)
            if stats["synced"]:
                return stats
        except TimeoutError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError("the watcher did not load the cluster in time")
        await asyncio.sleep(0.2)


async def wait_converged(
    bus: Bus, procs: int, s: Settings, timeout: float, leader: str = control.WATCHER
) -> list[control.Json]:
    """Poll until every agent is at the watcher's (epoch, seq) for its node (or the timeout);
    ``leader``: the control subjects of the watcher that leads."""
    deadline = time.monotonic() + timeout
    statuses: list[control.Json] = []
    while time.monotonic() < deadline:
        try:
            [watcher] = await control.request(bus, f"{leader}.stats", {"seqs": True}, timeout=30)
            statuses = await control.request(
                bus, f"{control.AGENTS}.status", replies=procs, timeout=10
            )
        except TimeoutError:  # agent processes still starting, or too busy to answer
            continue
        if converged(watcher, statuses, s) == s.nodes:
            return statuses
        await asyncio.sleep(0.25)
    if not statuses:
        raise TimeoutError("the agent processes did not answer")
    return statuses


def converged(watcher: control.Json, statuses: list[control.Json], s: Settings) -> int:
    seqs: dict[str, int] = watcher["seqs"]
    count = 0
    for status in statuses:
        for node, (epoch, seq) in status["seqs"].items():
            at = epoch == watcher["epoch"] and seq >= 0 and seq == seqs.get(node)
            if at and status["services"][node] == s.services:
                count += 1
    return count
