"""The NATS adapter: the only module of kpng that imports nats-py.

:class:`NatsBus` implements :class:`kpng.bus.protocol.Bus`; a thin :func:`connect` turns
nats-py's callbacks into listeners and its exceptions into :class:`BusError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.errors import SlowConsumerError

from kpng.bus.auth import BusAuth, split_urls
from kpng.bus.natsopts import credential_options, explain, tls_options, tls_problem
from kpng.bus.protocol import Bus, BusError, BusListeners, Handler
from kpng.bus.subjects import Subjects

log = logging.getLogger(__name__)


@dataclass(slots=True)
class NatsSubscription:
    subject: str
    _sub: Any
    # what it takes to subscribe again on a new connection (see NatsBus.reopen)
    _handler: Handler | None = None
    _queue: str = ""
    _pending: int = 1_000_000
    _bus: NatsBus | None = None

    @property
    def sid(self) -> int:
        sid: int = self._sub._id
        return sid

    async def unsubscribe(self) -> None:
        if self._bus is not None:
            self._bus.forget(self)
        try:
            await self._sub.unsubscribe()
        except NatsError as exc:
            log.debug("unsubscribe %s: %s", self.subject, exc)


Reopen = Callable[[], Awaitable[NATS]]
REOPEN_BACKOFF = (0.5, 10.0)  # first and longest wait between attempts to connect anew


class NatsBus:
    """A connected NATS client with kpng's subjects (``nc`` is nats-py's own client).

    nats-py reconnects by itself after a lost connection, but gives up for good when the
    server closes it with an error (a control line too long, a parser error, ...). With
    ``reopen``, the bus then connects anew with backoff, forever, subscribes again to
    everything its callers subscribed to, and tells the listeners (disconnected, then
    reconnected); :attr:`connected` is False meanwhile."""

    def __init__(
        self,
        nc: NATS,
        subjects: Subjects,
        reopen: Reopen | None = None,
        fresh: Reopen | None = None,
    ) -> None:
        self.nc = nc
        self.subjects = subjects
        self.listeners = BusListeners()
        self.permission_violations = 0
        self.reopens = 0  # connections made anew after nats-py closed one for good
        self.renewals = 0  # connections swapped for one with fresh credentials (renew)
        self._reopen = reopen
        self._fresh = fresh or reopen  # a new connection with freshly read credentials (renew)
        self._closing = False
        self._reopening: asyncio.Task[None] | None = None
        self._subs: list[NatsSubscription] = []

    def forget(self, sub: NatsSubscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)

    def closed_for_good(self) -> None:
        """nats-py closed its client (not by :meth:`close`): connect anew, in a task."""
        if self._closing or self._reopen is None or self._reopening is not None:
            return
        # nats-py called disconnected_cb just before: the listeners know already
        log.warning("nats connection closed for good by the client library; connecting anew")
        self._reopening = asyncio.get_running_loop().create_task(self._reopen_loop())

    async def _reopen_loop(self) -> None:
        assert self._reopen is not None
        delay, longest = REOPEN_BACKOFF
        while not self._closing:
            try:
                nc = await self._reopen()
                break
            except BusError as exc:
                log.warning("%s; retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, longest)
        else:
            return
        self.nc = nc
        for sub in list(self._subs):
            try:
                sub._sub = await self._subscribe_nc(
                    sub.subject, sub._handler, sub._queue, sub._pending
                )
            except BusError as exc:
                log.error("subscribing again: %s", exc)
        self.reopens += 1
        self._reopening = None
        log.info("connected to nats anew (%d subscriptions restored)", len(self._subs))
        for listener in self.listeners.reconnected:
            listener()

    async def renew(self) -> None:
        """Connect anew with fresh credentials (a rotated token file) and retire the
        current connection, make-before-break: the new one carries every subscription before
        the old one drains, so no message is lost and the listeners hear of nothing (no
        resync). BusError if the new connection fails; the current one then stays."""
        if self._fresh is None:
            raise BusError("this connection cannot be renewed (not made by connect)")
        if self._reopening is not None or self._closing:
            return
        nc = await self._fresh()
        moved = []
        try:
            for sub in list(self._subs):
                moved.append(
                    (
                        sub,
                        await self._subscribe_nc(
                            sub.subject, sub._handler, sub._queue, sub._pending, nc
                        ),
                    )
                )
            await nc.flush(timeout=5)
        except (BusError, TimeoutError, NatsError) as exc:
            await nc.close()
            raise BusError(f"renewing the connection: {exc}") from exc
        old, self.nc = self.nc, nc
        for sub, new in moved:
            sub._sub = new
        try:
            await old.drain()  # no longer self.nc: its close is no news to the listeners
        except (TimeoutError, NatsError) as exc:
            log.debug("drain of the renewed connection: %s", exc)
            await old.close()
        self.renewals += 1
        log.info("nats connection renewed with fresh credentials (%d subscriptions)", len(moved))

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
        sub = await self._subscribe_nc(subject, handler, queue, pending_msgs)
        subscription = NatsSubscription(subject, sub, handler, queue, pending_msgs, self)
        self._subs.append(subscription)
        return subscription

    async def _subscribe_nc(
        self,
        subject: str,
        handler: Handler | None,
        queue: str,
        pending_msgs: int,
        nc: NATS | None = None,
    ) -> Any:
        assert handler is not None
        nc = nc or self.nc

        async def deliver(msg: Msg) -> None:
            result = handler(msg.data, msg.subject, msg.reply)
            if result is not None:
                await result

        try:
            sub = await nc.subscribe(
                subject,
                queue=queue,
                cb=deliver,
                pending_msgs_limit=pending_msgs,
                pending_bytes_limit=1024 * 1024 * 1024,
            )
        except NatsError as exc:
            raise BusError(f"subscribe {subject}: {exc}") from exc
        return sub

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
        self._closing = True
        if self._reopening is not None:
            self._reopening.cancel()
            await asyncio.gather(self._reopening, return_exceptions=True)
            self._reopening = None
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
    auth: BusAuth | None = None,
    inbox_prefix: str = "",
) -> NatsBus:
    """Connect to NATS at ``url`` (comma-separated for a cluster) with ``auth``'s
    credentials and TLS; retries with backoff (logging why) until it connects, then
    reconnects forever. Without ``auth`` the connection is anonymous and in clear text.
    ``inbox_prefix``: where replies come (an agent's own, :func:`kpng.bus.identity.node_inbox`)."""
    auth = auth or BusAuth(insecure=True)
    holder: list[NatsBus] = []
    seen: list[str] = []  # errors while connecting: they say why it fails

    async def on_error(exc: Exception) -> None:
        bus = holder[0] if holder else None
        if isinstance(exc, SlowConsumerError) and bus is not None:
            for listener in bus.listeners.slow_consumer:
                listener(exc.sid)
            return
        text = str(exc)
        if "permissions violation" in text.lower() and bus is not None:
            bus.permission_violations += 1
            log.error("NATS refused this component's role: %s", text.removeprefix("nats: "))
            for violation in bus.listeners.permission_violation:
                violation(text)
            return
        if not holder:
            seen.append(explain(exc))
            return
        log.warning("nats error: %s", explain(exc))

    def lifecycle(nc: NATS) -> dict[str, Any]:
        """nats-py's callbacks for ``nc``: news for the bus only while ``nc`` is its
        connection. A candidate (of a renewal, a reopen) that fails and is closed, or the
        connection a renewal retired, says nothing: the bus's connection is not affected."""

        def bus_of_nc() -> NatsBus | None:
            return holder[0] if holder and holder[0].nc is nc else None

        async def on_reconnected() -> None:
            if bus := bus_of_nc():
                log.info("reconnected to nats")
                for listener in bus.listeners.reconnected:
                    listener()

        async def on_disconnected() -> None:
            if bus := bus_of_nc():
                log.info("disconnected from nats")
                for listener in bus.listeners.disconnected:
                    listener()

        async def on_closed() -> None:
            if bus := bus_of_nc():
                bus.closed_for_good()

        return dict(
            reconnected_cb=on_reconnected, disconnected_cb=on_disconnected, closed_cb=on_closed
        )

    options: dict[str, Any] = dict(
        name=name,
        error_cb=on_error,
        connect_timeout=int(max(connect_timeout, 1)),
        reconnect_time_wait=1,
        max_reconnect_attempts=-1 if retry_forever else 3,
        allow_reconnect=True,
    )
    if inbox_prefix:
        options["inbox_prefix"] = inbox_prefix
    delay = 0.5
    while True:
        try:
            seen.clear()
            nc = await _connect_once(url, options, auth, seen, lifecycle)
            break
        except BusError as exc:
            if not retry_forever:
                raise
            log.warning("%s; retrying in %.1fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    async def reopen() -> NATS:
        return await _connect_once(url, options, auth, [], lifecycle)

    bus = NatsBus(nc, Subjects(prefix), reopen if retry_forever else None, fresh=reopen)
    holder.append(bus)
    return bus


# nats-py's connect() returns once the first line after its CONNECT and PING is anything but
# -ERR, not only PONG. nats-server sends a client its first PING some 2 to 2.4 s after
# accepting it, authorized or not: a connection whose auth callout has not answered by then
# (kpng-auth down, or slow) comes back from connect() not connected, and nats-py never makes
# it so: what is published or subscribed stays in its buffer, and a refusal closes it without
# a callback (so without a reopen). Not admitted (yet): close it and say so; connect() retries.
NOT_ADMITTED = "the server has not admitted this connection (no PONG to CONNECT: auth undecided)"


async def _connect_once(
    url: str,
    options: dict[str, Any],
    auth: BusAuth,
    seen: list[str],
    lifecycle: Callable[[NATS], dict[str, Any]],
) -> NATS:
    servers = split_urls(url)
    nc = NATS()
    secured = {**options, **lifecycle(nc), **credential_options(auth), **tls_options(auth, servers)}
    # nats-py retries a failing TLS handshake without end and without a word: bound it
    limit = options["connect_timeout"] * 2 + 1
    try:
        await asyncio.wait_for(nc.connect(servers=servers, **secured), limit)
        if not nc.is_connected:
            raise NatsError(NOT_ADMITTED)
    except (TimeoutError, NatsError, OSError) as exc:
        if not nc.is_closed:  # cut short (e.g. an auth callout that does not answer)
            with contextlib.suppress(NatsError, OSError, TimeoutError):
                await nc.close()
        why = explain(exc) if str(exc) else "no answer in time"
        causes = [s for s in dict.fromkeys(seen) if "broken pipe" not in s.lower()]
        if not causes and "tls" in secured:
            causes = [await tls_problem(servers[0], secured, options["connect_timeout"])]
        if any(causes) and ("no servers available" in why or "no answer" in why):
            why = "; ".join(c for c in causes if c)
        raise BusError(f"cannot connect to NATS at {url}: {why}") from exc
    return nc


def _conforms(bus: NatsBus) -> Bus:  # mypy checks NatsBus against the seam
    return bus
