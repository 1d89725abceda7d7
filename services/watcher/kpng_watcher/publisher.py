"""The watcher's loop: source events in, coalesced node-scoped deltas out.

Nothing is published before the source's initial load; then changes are gathered for at
most the coalescing window and published as one batch per node; snapshots are answered at
any time from the state as last published; idle ticks carry every node's current seq.
Its waits and timestamps come from an injected :class:`~kpng.runtime.clock.Clock`.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kpng.bus.bounds import MAX_MESSAGE
from kpng.bus.codec import (
    CAST,
    COMPACT_ENDPOINTS,
    COMPRESSED_OPS,
    DIGEST_FEATURES,
    CastRequest,
    ErrorReply,
    MalformedMessage,
    SnapshotRequest,
    Status,
    decode,
    encode,
)
from kpng.bus.protocol import Bus, BusError
from kpng.bus.subjects import Subjects
from kpng.fanout.cluster import Changes, ClusterState
from kpng.fanout.fanout import Fanout, Outgoing
from kpng.model import shown_name
from kpng.runtime.clock import SYSTEM, Clock
from kpng.source import Delete, Replace, Source, SourceEvent, Synced, Upsert

log = logging.getLogger(__name__)
DIGEST_STEP = 50  # node digests computed between two looks at the loop (_warm_digests)


@dataclass(frozen=True, slots=True)
class PublisherSettings:
    coalesce: float = 0.1
    tick_interval: float = 1.0
    tick_refresh: float = 30.0  # every node gets a tick at least this often
    # a node with no Node object is served while it asks for snapshots or reports status
    idle_node_timeout: float = 600.0
    # catch-up: per node, the last `history` deltas (at most `history_bytes` of operations)
    history: int = 256
    history_bytes: int = 8 * 1024 * 1024
    # at most this many nodes without a Node object are served (they expire when idle)
    max_unknown_nodes: int = 64
    # offer large zone parts as casts to consumers that accept them (kpng.fanout.casts); a
    # cast goes out this long after the first request for it, once for all who asked meanwhile
    casts: bool = True
    cast_window: float = 0.05


@dataclass(slots=True)
class PublisherStats:
    batches: int = 0
    # services and nodes changed, summed over batches: changes / batches is the coalescing
    coalesced_changes: int = 0
    malformed_requests: int = 0
    unknown_casts: int = 0  # cast requests for a cast not (or no longer) kept
    untrusted_statuses: int = 0  # undecodable, or naming another node than their subject's
    # snapshot requests and status on a subject whose token is no valid node name
    invalid_nodes: int = 0
    # unknown nodes not served: already max_unknown_nodes of them
    refused_nodes: int = 0
    publish_errors: int = 0
    # messages not sent because the gate was closed (a standby, or a leader past its deadline)
    fenced_messages: int = 0
    last_publish_duration: float = 0.0


BatchHook = Callable[[Sequence[Outgoing]], None]
Gate = Callable[[], bool]


class Publisher:
    """``on_batch``, if given, is called with each batch's delta messages once they are
    sent (ticks are not part of a batch): for tools that measure or replay what went out.

    ``gate``, if given, is asked before every message and snapshot reply: while it says no
    (a standby, or a leader past its renew deadline) the model and views are kept current
    but nothing goes out; :meth:`take_over` then sends every node a tick at once."""

    def __init__(
        self,
        bus: Bus,
        source: Source,
        settings: PublisherSettings = PublisherSettings(),
        clock: Clock = SYSTEM,
        on_batch: BatchHook | None = None,
        gate: Gate | None = None,
    ) -> None:
        self.bus = bus
        self.source = source
        self.settings = settings
        self.clock = clock
        self.on_batch = on_batch
        self.gate: Gate = gate or (lambda: True)
        self._took_over = asyncio.Event()
        self.state = ClusterState()
        self.epoch = secrets.token_hex(8)
        self.fanout = Fanout(
            self.epoch,
            bus.max_payload,
            settings.history,
            settings.history_bytes,
            max_unknown_nodes=settings.max_unknown_nodes,
        )
        self.synced = False
        self.stats = PublisherStats()
        self._pending = Changes()
        self._dirty = asyncio.Event()
        # a batch's deltas go out before any tick computed after them (a tick carrying a seq
        # whose delta is still unsent would make that node resync for nothing)
        self._publishing = asyncio.Lock()
        self.ready = asyncio.Event()
        self._casts_due: dict[str, None] = {}  # casts asked for, published at the next round
        self._cast_wanted = asyncio.Event()

    async def run(self) -> None:
        subjects = self.bus.subjects
        await self.bus.subscribe(subjects.all_snapshots, self._on_snapshot_request)
        await self.bus.subscribe(subjects.global_snapshot, self._on_snapshot_request)
        await self.bus.subscribe(subjects.all_status, self._on_status)
        log.info("watcher epoch %s: waiting for the initial load", self.epoch)
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._consume())
            tasks.create_task(self._flush_loop())
            tasks.create_task(self._tick_loop())
            tasks.create_task(self._takeover_loop())
            tasks.create_task(self._cast_loop())

    # -- source ------------------------------------------------------------------------------
    async def _consume(self) -> None:
        async for event in self.source.events():
            self.handle(event)

    def handle(self, event: SourceEvent) -> None:
        now = self.clock.time()
        if isinstance(event, Synced):
            if not self.synced:
                self.fanout.load(self.state)
                self._log_refusals()
                self._pending = Changes()
                self.synced = True
                # the cluster model (10^6 objects at 10k x 10) lives on: keep the cyclic
                # collector's full passes off it (they paused publishing up to 0.5 s)
                gc.freeze()
                self.ready.set()
                self._took_over.set()  # if leading already (or alone): tick every node now
                counts = (len(self.state.services), len(self.state.slices), len(self.state.nodes))
                log.info("initial load complete: %d services, %d slices, %d nodes", *counts)
            return
        if isinstance(event, Replace):
            changes = self.state.replace(event.objects, now, event.kinds)
        elif isinstance(event, Upsert):
            changes = self.state.upsert(event.obj, now)
        else:
            assert isinstance(event, Delete)
            changes = self.state.delete(event.kind, event.key, now)
        if changes and self.synced:
            self._pending.merge(changes)
            self._dirty.set()

    # -- publishing --------------------------------------------------------------------------
    async def _flush_loop(self) -> None:
        while True:
            await self._dirty.wait()
            await self.clock.sleep(self.settings.coalesce)
            self._dirty.clear()
            await self.flush()

    async def flush(self) -> None:
        pending, self._pending = self._pending, Changes()
        if not pending:
            return
        started = self.clock.monotonic()
        async with self._publishing:
            out = self.fanout.publish(self.state, pending, self.clock.time())
            self._log_refusals()
            await self._send(out)
            if self.on_batch is not None:
                self.on_batch(out)
        self.stats.batches += 1
        self.stats.coalesced_changes += len(pending.services) + len(pending.nodes)
        self.stats.last_publish_duration = self.clock.monotonic() - started
        log.debug(
            "published %d services, %d nodes changed in %d messages (%.1f ms)",
            len(pending.services),
            len(pending.nodes),
            len(out),
            self.stats.last_publish_duration * 1000,
        )

    def _log_refusals(self) -> None:
        limit = min(self.bus.max_payload, MAX_MESSAGE)
        for key, size in self.fanout.take_refusals():
            log.error(
                "service %s not published: an operation of %d bytes cannot fit a message "
                "of %d bytes; nodes keep its previous version (or none)",
                key,
                size,
                limit,
            )

    async def _send(self, out: list[Outgoing]) -> None:
        subjects = self.bus.subjects
        for i, message in enumerate(out):
            if not self.gate():
                self.stats.fenced_messages += len(out) - i
                return
            try:
                subject = subjects.global_delta if message.node is None else None
                subject = subject or subjects.node_delta(message.node or "")
                await self.bus.publish(subject, message.data)
            except ValueError as exc:  # names are checked where they enter: never here
                self.stats.publish_errors += 1
                log.error("not published: %s", exc)
            except BusError as exc:
                self.stats.publish_errors += 1
                log.error("%s (agents will resync on the gap)", exc)

    async def _tick_loop(self) -> None:
        """Every tick interval, ticks to the nodes that went quiet after a delta; every
        ``tick_refresh`` seconds (and first), to every node: the epoch's heartbeat."""
        last_full = -math.inf
        while True:
            await self.clock.sleep(self.settings.tick_interval)
            if self.synced:
                now = self.clock.time()
                idle = self.settings.idle_node_timeout
                for node in self.fanout.retire_idle(now, idle, self.state.nodes):
                    log.info("no longer serving node %s: no Node object, idle %.0fs", node, idle)
                full = now - last_full >= self.settings.tick_refresh
                last_full = now if full else last_full
                if full:
                    await self._warm_digests()
                async with self._publishing:
                    await self._send(self.fanout.ticks(now, self.settings.tick_interval, full))

    async def _warm_digests(self, step: int = DIGEST_STEP) -> None:
        """Every served node's digest computed ahead of a full tick, ``step`` nodes at a
        time with the loop free in between: the tick is computed under the publishing lock,
        and at 1,000 nodes under churn (each node's correction for the services it is
        special to, dropped as they change) it took ~0.35 s there, which every batch's
        deltas waited for. The digests are only cached here; the tick reads the state as it
        is then, so what changes meanwhile is still counted."""
        for i, node in enumerate(list(self.fanout.seq)):
            if node in self.fanout.seq:
                self.fanout.node_digest(node)
            if i % step == step - 1:
                await asyncio.sleep(0)

    def take_over(self) -> None:
        """This watcher leads from now on: tick every node at once (they learn its epoch).
        A watcher that leads (or runs alone) when its initial load completes does so then."""
        self._took_over.set()

    async def _takeover_loop(self) -> None:
        while True:
            await self._took_over.wait()
            await self.ready.wait()
            self._took_over.clear()
            if not self.gate():
                continue  # a standby loaded: it ticks when it takes over
            async with self._publishing:
                await self._send(self.fanout.ticks(self.clock.time(), 0.0, True))
            log.info("leading: ticked every node with epoch %s", self.epoch)

    async def _on_status(self, data: bytes, subject: str, reply: str) -> None:
        """An agent reporting in keeps its node served (even without a Node object): only a
        status that decodes and names the node of the subject it came on. One whose view is
        not what this epoch published is ticked at once (it then resyncs)."""
        if self.synced:
            node = self._node_of(subject)  # a valid name, and room if unknown
            if node is None:
                return
            status = self._trusted_status(data, subject)
            if status is None:
                self.stats.untrusted_statuses += 1
                return
            if self.fanout.serve(node, self.clock.time()):
                log.info("serving node %s again (its agent reports status)", node)
            async with self._publishing:
                now = self.clock.time()
                tick = self.fanout.check(node, status.epoch, status.seq, status.digest, now)
                if tick is not None:
                    log.info("node %s reports a view this epoch did not publish", node)
                    await self._send([Outgoing(node, tick)])

    def _trusted_status(self, data: bytes, subject: str) -> Status | None:
        """The status if it decodes and names the node of the subject it came on."""
        try:
            status = decode(data, "node")
            token = self.bus.subjects.node_of(subject)
            if isinstance(status, Status) and Subjects.token(status.node) == token:
                return status
        except (MalformedMessage, ValueError):
            pass
        return None

    def _node_of(self, subject: str) -> str | None:
        """The node a snapshot request or status subject names, if it may be served; None
        (counted, logged) for a token that is no Kubernetes name or for an unknown node
        beyond the bounded set (``max_unknown_nodes``)."""
        node = self.bus.subjects.node_name_of(subject)
        if node is None:
            self.stats.invalid_nodes += 1
            if _worth_logging(self.stats.invalid_nodes):  # anyone can send these: a flood
                log.warning(
                    "ignored %s: its node token is no valid node name (%d so far)",
                    shown_name(subject),
                    self.stats.invalid_nodes,
                )
            return None
        if not self.fanout.admits(node):
            self.stats.refused_nodes += 1
            if _worth_logging(self.stats.refused_nodes):
                log.warning(
                    "not serving node %s: no Node object and already %d unknown nodes served "
                    "(%d refused so far)",
                    node,
                    self.settings.max_unknown_nodes,
                    self.stats.refused_nodes,
                )
            return None
        return node

    # -- snapshots ---------------------------------------------------------------------------
    async def _on_snapshot_request(self, data: bytes, subject: str, reply: str) -> None:
        if not self.gate():
            return  # the leader answers
        if not reply:
            self.stats.malformed_requests += 1
            log.warning("snapshot request on %s without a reply subject dropped", subject)
            return
        request = SnapshotRequest()
        try:
            message = decode(data) if data else request
            if isinstance(message, CastRequest) and subject != self.bus.subjects.global_snapshot:
                await self._on_cast_request(message, subject, reply)
                return
            if not isinstance(message, SnapshotRequest):
                raise MalformedMessage("kind", "expected snapshot-request or cast-request")
            request = message
        except MalformedMessage as exc:
            self.stats.malformed_requests += 1
            log.warning("malformed snapshot request on %s: %s", subject, exc)
            await self._reply(reply, [encode(ErrorReply(f"malformed request: {exc}"))])
            return
        if not self.synced:
            await self._reply(reply, [encode(ErrorReply("watcher initial load not complete"))])
            return
        if subject == self.bus.subjects.global_snapshot:
            rebase = self.fanout.global_rebase(request.epoch, request.seq, request.digest)
            zstd = COMPRESSED_OPS in request.accept
            chunks = [rebase] if rebase is not None else self.fanout.global_snapshot(zstd=zstd)
        elif (node := self._node_of(subject)) is not None:
            chunks = self._node_snapshot(node, request)
        else:
            chunks = [encode(ErrorReply("not served: no valid node name, or too many unknown"))]
        await self._reply(reply, chunks)

    def _node_snapshot(self, node: str, request: SnapshotRequest) -> list[bytes]:
        """A catch-up when the consumer has a view the history reaches back to, else full."""
        now = self.clock.time()
        zstd = COMPRESSED_OPS in request.accept
        self.fanout.holds_marks(node, set(request.accept) >= DIGEST_FEATURES)
        if request.seq >= 0 and node in self.fanout.seq:
            chunks = self.fanout.catch_up(node, request.epoch, request.seq, now, zstd)
            if chunks is not None:
                return chunks
            log.debug("node %s: no catch-up from %s/%d", node, request.epoch, request.seq)
        if request.seq >= 0 and request.digest and request.epoch != self.epoch:
            rebase = self.fanout.rebase(node, request.epoch, request.seq, request.digest, now)
            if rebase is not None:  # the view of another epoch is this one's: no operations
                return [rebase]
        if self.fanout.serve(node, now):
            log.info("serving node %s (asked for a snapshot)", node)
        compact = COMPACT_ENDPOINTS in request.accept
        cast = self.settings.casts and CAST in request.accept
        return self.fanout.snapshot(node, now, compact=compact, zstd=zstd, cast=cast)

    # -- casts -------------------------------------------------------------------------------
    async def _on_cast_request(self, request: CastRequest, subject: str, reply: str) -> None:
        """Publish the cast at the next round (an error reply if it is not kept: the
        consumer then asks for its snapshot again)."""
        if not self.synced or self._node_of(subject) is None:
            return
        if self.fanout.cast(request.id) is None:
            self.stats.unknown_casts += 1
            await self._reply(reply, [encode(ErrorReply(f"cast {request.id} is not kept"))])
            return
        self._casts_due[request.id] = None
        self._cast_wanted.set()

    async def _cast_loop(self) -> None:
        """Every cast asked for goes out once per round: a round starts ``cast_window``
        after the first request that finds none pending, and serves every request that came
        until then (a consumer subscribes to the cast's subject before it asks)."""
        subjects = self.bus.subjects
        while True:
            await self._cast_wanted.wait()
            await self.clock.sleep(self.settings.cast_window)
            self._cast_wanted.clear()
            due, self._casts_due = self._casts_due, {}
            for id in due:
                messages = self.fanout.cast(id)
                if messages is None:
                    continue  # dropped since: its consumers time out and ask again
                self.fanout.stats.cast_rounds += 1
                self.fanout.stats.cast_bytes += sum(len(m) for m in messages)
                await self._reply(subjects.cast(id), messages)

    async def _reply(self, reply: str, chunks: list[bytes]) -> None:
        for i, chunk in enumerate(chunks):
            if not self.gate():  # the lease lost in the middle of a long reply
                self.stats.fenced_messages += len(chunks) - i
                return
            try:
                await self.bus.publish(reply, chunk)
            except BusError as exc:
                log.error("snapshot reply: %s", exc)
                return


def _worth_logging(count: int) -> bool:
    """The 1st, 2nd, 4th, 8th... occurrence: a flood logs ~20 lines per million."""
    return count & (count - 1) == 0
