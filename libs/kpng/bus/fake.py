"""An in-memory bus with NATS's semantics and faults on demand: the component tier's bus.

A :class:`FakeServer` routes messages between the :class:`FakeBus` connections made from
it, as nats-server would (see :mod:`kpng.bus.protocol`): wildcards, queue groups, replies
to inboxes, "no responders", the max payload, per-subscription order. Faults:

- ``server.lose``: a predicate over (subject, data); a message it is true for is lost;
- ``server.delay``: seconds every delivery waits (order is kept, nothing is reordered);
- ``bus.bandwidth``: bytes per second; a publish of that connection awaits its size over
  it, as on a connection busy with large messages (small ones then overtake large ones
  published by another task);
- ``bus.disconnect()`` / ``bus.reconnect()``: while disconnected a connection receives
  nothing and its publishes wait (as nats-py buffers them) until it reconnects;
- ``pending_msgs`` of a subscription: messages beyond it are dropped and the connection's
  ``slow_consumer`` listeners told, as NATS does to a consumer that falls behind.

Delivery runs in one task per subscription, like nats-py's; ``close()`` ends them all.
Time is the event loop's, so it runs on a virtual-time loop too.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType

from kpng.bus.protocol import Bus, BusError, BusListeners, Handler
from kpng.bus.subjects import Subjects

log = logging.getLogger(__name__)
DEFAULT_MAX_PAYLOAD = 1024 * 1024
MAX_CONTROL_LINE = 4096  # nats-server's default: a longer subject closes the connection


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS matching: ``*`` is one token, ``>`` one or more trailing tokens."""
    want, got = pattern.split("."), subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(got) > i
        if i >= len(got) or (token != "*" and token != got[i]):
            return False
    return len(want) == len(got)


def check_subject(subject: str, *, wildcards: bool) -> None:
    """Raise BusError for a subject the server would refuse."""
    if not subject or len(subject) > MAX_CONTROL_LINE:
        raise BusError(f"invalid subject {subject[:64]!r}: empty or too long")
    tokens = subject.split(".")
    for i, token in enumerate(tokens):
        if not token or any(c in token for c in " \t\r\n"):
            raise BusError(f"invalid subject {subject[:64]!r}")
        wild = token in ("*", ">") or (len(token) > 1 and ("*" in token or ">" in token))
        if wild and (not wildcards or token not in ("*", ">")):
            raise BusError(f"invalid subject {subject[:64]!r}: wildcard")
        if token == ">" and i != len(tokens) - 1:
            raise BusError(f"invalid subject {subject[:64]!r}: '>' must be last")


