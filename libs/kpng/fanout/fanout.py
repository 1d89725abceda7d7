"""Turning cluster changes into each node's bus messages, computing each distinct view once.

Pure: the watcher feeds it the cluster state and what changed, and publishes the bytes it
returns. The parts: which nodes are served and their seqs (:mod:`kpng.fanout.nodes`), a
batch's deltas (:mod:`kpng.fanout.deltas`), snapshots from blocks a zone's nodes share
(:mod:`kpng.fanout.snapshots`), and each node's catch-up history
(:mod:`kpng.fanout.history`).
"""

from __future__ import annotations

from collections.abc import Iterable

from kpng.bus.bounds import MAX_MESSAGE
from kpng.bus.codec import Tick, delta_head, encode, pack_snapshot_chunk
from kpng.bus.compression import MIN_SIZE
from kpng.digest import to_hex
from kpng.fanout.casts import CastStore
from kpng.fanout.cluster import Changes, ClusterState, ServiceState
from kpng.fanout.deltas import DeltaBuilder, Outgoing
from kpng.fanout.digests import ViewDigests
from kpng.fanout.history import History
from kpng.fanout.nodes import NodeRegistry, next_seq
from kpng.fanout.snapshots import ENVELOPE, Snapshots, chunk_messages, pack
from kpng.fanout.stats import FanoutStats

__all__ = ["Fanout", "FanoutStats", "Outgoing"]


