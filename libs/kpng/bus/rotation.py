"""Follow a rotated token file: when its content changes, renew the bus connection.

kubelet rewrites a projected service-account token well before it expires (at 80% of its
life); the server ends a connection when the user JWT it was granted expires (kpng-auth
bounds it by the token's expiry). Renewing on rotation keeps the connection ahead of that
without dropping a subscription (:meth:`kpng.bus.nats.NatsBus.renew`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from kpng.bus.protocol import BusError
from kpng.runtime.clock import Clock

log = logging.getLogger(__name__)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        return ""


async def renew_on_rotation(
    path: str,
    renew: Callable[[], Awaitable[None]],
    clock: Clock,
    *,
    interval: float = 10.0,
    current: str | None = None,
) -> None:
    """Forever: every ``interval`` seconds, if ``path`` holds a new token, ``renew``; a
    failed renewal is tried again at the next look (the current connection stays).
    ``current``: the token connected with (default: the file's content now)."""
    file = Path(path)
    current = _read(file) if current is None else current
    while True:
        await clock.sleep(interval)
        token = _read(file)
        if not token or token == current:
            continue
        try:
            await renew()
        except BusError as exc:
            log.warning("token rotated in %s but the bus connection not renewed: %s", path, exc)
            continue
        current = token
        log.info("token rotated in %s: bus connection renewed", path)


@contextlib.asynccontextmanager
async def renewing(
    path: str, renew: Callable[[], Awaitable[None]], clock: Clock, interval: float = 10.0
) -> AsyncIterator[None]:
    """:func:`renew_on_rotation` in a task for the duration of the block (nothing without
    a ``path``)."""
    if not path:
        yield
        return
    # the token connected with, read now: a rotation while the task starts is not missed
    current = _read(Path(path))
    task = asyncio.get_running_loop().create_task(
        renew_on_rotation(path, renew, clock, interval=interval, current=current),
        name="kpng-token-rotation",
    )
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
