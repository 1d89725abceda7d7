"""The client third parties use: a node's view (or the global view) as an async iterator.

    async for event in NodeViewClient(bus, "node-a1"):
        event.kind    # "snapshot" (event.view is the whole view) or "delta" (event.ops applied)
        event.view    # the view after this event
        event.epoch, event.seq

Subscribes first, then fetches a snapshot, then applies deltas in order. Gaps, epoch
changes, reconnects, slow-consumer drops and ticks ahead of the applied seq trigger a
resync inside; while the watcher is away, nothing is yielded and the last view stands.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Generic

from kpng.bus.casts import CastReceiver
from kpng.bus.codec import (
    Delta,
    MalformedMessage,
    OpCache,
    Scope,
    SnapshotChunk,
    Tick,
    decode,
)
from kpng.bus.consumer import Applied, Consumer, Resync
from kpng.bus.fetch import SnapshotFetcher, SnapshotUnavailable
from kpng.bus.protocol import Bus, Subscription
from kpng.diff import E, View
from kpng.model import Endpoint, ViewEndpoint
from kpng.runtime.clock import SYSTEM, Clock
from kpng.runtime.gcpause import no_gc

__all__ = [
    "ClientStats",
    "GlobalViewClient",
    "NodeViewClient",
    "SnapshotUnavailable",
    "ViewClient",
    "ViewEvent",
]

log = logging.getLogger(__name__)
ViewEvent = Applied
# the watcher ticks every subject it serves every tick refresh (30 s by default): silence
# longer than that means it does not know this subject (docs/bus.md, section 8)
SILENCE = 35.0
DIGEST_IDLE = 5.0  # seconds of quiet (no snapshot in the process) before a digest is computed
DIGEST_STEP = 1000  # items hashed per step of it (~5 ms)


@dataclass(slots=True)
class ClientStats:
    snapshots: int = 0  # full snapshots received
    catchups: int = 0  # catch-up replies (only the missed deltas) received
    rebases: int = 0  # new epochs taken on by digest, without operations
    deltas: int = 0
    resyncs: int = 0
    malformed: int = 0
    snapshot_failures: int = 0
    casts: int = 0  # full snapshots whose zone part came as a cast
    last_resync_reason: str = ""


class ViewClient(Generic[E]):
    """Consumer of one (delta subject, snapshot subject) pair."""

    def __init__(
        self,
        bus: Bus,
        delta_subject: str,
        snapshot_subject: str,
        scope: Scope,
        *,
        snapshot_timeout: float = 5.0,
        max_backoff: float = 5.0,
        max_queue: int = 100_000,
        op_cache: OpCache | None = None,
        catch_up: bool = True,
        compressed: bool = True,
        clock: Clock = SYSTEM,
        silence: float | None = SILENCE,
        digest_idle: float | None = DIGEST_IDLE,
        casts: CastReceiver | bool = True,
    ) -> None:
        self.bus = bus
        self.delta_subject = delta_subject
        self.snapshot_subject = snapshot_subject
        self.scope: Scope = scope
        self.max_backoff = max_backoff
        self.op_cache = op_cache  # shared by the clients of a process that runs many
        self.catch_up = catch_up  # resync from a trusted view with only what it missed
        self.clock = clock  # the backoff between failed resyncs waits on it
        # nothing on the delta subject for this long (no delta, no tick): resync, so that a
        # watcher that does not know this subject yet (a new one) learns of it
        self.silence = silence
        # quiet for this long with a view whose digest is unknown (after a full snapshot):
        # compute it in steps while nothing arrives, so that no rebase request waits for it
        self.digest_idle = digest_idle
        self.stats = ClientStats()
        # node snapshots: take a large zone part as a cast (kpng.bus.casts), heard by the
        # receiver given (shared by a process's clients) or one of the fetcher's own
        self.fetcher = SnapshotFetcher(
            bus,
            snapshot_subject,
            scope,
            self.stats,
            timeout=snapshot_timeout,
            compressed=compressed,
            op_cache=op_cache,
            casts=casts,
        )
        prefixes = op_cache.prefixes if op_cache is not None else None
        self.consumer: Consumer[E] = Consumer(prefixes=prefixes)
        self._queue: asyncio.Queue[bytes | Resync] = asyncio.Queue(max_queue)
        self._sub: Subscription | None = None

    @property
    def view(self) -> View[E]:
        return self.consumer.view

    @property
    def casts(self) -> CastReceiver | None:
        """Where casts are heard; None: snapshots come whole."""
        return self.fetcher.casts

    def __aiter__(self) -> AsyncIterator[Applied[E]]:
        return self.events()

    async def events(self) -> AsyncIterator[Applied[E]]:
        await self._subscribe()
        try:
            while True:
                if not self.consumer.synced:
                    for event in await self._resync():
                        yield event
                    if not self.consumer.synced:  # a snapshot that did not apply: back off
                        await self.clock.sleep(self.max_backoff * random.uniform(0.5, 1.0))
                    continue
                item = await self._next()
                for event in self._handle(item):
                    yield event
        finally:
            await self._unsubscribe()

    # -- subscription ------------------------------------------------------------------------
    async def _subscribe(self) -> None:
        self._sub = await self.bus.subscribe(self.delta_subject, self._on_message)
        self.bus.listeners.reconnected.append(self._on_reconnected)
        self.bus.listeners.slow_consumer.append(self._on_slow_consumer)

    async def _unsubscribe(self) -> None:
        for listeners, cb in (
            (self.bus.listeners.reconnected, self._on_reconnected),
            (self.bus.listeners.slow_consumer, self._on_slow_consumer),
        ):
            if cb in listeners:
                listeners.remove(cb)  # type: ignore[arg-type]
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None

    async def _next(self) -> bytes | Resync:
        loop = asyncio.get_running_loop()
        started = loop.time()
        # a tick's digest waits for the view's: a process following one node computes it at
        # once (in steps); one following many keeps to the idle wait, or hundreds of views
        # hash at the same moment and every delta behind them waits (10 s of churn p99 in
        # the scale bench)
        due = self.consumer.digest_due() and not self.consumer.follows_many
        if (self.digest_idle is not None or due) and self.consumer.view.known_digest is None:
            until = started + (self.silence if self.silence is not None else float("inf"))
            idle = 0.0 if due else (self.digest_idle or 0.0)
            item = await self._digest_while_idle(idle, until)
            if item is not None:
                return item
        if self.consumer.pending_check is not None and self.consumer.view.known_digest is not None:
            for result in self.consumer.check_pending():
                if isinstance(result, Resync):
                    return result
        if self.silence is None:
            return await self._queue.get()
        try:
            async with asyncio.timeout(self.silence - (loop.time() - started)):
                return await self._queue.get()
        except TimeoutError:
            return Resync(f"nothing on the delta subject for {self.silence:.0f}s")

    async def _digest_while_idle(self, idle: float, until: float) -> bytes | Resync | None:
        """Once nothing came for ``idle`` seconds, and no client sharing this one's
        snapshot prefixes took a full snapshot meanwhile (a storm: its views are built
        first), the view's digest in steps of a few milliseconds, each followed by a look
        at the queue: an item that arrives is returned at once, the steps done kept (the
        view resumes them). None: the digest is known, or ``until`` (loop time) passed."""
        loop = asyncio.get_running_loop()
        prefixes = self.consumer.prefixes
        before = prefixes.snapshots if prefixes is not None else 0
        quiet_since = loop.time()
        while (left := quiet_since + idle - loop.time()) > 0:
            try:  # a look at the process's snapshots every quarter of the idle time
                async with asyncio.timeout(min(left, idle / 4, until - loop.time())):
                    return await self._queue.get()
            except TimeoutError:
                pass
            if loop.time() >= until:
                return None
            if prefixes is not None and prefixes.snapshots != before:
                before, quiet_since = prefixes.snapshots, loop.time()
        for _ in self.consumer.view.digest_steps(DIGEST_STEP):
            await asyncio.sleep(0)
            if not self._queue.empty():
                return self._queue.get_nowait()
        return None

    def _on_message(self, data: bytes, subject: str, reply: str) -> None:
        self._put(data)

    def request_resync(self, reason: str) -> None:
        """Resync as a reconnect would (a catch-up if the view is trusted)."""
        self._put(Resync(reason))

    def _on_reconnected(self) -> None:
        self._put(Resync("reconnected to NATS"))

    def _on_slow_consumer(self, sid: int) -> None:
        if self._sub is not None and sid == self._sub.sid:
            self._put(Resync("slow consumer: NATS dropped messages"))

    def _put(self, item: bytes | Resync) -> None:
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self._drain_queue()
            self._queue.put_nowait(Resync("client queue overflow"))

    def _drain_queue(self) -> None:
        while not self._queue.empty():
            self._queue.get_nowait()

    # -- messages ----------------------------------------------------------------------------
    def _handle(self, item: bytes | Resync) -> list[Applied[E]]:
        if isinstance(item, Resync):
            self._note_resync(item.reason)
            self.consumer.start_resync()
            return []
        try:
            message = decode(item, self.scope, self.op_cache, self.bus.max_payload)
        except MalformedMessage as exc:
            self.stats.malformed += 1
            log.warning("malformed message on %s dropped: %s", self.delta_subject, exc)
            return []
        if isinstance(message, Delta):
            results = self.consumer.on_delta(message)
        elif isinstance(message, Tick):
            results = self.consumer.on_tick(message)
        else:
            self.stats.malformed += 1
            log.warning("unexpected %s on %s dropped", type(message).__name__, self.delta_subject)
            return []
        return self._results(results)

    def _results(self, results: list[Applied[E] | Resync]) -> list[Applied[E]]:
        events: list[Applied[E]] = []
        for result in results:
            if isinstance(result, Resync):
                self._note_resync(result.reason)
            else:
                if result.kind == "delta":
                    self.stats.deltas += 1
                events.append(result)
        return events

    def _note_resync(self, reason: str) -> None:
        self.stats.resyncs += 1
        self.stats.last_resync_reason = reason
        log.info("resync of %s: %s", self.delta_subject, reason)

    # -- snapshots ---------------------------------------------------------------------------
    async def _resync(self) -> list[Applied[E]]:
        self.consumer.start_resync()
        delay = 0.1
        while True:
            since = self.consumer.since() if self.catch_up else None
            try:
                # the chunks' 10^5-10^6 objects: no collections while they come, each of
                # which walked the chunks so far (~20 ms at 110k operations)
                with no_gc():
                    chunks = await self.fetch_snapshot(since)
                break
            except SnapshotUnavailable as exc:
                self.stats.snapshot_failures += 1
                log.info(
                    "snapshot of %s unavailable (%s); retry in %.1fs",
                    self.snapshot_subject,
                    exc,
                    delay,
                )
                await self.clock.sleep(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, self.max_backoff)
        while not self._queue.empty():  # deltas that came while we waited: buffered
            item = self._queue.get_nowait()
            if isinstance(item, Resync):
                continue  # the snapshot we are about to apply supersedes it
            self._handle(item)
        first, ops = chunks[0], sum(len(c.ops) for c in chunks)
        if first.base_epoch:
            self.stats.rebases += 1
            log.info(
                "%s: rebased from %s/%d to %s/%d (same view)",
                self.delta_subject,
                first.base_epoch,
                first.base,
                first.epoch,
                first.seq,
            )
        elif first.base >= 0:
            self.stats.catchups += 1
            log.info(
                "%s: catch-up from seq %d to %d, %d ops",
                self.delta_subject,
                first.base,
                first.seq,
                ops,
            )
        else:
            self.stats.snapshots += 1
            log.info("%s: full snapshot at seq %d, %d ops", self.delta_subject, first.seq, ops)
        with no_gc():
            return self._results(self.consumer.on_snapshot(chunks))

    async def fetch_snapshot(self, since: tuple[str, int] | None = None) -> list[SnapshotChunk]:
        """Request the snapshot and gather its chunks; raises SnapshotUnavailable.

        ``since``: (epoch, seq) of a view this client trusts; the watcher may then answer
        with only the operations missed since (chunks with ``base`` == seq)."""
        epoch, seq = since if since is not None else ("", -1)
        # the digest lets a new watcher answer with a rebase; a process following many
        # nodes sends it only when known (hashing hundreds of views for one storm of
        # same-epoch catch-ups, which need none, took 15 s in the scale bench)
        known = self.consumer.view.known_digest is not None
        ask = since is not None and (known or not self.consumer.follows_many)
        digest = self.consumer.digest() if ask else ""
        return await self.fetcher.fetch(epoch, seq, digest)


class NodeViewClient(ViewClient[ViewEndpoint]):
    """One node's view: what that node must program."""

    def __init__(self, bus: Bus, node: str, **options: Any) -> None:
        super().__init__(
            bus, bus.subjects.node_delta(node), bus.subjects.node_snapshot(node), "node", **options
        )
        self.node = node


class GlobalViewClient(ViewClient[Endpoint]):
    """The unfiltered cluster model (all services, endpoints with hints, nodes)."""

    def __init__(self, bus: Bus, **options: Any) -> None:
        super().__init__(
            bus, bus.subjects.global_delta, bus.subjects.global_snapshot, "global", **options
        )