class Fanout:
    """Per-node sequence numbers, the state as last published, and the message builder.

    Keeps, per node, a bounded history of the deltas it published (``history`` messages,
    ``history_bytes`` bytes of operations) to answer catch-up requests. Snapshot and
    catch-up runs of ``compress_min`` bytes or more go as zstd frames to consumers that
    accept them."""

    def __init__(
        self,
        epoch: str,
        max_payload: int = 1024 * 1024,
        history: int = 256,
        history_bytes: int = 8 * 1024 * 1024,
        compress_min: int = MIN_SIZE,
        max_unknown_nodes: int = 64,
    ) -> None:
        self.epoch = epoch
        self.max_payload = max_payload
        self.history = history
        self.history_bytes = history_bytes
        self.nodes = NodeRegistry(max_unknown_nodes)
        self.global_seq = 0
        self.stats = FanoutStats()
        self._history: dict[str, History] = {}
        self._published: dict[str, ServiceState] = {}
        self._snapshots = Snapshots(self._published, self.stats, compress_min)
        self.casts = CastStore(self.stats)
        self._digests = ViewDigests()
        self._global_chunks: dict[bool, list[bytes]] = {}  # by zstd
        # nodes whose consumer's last snapshot request did not accept every digest feature
        # (an agent of before one of them): their ticks carry no digest, their statuses are not
        # checked
        self.without_marks: set[str] = set()
        self._deltas = DeltaBuilder(
            epoch,
            self.nodes,
            self._published,
            self._history,
            self.stats,
            self._pack,
            self._track,
            history,
            history_bytes,
            max_op=self._limit,
        )

    @property
    def seq(self) -> dict[str, int]:
        """The served nodes and the seq each was last sent."""
        return self.nodes.seq

    # -- which nodes -------------------------------------------------------------------------
    def serve(self, node: str, now: float = 0.0) -> bool:
        """Publish ``node``'s view from now on; False if it was served already (see
        :meth:`NodeRegistry.serve`)."""
        return self.nodes.serve(node, now)

    def admits(self, node: str) -> bool:
        """Whether ``node`` is or may be served (see :meth:`NodeRegistry.admits`)."""
        return self.nodes.admits(node)

    def retire_idle(self, now: float, idle: float, keep: Iterable[str]) -> list[str]:
        """Stop publishing to idle nodes without a Node object (see
        :meth:`NodeRegistry.retire_idle`); their history goes: no catch-up across."""
        retired = self.nodes.retire_idle(now, idle, keep)
        for node in retired:
            self._history.pop(node, None)
            self.without_marks.discard(node)
        return retired

    def zone(self, node: str) -> str:
        return self.nodes.zone(node)

    def load(self, cluster: ClusterState) -> None:
        """Take the initial state as published without any message: every node starts at
        seq 0 with the full view, which agents fetch as a snapshot.

        Every node's digest is computed here (2.4 s at 1,000 nodes and 10,000 services x 10),
        then kept current by each change: a standby that takes over, or a restarted watcher,
        ticks every node and answers their rebase requests at once, not after computing them."""
        for name, node in cluster.nodes.items():
            self.serve(name)
            self.nodes.set_node(name, node)
        for key in cluster.services:
            state = cluster.service_state(key)
            if not self._deltas.refuse(key, state):
                self._published[key] = state
                self._track(key, state)
        for name in self.seq:
            self.node_digest(name)

    @property
    def refused(self) -> dict[str, int]:
        """Services whose latest version is refused, and the size of the operation that
        cannot fit a message (:mod:`kpng.fanout.oversize`); their previous version (or
        none) is what nodes see."""
        return self._deltas.refused

    def take_refusals(self) -> list[tuple[str, int]]:
        """(service, operation size) of each version refused since the last call."""
        refusals, self._deltas.refusals = self._deltas.refusals, []
        return refusals

    def _track(self, key: str, state: ServiceState) -> None:
        """A service's new state as published: for snapshots and digests."""
        special = set(self._snapshots.special_to(key))
        self._snapshots.track(key, state)
        self._digests.track(key, state, special | self._snapshots.special_to(key))

    # -- digests -----------------------------------------------------------------------------
    def holds_marks(self, node: str, accepted: bool) -> None:
        """Whether the consumer of ``node`` that asked for a snapshot accepts port marks,
        shortcut marks and the Node's newer fields (``"marks"``, ``"shortcut"``, ``"nodefields"``:
        ``kpng.bus.wire.DIGEST_FEATURES``). One that does not (an agent of before one of
        them) ignores them, so its digest of a view with such marks can never be the
        watcher's: checking it would resync it again and again. Until a consumer that accepts
        them asks, the node's ticks carry no digest (as an older watcher's) and its statuses
        are not checked."""
        if accepted:
            self.without_marks.discard(node)
        else:
            self.without_marks.add(node)

    def tick_digest(self, node: str) -> str:
        """The digest a tick of ``node`` carries: ``""`` for a consumer without marks."""
        return "" if node in self.without_marks else self.node_digest(node)

    def node_digest(self, node: str) -> str:
        """The digest of ``node``'s view at its current seq (16 hex digits)."""
        zone, obj = self.zone(node), self.nodes.nodes.get(node)
        return to_hex(self._digests.node(node, zone, obj, self._snapshots.specials(node)))

    def global_digest(self) -> str:
        return to_hex(self._digests.global_view(self.nodes.nodes.values()))

    def check(self, node: str, epoch: str, seq: int, digest: str, now: float) -> bytes | None:
        """A consumer of ``node`` reports its view at (``epoch``, ``seq``) with ``digest``
        (an agent's status): a tick to send it at once if that is not a view this epoch
        published (another epoch, a seq never sent, or another view at the current seq),
        else None."""
        current = self.seq.get(node)
        if current is None or not epoch:
            return None
        if epoch != self.epoch:  # a consumer of an earlier watcher: the new epoch at once
            return encode(Tick(self.epoch, current, now, self.tick_digest(node)))
        if seq < current:
            return None  # a lagging consumer: the ticks tell it
        unchecked = not digest or node in self.without_marks
        if seq == current and (unchecked or digest == self.node_digest(node)):
            return None
        return encode(Tick(self.epoch, current, now, self.tick_digest(node)))

    def global_rebase(self, epoch: str, seq: int, digest: str) -> bytes | None:
        """:meth:`rebase` for the global view."""
        if not digest or epoch == self.epoch or seq < 0 or digest != self.global_digest():
            return None
        self.stats.rebases += 1
        return pack_snapshot_chunk(self.epoch, self.global_seq, 0, 1, (), 0, seq, epoch)

    def rebase(
        self, node: str, epoch: str, seq: int, digest: str, now: float = 0.0
    ) -> bytes | None:
        """A consumer holds a view of ``node`` at (``epoch``, ``seq``) of another epoch with
        ``digest``: if that is this epoch's view of the node, the one chunk that moves it to
        the current (epoch, seq) without operations (a rebase); else None."""
        self.serve(node, now)
        if epoch == self.epoch or seq < 0 or digest != self.node_digest(node):
            return None
        self.stats.rebases += 1
        return pack_snapshot_chunk(self.epoch, self.seq[node], 0, 1, (), 0, seq, epoch)

    # -- deltas ------------------------------------------------------------------------------
    def publish(self, cluster: ClusterState, changes: Changes, now: float) -> list[Outgoing]:
        """Messages that move every served node (and the global view) to ``cluster``."""
        for name in changes.nodes:
            if name in cluster.nodes:
                self.serve(name)
        out, global_ops = self._deltas.node_messages(cluster, changes, now)
        self._global_chunks.clear()
        self.stats.node_messages += len(out)
        self.stats.node_bytes += sum(o.size for o in out)
        for count, run in self._pack(global_ops):
            self.global_seq = next_seq(self.global_seq, "global view")
            head = delta_head(self.epoch, self.global_seq, now, changes.trigger_time, count)
            out.append(Outgoing(None, head, run))
        self.stats.messages += len(out)
        self.stats.bytes += sum(o.size for o in out)
        return out

    def _pack(self, ops: list[bytes]) -> list[tuple[int, bytes]]:
        """Operations in runs that fit the server's max payload (never an empty run)."""
        return pack(((1, op) for op in ops), self._limit)

    @property
    def _limit(self) -> int:
        # consumers refuse messages beyond MAX_MESSAGE, whatever the server allows
        return max(min(self.max_payload, MAX_MESSAGE) - ENVELOPE, 1)

    # -- snapshots and ticks -----------------------------------------------------------------
    def snapshot(
        self,
        node: str,
        now: float = 0.0,
        compact: bool = False,
        zstd: bool = False,
        cast: bool = False,
    ) -> list[bytes]:
        """The node's whole view at its current seq, as chunks under the max payload: its
        zone's part (the same bytes for every node of the zone), then its own
        (:mod:`kpng.fanout.snapshots`). ``compact``: endpoints as ``eps`` operations;
        ``zstd``: large chunks compressed (``zops``); ``cast``: a large zone part as a cast
        the chunks name (:mod:`kpng.fanout.casts`, :meth:`cast`)."""
        self.serve(node, now)
        self.stats.snapshots += 1
        chunks = self._snapshots.node_chunks(
            self.epoch,
            self.seq[node],
            node,
            self.zone(node),
            self.nodes.nodes.get(node),
            compact,
            self._limit,
            zstd,
            self.casts if cast else None,
        )
        self.stats.snapshot_bytes += sum(len(c) for c in chunks)
        return chunks

    def cast(self, id: str) -> list[bytes] | None:
        """The messages of a cast offered lately (None: not, or no longer, kept)."""
        return self.casts.get(id)

    def catch_up(
        self, node: str, epoch: str, since: int, now: float = 0.0, zstd: bool = False
    ) -> list[bytes] | None:
        """What a consumer holding ``node``'s view at (``epoch``, ``since``) missed, as
        snapshot chunks based on ``since`` (none missed: one empty chunk); None when only a
        full snapshot will do: another epoch, a node not served until now (or served again
        after being retired), or a history that does not reach back to ``since``."""
        if self.serve(node, now) or epoch != self.epoch or not 0 <= since <= self.seq[node]:
            return None
        seq = self.seq[node]
        runs: list[tuple[int, bytes]] | None = []
        if since < seq:
            history = self._history.get(node)
            runs = history.since(since) if history is not None else None
        if runs is None:
            return None
        parts = self._snapshots.parts(pack(runs, self._limit), zstd)
        out = chunk_messages(self.epoch, seq, parts, base=since)
        self.stats.catchups += 1
        self.stats.catchup_bytes += sum(len(c) for c in out)
        return out

    def global_snapshot(self, zstd: bool = False) -> list[bytes]:
        """The global view's chunks, built once per encoding until something changes."""
        chunks = self._global_chunks.get(zstd)
        if chunks is None:
            chunks = self._global_chunks[zstd] = self._snapshots.global_chunks(
                self.epoch, self.global_seq, self.nodes.nodes.values(), self._limit, zstd
            )
        return chunks

    def ticks(self, now: float, quiet: float = 0.0, full: bool = True) -> list[Outgoing]:
        """Ticks carrying nodes' current seqs, so that a lost last delta is noticed: to the
        nodes :meth:`NodeRegistry.due_ticks` names, and to the global subject. At 5,000 quiet
        nodes that is no message a second instead of 5,000."""
        encoded: dict[tuple[int, str], bytes] = {}  # most nodes are at the same seq and view
        out = []
        for node, seq in self.nodes.due_ticks(now, quiet, full):
            digest = self.tick_digest(node)
            data = encoded.get((seq, digest))
            if data is None:
                data = encoded[(seq, digest)] = encode(Tick(self.epoch, seq, now, digest))
            out.append(Outgoing(node, data))
        tick = Tick(self.epoch, self.global_seq, now, self.global_digest())
        out.append(Outgoing(None, encode(tick)))
        return out
