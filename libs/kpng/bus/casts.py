"""Receiving casts: the zone parts of node snapshots that the watcher publishes once for
every consumer waiting for them (docs/bus.md, section 9a; :mod:`kpng.fanout.casts`).

A :class:`CastReceiver` serves the clients of one process: one subscription per cast while
anyone waits for it, each chunk decoded once, every waiting client handed the same
operations. A process that follows many nodes shares one receiver (and keeps the last few
casts, for the clients that ask a little later); an agent has its own.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from kpng.bus.codec import CastChunk, CastRef, MalformedMessage, OpCache, decode
from kpng.bus.protocol import Bus, BusError, Subscription
from kpng.runtime.gcpause import no_gc

log = logging.getLogger(__name__)


class CastRefused(BusError):
    """The server does not let this connection hear casts (its permissions predate them)."""


@dataclass(slots=True)
class _Pending:
    chunks: int
    waiters: int = 0
    subscribed: asyncio.Event = field(default_factory=asyncio.Event)
    complete: asyncio.Event = field(default_factory=asyncio.Event)
    received: dict[int, CastChunk] = field(default_factory=dict)
    refused: str = ""
    sub: Subscription | None = None


@dataclass(slots=True)
class CastStats:
    malformed: int = 0  # messages on a cast's subject that were not one of its chunks


class CastReceiver:
    """Casts heard on ``bus``; ``keep``: complete casts kept for clients that ask later."""

    def __init__(self, bus: Bus, op_cache: OpCache | None = None, keep: int = 0) -> None:
        self.bus = bus
        self.op_cache = op_cache
        self.keep = keep
        self.stats = CastStats()
        self._pending: dict[str, _Pending] = {}
        self._done: OrderedDict[str, tuple[CastChunk, ...]] = OrderedDict()

    async def receive(
        self, ref: CastRef, ask: Callable[[], Awaitable[None]]
    ) -> tuple[CastChunk, ...]:
        """The chunks of the cast ``ref``, in order: subscribed to its subject, ``ask``
        is awaited (it sends the cast request), then the chunks are awaited (the caller
        bounds the wait). Raises :class:`CastRefused` if the server refuses the
        subscription."""
        done = self._done.get(ref.id)
        if done is not None and len(done) == ref.chunks:
            return done
        pending = self._pending.get(ref.id)
        if pending is None or pending.chunks != ref.chunks:
            pending = await self._subscribe(ref)
        pending.waiters += 1
        try:
            await pending.subscribed.wait()
            await ask()
            await pending.complete.wait()
            if pending.refused:
                raise CastRefused(pending.refused)
            return tuple(pending.received[i] for i in range(pending.chunks))
        finally:
            pending.waiters -= 1
            if pending.waiters == 0:
                await self._release(ref.id, pending)

    async def _subscribe(self, ref: CastRef) -> _Pending:
        listeners = self.bus.listeners.permission_violation
        if self._on_violation not in listeners:  # while a subscription is pending
            listeners.append(self._on_violation)
        pending = self._pending[ref.id] = _Pending(ref.chunks)
        subject = self.bus.subjects.cast(ref.id)
        try:
            pending.sub = await self.bus.subscribe(
                subject, lambda data, s, r: self._on_chunk(ref.id, pending, data)
            )
        except BaseException:
            if self._pending.get(ref.id) is pending:
                del self._pending[ref.id]
            self._unlisten_if_idle()
            raise
        pending.subscribed.set()
        return pending

    async def _release(self, id: str, pending: _Pending) -> None:
        if self._pending.get(id) is pending:
            del self._pending[id]
        self._unlisten_if_idle()
        if pending.sub is not None:
            sub, pending.sub = pending.sub, None
            try:
                await sub.unsubscribe()
            except BusError as exc:  # closed meanwhile: nothing left to undo
                log.debug("cast %s: unsubscribe: %s", id, exc)

    def _unlisten_if_idle(self) -> None:
        listeners = self.bus.listeners.permission_violation
        if not self._pending and self._on_violation in listeners:
            listeners.remove(self._on_violation)

    def _on_chunk(self, id: str, pending: _Pending, data: bytes) -> None:
        try:
            with no_gc():
                message = decode(data, "node", self.op_cache, self.bus.max_payload)
            if not isinstance(message, CastChunk):
                raise MalformedMessage("kind", f"expected cast, got {type(message).__name__}")
            if message.id != id or message.chunks != pending.chunks:
                raise MalformedMessage("id", f"cast {message.id} of {message.chunks} chunks")
        except MalformedMessage as exc:
            self.stats.malformed += 1
            log.warning("malformed message on cast %s dropped: %s", id, exc)
            return
        pending.received[message.chunk] = message
        if len(pending.received) == pending.chunks and not pending.complete.is_set():
            pending.complete.set()
            if self.keep:
                self._done[id] = tuple(pending.received[i] for i in range(pending.chunks))
                while len(self._done) > self.keep:
                    self._done.popitem(last=False)

    def _on_violation(self, text: str) -> None:
        """The server refused something: a subscription to a cast fails its waiters."""
        for id, pending in self._pending.items():
            if self.bus.subjects.cast(id) in text:
                pending.refused = f"the server refused the cast's subscription: {text}"
                pending.complete.set()