@dataclass(slots=True)
class FakeSubscription:
    subject: str
    sid: int
    queue: str
    handler: Handler
    pending_msgs: int
    bus: FakeBus
    _pending: deque[tuple[float, bytes, str, str]] = field(default_factory=deque)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None
    delivered: int = 0
    dropped: int = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._deliver())

    def offer(self, due: float, data: bytes, subject: str, reply: str) -> None:
        if len(self._pending) >= self.pending_msgs:
            self.dropped += 1
            for listener in list(self.bus.listeners.slow_consumer):
                listener(self.sid)
            return
        self._pending.append((due, data, subject, reply))
        self._wake.set()

    async def _deliver(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._pending:
                self._wake.clear()
                await self._wake.wait()
            due, data, subject, reply = self._pending.popleft()
            if due > loop.time():
                await asyncio.sleep(due - loop.time())
            self.delivered += 1
            try:
                result = self.handler(data, subject, reply)
                if result is not None:
                    await result
            except Exception:  # as nats-py: a failing handler does not end the subscription
                log.exception("handler of %s failed", self.subject)

    async def unsubscribe(self) -> None:
        self.bus.server._remove(self)
        self.bus._subs.pop(self.sid, None)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None


class FakeServer:
    """The routing between fake connections; faults are set here or on a connection."""

    def __init__(self, max_payload: int = DEFAULT_MAX_PAYLOAD) -> None:
        self.max_payload = max_payload
        self.lose: Callable[[str, bytes], bool] | None = None
        self.delay = 0.0
        self.messages = 0  # routed, lost ones included
        self.lost = 0
        self._subs: list[FakeSubscription] = []
        self._sids = itertools.count(1)
        self._inboxes = itertools.count(1)
        self._rr: dict[tuple[str, str], int] = {}

    def connect(self, prefix: str = "kpng", name: str = "") -> FakeBus:
        return FakeBus(self, Subjects(prefix), name)

    def lose_next(self, subject: str, count: int = 1) -> None:
        """Lose the next ``count`` messages published to exactly ``subject``."""
        left = [count]

        def lose(s: str, data: bytes) -> bool:
            if s == subject and left[0] > 0:
                left[0] -= 1
                return True
            return False

        self.lose = lose

    def _remove(self, sub: FakeSubscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)

    def _route(self, subject: str, data: bytes, reply: str) -> None:
        self.messages += 1
        if self.lose is not None and self.lose(subject, data):
            self.lost += 1
            return
        loop = asyncio.get_running_loop()
        due = loop.time() + self.delay
        matching = [s for s in self._subs if subject_matches(s.subject, subject)]
        if not matching and reply:
            self._route(reply, b"", "")  # "no responders"
            return
        groups: dict[str, list[FakeSubscription]] = {}
        for sub in matching:
            if sub.queue:
                groups.setdefault(sub.queue, []).append(sub)
            elif sub.bus.connected:
                sub.offer(due, data, subject, reply)
        for queue, members in groups.items():
            live = [m for m in members if m.bus.connected]
            if live:
                turn = self._rr.get((queue, subject), 0)
                self._rr[(queue, subject)] = turn + 1
                live[turn % len(live)].offer(due, data, subject, reply)


class FakeBus:
    """One connection to a :class:`FakeServer`; implements :class:`kpng.bus.protocol.Bus`."""

    def __init__(self, server: FakeServer, subjects: Subjects, name: str = "") -> None:
        self.server = server
        self.subjects = subjects
        self.name = name
        self.listeners = BusListeners()
        self.permission_violations = 0  # the fake enforces no permissions
        self._connected = True
        self._closed = False
        self._subs: dict[int, FakeSubscription] = {}
        self._buffered: list[tuple[str, bytes, str]] = []
        self.published = 0
        self.bandwidth: float | None = None

    @property
    def max_payload(self) -> int:
        return self.server.max_payload

    @property
    def connected(self) -> bool:
        return self._connected and not self._closed

    def new_inbox(self) -> str:
        return f"_INBOX.fake{next(self.server._inboxes)}"

    async def subscribe(
        self, subject: str, handler: Handler, *, queue: str = "", pending_msgs: int = 1_000_000
    ) -> FakeSubscription:
        self._check_open()
        check_subject(subject, wildcards=True)
        sub = FakeSubscription(subject, next(self.server._sids), queue, handler, pending_msgs, self)
        sub.start()
        self._subs[sub.sid] = sub
        self.server._subs.append(sub)
        return sub

    async def publish(self, subject: str, data: bytes, reply: str = "") -> None:
        self._check_open()
        check_subject(subject, wildcards=False)
        if len(data) > self.server.max_payload:
            raise BusError(
                f"publish {subject} ({len(data)} bytes): maximum payload exceeded "
                f"({self.server.max_payload})"
            )
        self.published += 1
        if self.bandwidth:
            await asyncio.sleep(len(data) / self.bandwidth)
        if not self._connected:
            self._buffered.append((subject, data, reply))
            return
        self.server._route(subject, data, reply)

    async def request(self, subject: str, data: bytes, timeout: float = 5.0) -> bytes:
        replies: asyncio.Queue[bytes] = asyncio.Queue()
        sub = await self.subscribe(self.new_inbox(), lambda d, s, r: replies.put_nowait(d))
        try:
            await self.publish(subject, data, reply=sub.subject)
            answer = await asyncio.wait_for(replies.get(), timeout)
        except TimeoutError:
            raise BusError(f"request {subject}: no reply within {timeout}s") from None
        finally:
            await sub.unsubscribe()
        if not answer:
            raise BusError(f"request {subject}: no responders")
        return answer

    async def flush(self, timeout: float = 5.0) -> None:
        self._check_open()
        if not self._connected:
            raise BusError("flush: disconnected")
        await asyncio.sleep(0)

    # -- faults ------------------------------------------------------------------------------
    def disconnect(self) -> None:
        """Lose the connection: nothing is received, publishes wait for :meth:`reconnect`."""
        if self._connected:
            self._connected = False
            for listener in list(self.listeners.disconnected):
                listener()

    def reconnect(self) -> None:
        if not self._connected and not self._closed:
            self._connected = True
            buffered, self._buffered = self._buffered, []
            for subject, data, reply in buffered:
                self.server._route(subject, data, reply)
            for listener in list(self.listeners.reconnected):
                listener()

    def _check_open(self) -> None:
        if self._closed:
            raise BusError("connection closed")

    async def close(self) -> None:
        self._closed = True
        for sub in list(self._subs.values()):
            await sub.unsubscribe()

    async def __aenter__(self) -> FakeBus:
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


def _conforms(server: FakeServer) -> Bus:  # mypy checks FakeBus against the seam
    return server.connect()
