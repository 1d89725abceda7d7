"""The observer's bus subscriptions: the global view, node deltas and ticks, node status.

Only what it can trust counts (:mod:`kpng_observer.trust`): a status on its own node's
subject, positions along the watcher's stream; a position beyond that, and every position
after a reconnect, is asked of the watcher (a catch-up request from the known position:
one empty chunk when nothing was missed). Anything on the global subject is the watcher's
heartbeat. Repeated warnings are rate-limited.

Timestamps and the sweep's waits come from an injected :class:`~kpng.runtime.clock.Clock`.
"""

from __future__ import annotations

import asyncio
import logging

from kpng.bus.client import GlobalViewClient
from kpng.bus.codec import (
    Delta,
    MalformedMessage,
    OpCache,
    SnapshotChunk,
    SnapshotRequest,
    Status,
    Tick,
    decode,
    encode,
)
from kpng.bus.protocol import Bus, BusError
from kpng.bus.watcher_status import decode_status
from kpng.runtime.clock import SYSTEM, Clock
from kpng.runtime.metrics import PermissionViolations
from kpng_observer.metrics import ObserverMetrics
from kpng_observer.quiet import RateLimitedWarning
from kpng_observer.state import ObserverState
from kpng_observer.trust import status_names_subject

log = logging.getLogger(__name__)


class Feed:
    def __init__(
        self,
        bus: Bus,
        state: ObserverState,
        metrics: ObserverMetrics | None = None,
        clock: Clock = SYSTEM,
    ) -> None:
        self.bus = bus
        self.state = state
        self.clock = clock
        self.client = GlobalViewClient(bus, clock=clock)
        # every node of a zone is sent the same operations: decode them once, not per node
        # (1,000 nodes x 10 batches/s: 2.5 s of decoding a second without, 0.16 s with)
        self.op_cache = OpCache(max_items=200_000, max_array_bytes=32 << 20)
        self.metrics = metrics or ObserverMetrics(state, lambda: self.client.stats, clock.time)
        self.metrics.registry.register(PermissionViolations(lambda: bus.permission_violations))
        self.quiet = RateLimitedWarning(log, clock.monotonic)
        self.refresh_timeout = 2.0
        self._refresh_due = asyncio.Event()

    async def start(self) -> None:
        await self.bus.subscribe(self.bus.subjects.all_status, self._on_status)
        await self.bus.subscribe(self.bus.subjects.all_deltas, self._on_delta)
        await self.bus.subscribe(self.bus.subjects.global_delta, self._on_global)
        await self.bus.subscribe(self.bus.subjects.watcher_status, self._on_watcher_status)
        self.bus.listeners.reconnected.append(self._on_reconnected)

    def _on_reconnected(self) -> None:
        """Deltas and ticks were missed while disconnected: ask every position at once."""
        self.state.refresh.update(n for n, p in self.state.nodes.items() if p.published_epoch)
        self._refresh_due.set()

    async def refresh_positions(self) -> None:
        """Ask the watcher the position of each node queued in ``state.refresh``."""
        while True:
            if not self.state.refresh:
                self._refresh_due.clear()
                await self._refresh_due.wait()
            for name in sorted(self.state.refresh):
                self.state.refresh.discard(name)
                if name in self.state.nodes and not self.state.unknown(name):
                    await self._refresh(name)
            await self.clock.sleep(0.05)  # a flood of claims is answered in batches

    async def _refresh(self, name: str) -> None:
        progress = self.state.nodes[name]
        request = SnapshotRequest(progress.published_epoch, progress.published_seq)
        try:
            subject = self.bus.subjects.node_snapshot(name)
            data = await self.bus.request(subject, encode(request), self.refresh_timeout)
            reply = decode(data, "node")
        except (BusError, MalformedMessage, ValueError) as exc:
            log.info("position of node %s not refreshed: %s", name, exc)
            return
        if isinstance(reply, SnapshotChunk):
            self.state.set_published(name, reply.epoch, reply.seq, self.clock.time())

    async def follow_global(self) -> None:
        async for event in self.client:
            self.state.note_global(event, self.clock.time())

    async def sweep(self, interval: float = 0.5) -> None:
        """Notice silent nodes even when nothing arrives."""
        while True:
            await self.clock.sleep(interval)
            self.state.sweep(self.clock.time())

    def _node(self, subject: str) -> str:
        return self.bus.subjects.node_of(subject).replace("_", ".")

    def _decode(
        self, data: bytes, subject: str, what: str, cache: OpCache | None = None
    ) -> object | None:
        try:
            return decode(data, "node", cache)
        except MalformedMessage as exc:
            self.state.malformed += 1
            self.metrics.bus.malformed.labels(what).inc()
            self.quiet.warning("malformed %s on %s: %s", what, subject, exc)
            return None

    def _on_status(self, data: bytes, subject: str, reply: str) -> None:
        self.metrics.bus.received("status", len(data))
        message = self._decode(data, subject, "status")
        if not isinstance(message, Status):
            return
        if not status_names_subject(self.bus.subjects.node_of(subject), message.node):
            self.state.untrusted_statuses += 1
            self.quiet.warning("status naming node %r on %s dropped", message.node, subject)
            return
        if self.state.admits(message.node):
            new = self.state.note_status(message, self.clock.time())
            self.metrics.observe_latency(message.node, new)
        if self.state.refresh:
            self._refresh_due.set()

    def _on_delta(self, data: bytes, subject: str, reply: str) -> None:
        message = self._decode(data, subject, "node delta", self.op_cache)
        if isinstance(message, Delta):
            self.metrics.bus.received("delta", len(data))
            if self.state.admits(node := self._node(subject)):
                self.state.note_node_delta(node, message, self.clock.time())
        elif isinstance(message, Tick):
            self.metrics.bus.received("tick", len(data))
            if self.state.admits(node := self._node(subject)):
                self.state.note_tick(
                    node, message.epoch, message.seq, self.clock.time(), message.digest
                )
        if self.state.refresh:
            self._refresh_due.set()

    def _on_watcher_status(self, data: bytes, subject: str, reply: str) -> None:
        try:
            status = decode_status(data)
        except ValueError as exc:  # json's errors are ValueErrors too
            self.state.malformed += 1
            self.quiet.warning("malformed watcher status on %s: %s", subject, exc)
            return
        self.state.note_watcher_status(status, self.clock.time())

    def _on_global(self, data: bytes, subject: str, reply: str) -> None:
        """Only the watcher may publish here (bus permissions): its heartbeat."""
        self.state.watcher_heard_at = self.clock.time()
