"""The NATS adapter: the only module of kpng that imports nats-py.

:class:`NatsBus` implements :class:`kpng.bus.protocol.Bus`; a thin :func:`connect` turns
nats-py's callbacks into listeners and its exceptions into :class:`BusError`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import nats
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.errors import SlowConsumerError

from kpng.bus.protocol import Bus, BusError, BusListeners, Handler
from kpng.bus.subjects import Subjects

log = logging.getLogger(__name__)


@dataclass(slots=True)
class NatsSubscription:
    subject: str
    _sub: Any

    @property
    def sid(self) -> int:
        sid: int = self._sub._id
        return sid

    async def unsubscribe(self) -> None:
        try:
            await self._sub.unsubscribe()
        except NatsError as exc:
            log.debug("unsubscribe %s: %s", self.subject, exc)


class NatsBus:
    """A connected NATS client with kpng's subjects (``nc`` is nats-py's own client)."""

    def __init__(self, nc: NATS, subjects: Subjects) -> None:
        self.nc = nc
        self.subjects = subjects
        self.listeners = BusListeners()

    @property
    def max_payload(self) -> int:
        size: int = self.nc.max_payload
        return size

    @property
    def connected(self) -> bool:
        return bool(self.nc.is_connected)

    def new_inbox(self) -> str:
        inbox: str = self.nc.new_inbox()
        return inbox

    async def subscribe(
        self, subject: str, handler: Handler, *, queue: str = "", pending_msgs: int = 1_000_000
    ) -> NatsSubscription:
        async def deliver(msg: Msg) -> None:
            result = handler(msg.data, msg.subject, msg.reply)
            if result is not None:
                await result

        try:
            sub = await self.nc.subscribe(
                subject,
                queue=queue,
                cb=deliver,
                pending_msgs_limit=pending_msgs,
                pending_bytes_limit=1024 * 1024 * 1024,
            )
        except NatsError as exc:
            raise BusError(f"subscribe {subject}: {exc}") from exc
        return NatsSubscription(subject, sub)

    async def publish(self, subject: str, data: bytes, reply: str = "") -> None:
        try:
            await self.nc.publish(subject, data, reply=reply)
        except NatsError as exc:
            raise BusError(f"publish {subject} ({len(data)} bytes): {exc}") from exc

    async def request(self, subject: str, data: bytes, timeout: float = 5.0) -> bytes:
        try:
            msg = await self.nc.request(subject, data, timeout=timeout)
        except TimeoutError:
            raise BusError(f"request {subject}: no reply within {timeout}s") from None
        except NatsError as exc:  # NoRespondersError among them
            raise BusError(f"request {subject}: {exc}") from exc
        data_: bytes = msg.data
        return data_

    async def flush(self, timeout: float = 5.0) -> None:
        try:
            await self.nc.flush(timeout=int(max(timeout, 1)))
        except (TimeoutError, NatsError) as exc:
            raise BusError(f"flush: {exc}") from exc

    async def close(self) -> None:
        if not self.nc.is_closed:
            try:
                await self.nc.drain()
            except (TimeoutError, NatsError) as exc:
                log.debug("drain: %s", exc)
                await self.nc.close()

    async def __aenter__(self) -> NatsBus:
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


async def connect(
    url: str,
    *,
    name: str = "kpng",
    prefix: str = "kpng",
    connect_timeout: float = 5.0,
    retry_forever: bool = True,
) -> NatsBus:
    """Connect to NATS at ``url`` (comma-separated for a cluster); reconnects forever."""
    subjects = Subjects(prefix)
    holder: list[NatsBus] = []

    async def on_error(exc: Exception) -> None:
        if isinstance(exc, SlowConsumerError) and holder:
            for listener in holder[0].listeners.slow_consumer:
                listener(exc.sid)
            return
        log.warning("nats error: %s", exc)

    async def on_reconnected() -> None:
        log.info("reconnected to nats")
        for listener in holder[0].listeners.reconnected if holder else []:
            listener()

    async def on_disconnected() -> None:
        log.info("disconnected from nats")
        for listener in holder[0].listeners.disconnected if holder else []:
            listener()

    delay = 0.5
    while True:
        try:
            nc = await _connect_once(
                url, name, on_error, on_reconnected, on_disconnected, connect_timeout, retry_forever
            )
            break
        except BusError as exc:
            if not retry_forever:
                raise
            log.warning("%s; retrying in %.1fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
    bus = NatsBus(nc, subjects)
    holder.append(bus)
    return bus


async def _connect_once(
    url: str,
    name: str,
    on_error: Callable[[Exception], Awaitable[None]],
    on_reconnected: Callable[[], Awaitable[None]],
    on_disconnected: Callable[[], Awaitable[None]],
    connect_timeout: float,
    retry_forever: bool,
) -> NATS:
    try:
        nc: NATS = await nats.connect(
            servers=[u.strip() for u in url.split(",") if u.strip()],
            name=name,
            error_cb=on_error,
            reconnected_cb=on_reconnected,
            disconnected_cb=on_disconnected,
            connect_timeout=int(max(connect_timeout, 1)),
            reconnect_time_wait=1,
            max_reconnect_attempts=-1 if retry_forever else 3,
            allow_reconnect=True,
        )
    except (TimeoutError, NatsError, OSError) as exc:
        raise BusError(f"cannot connect to NATS at {url}: {exc}") from exc
    return nc


def _conforms(bus: NatsBus) -> Bus:  # mypy checks NatsBus against the seam
    return bus
