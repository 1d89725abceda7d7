"""The watcher's own status on the bus, every tick interval: its epoch and its source's
condition (a held-back reload, stale and invalid objects), for the observer to show."""

from __future__ import annotations

import logging
from collections.abc import Callable

from kpng.bus.protocol import Bus, BusError
from kpng.bus.watcher_status import WatcherStatus, encode_status
from kpng.runtime.clock import Clock
from kpng.source import SourceStats

log = logging.getLogger(__name__)


def watcher_status(epoch: str, stats: SourceStats, now: float) -> WatcherStatus:
    return WatcherStatus(
        epoch=epoch,
        time=now,
        reload_held=bool(getattr(stats, "reload_held", 0)),
        held_reloads=int(getattr(stats, "held_reloads", 0)),
        stale_objects=dict(getattr(stats, "stale_objects", {})),
        invalid_objects=dict(stats.invalid_objects),
        load_errors=stats.load_errors,
    )


async def announce(
    bus: Bus,
    epoch: str,
    stats: SourceStats,
    clock: Clock,
    interval: float,
    gate: Callable[[], bool] = lambda: True,
) -> None:
    """Every ``interval``, while ``gate`` says this watcher leads (a standby is silent)."""
    while True:
        if gate():
            status = watcher_status(epoch, stats, clock.time())
            try:
                await bus.publish(bus.subjects.watcher_status, encode_status(status))
            except BusError as exc:
                log.warning("watcher status not published: %s", exc)
        await clock.sleep(interval)
