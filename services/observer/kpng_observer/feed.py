"""The observer's bus subscriptions: the global view, node deltas and ticks, node status."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from kpng.bus.client import GlobalViewClient
from kpng.bus.connection import Bus
from kpng.codec import Delta, MalformedMessage, Status, Tick, decode

from kpng_observer.state import ObserverState

log = logging.getLogger(__name__)


class Feed:
    def __init__(
        self, bus: Bus, state: ObserverState, clock: Callable[[], float] = time.time
    ) -> None:
        self.bus = bus
        self.state = state
        self.clock = clock
        self.client = GlobalViewClient(bus)

    async def start(self) -> None:
        await self.bus.subscribe(self.bus.subjects.all_status, self._on_status)
        await self.bus.subscribe(self.bus.subjects.all_deltas, self._on_delta)

    async def follow_global(self) -> None:
        async for event in self.client:
            self.state.view = event.view
            self.state.epoch, self.state.seq = event.epoch, event.seq
            self.state.snapshot_received = True

    def _node(self, subject: str) -> str:
        return self.bus.subjects.node_of(subject).replace("_", ".")

    def _on_status(self, data: bytes, subject: str, reply: str) -> None:
        try:
            message = decode(data)
        except MalformedMessage as exc:
            self.state.malformed += 1
            log.warning("malformed status on %s: %s", subject, exc)
            return
        if isinstance(message, Status):
            self.state.note_status(message, self.clock())

    def _on_delta(self, data: bytes, subject: str, reply: str) -> None:
        try:
            message = decode(data)
        except MalformedMessage as exc:
            self.state.malformed += 1
            log.warning("malformed message on %s: %s", subject, exc)
            return
        if isinstance(message, Delta | Tick):
            self.state.note_published(self._node(subject), message.epoch, message.seq, self.clock())
