"""Turning cluster changes into each node's bus messages, computing each distinct view once.

Pure: the watcher feeds it the cluster state and what changed, and publishes the bytes it
returns. A change to a service is computed once for all nodes that see it the same way
(most nodes), once per zone for topology-aware services, and once per node only for the
few nodes that hold its endpoints under a Local policy or that a node hint names; each
distinct list of operations is encoded once and shared by every node's message.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from kpng.bus.codec import Tick, delta_head, encode, encode_op
from kpng.bus.compression import MIN_SIZE
from kpng.diff import Op, diff_nodes, diff_service
from kpng.fanout.cluster import Changes, ClusterState, ServiceState
from kpng.fanout.history import History
from kpng.fanout.snapshots import ENVELOPE, Snapshots, chunk_messages, pack
from kpng.fanout.stats import FanoutStats
from kpng.fanout.views import service_view, special_nodes, view_variant
from kpng.model import Endpoint, Node, ViewEndpoint

_EMPTY = ServiceState(None, ())


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message to publish: ``node`` None means the global subject. A node's delta is
    kept as its own head and the run of operations its zone shares (``body``), joined only
    when published: a batch to 5,000 nodes holds one copy of the run, not 5,000."""

    node: str | None
    head: bytes
    body: bytes = b""

    @property
    def data(self) -> bytes:
        return self.head + self.body if self.body else self.head

    @property
    def size(self) -> int:
        return len(self.head) + len(self.body)


@dataclass(slots=True)
class _Batch:
    """Operations being gathered for one publish.

    Most nodes get the operations of their zone (``by_zone``, one shared list per zone and
    service); a node that is special to a service (``skip``) gets its own operations for it
    in ``per_node`` instead, beside its Node operations."""

    per_node: dict[str, list[bytes]] = field(default_factory=dict)
    skip: dict[str, set[str]] = field(default_factory=dict)
    by_zone: dict[str, list[tuple[str, list[bytes]]]] = field(default_factory=dict)
    global_ops: list[bytes] = field(default_factory=list)
    encoded: dict[tuple[Op[Any], ...], list[bytes]] = field(default_factory=dict)


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
    ) -> None:
        self.epoch = epoch
        self.max_payload = max_payload
        self.history = history
        self.history_bytes = history_bytes
        self._history: dict[str, History] = {}
        self.seq: dict[str, int] = {}
        self.global_seq = 0
        self.stats = FanoutStats()
        self._published: dict[str, ServiceState] = {}
        self._nodes: dict[str, Node] = {}
        self._snapshots = Snapshots(self._published, self.stats, compress_min)
        self._global_chunks: dict[bool, list[bytes]] = {}  # by zstd
        self._last_seen: dict[str, float] = {}
        self._last_delta: dict[str, float] = {}  # when each node was last sent a delta
        self._ticked: dict[str, int] = {}  # the seq each node's last tick carried
        self._retired: dict[str, int] = {}

    # -- which nodes -------------------------------------------------------------------------
    def serve(self, node: str, now: float = 0.0) -> bool:
        """Publish ``node``'s view from now on; False if it was served already.

        A new node starts at seq 0. A node served again after :meth:`retire_idle` continues
        one past its last seq, so that a consumer still holding the old view sees a gap.
        """
        self._last_seen[node] = max(now, self._last_seen.get(node, 0.0))
        if node in self.seq:
            return False
        self.seq[node] = self._retired.pop(node, -1) + 1
        return True

    def retire_idle(self, now: float, idle: float, keep: Iterable[str]) -> list[str]:
        """Stop publishing to nodes not in ``keep`` (the Node objects) that nobody has asked
        for, nor reported status for, in ``idle`` seconds; returns their names."""
        keep = set(keep)
        idle_nodes = [
            node
            for node in self.seq
            if node not in keep and now - self._last_seen.get(node, 0.0) > idle
        ]
        for node in idle_nodes:
            self._retired[node] = self.seq.pop(node)
            self._history.pop(node, None)  # its view moves on unseen: no catch-up across
            self._last_delta.pop(node, None)
            self._ticked.pop(node, None)
        return idle_nodes

    def zone(self, node: str) -> str:
        known = self._nodes.get(node)
        return known.zone if known is not None else ""

    def load(self, cluster: ClusterState) -> None:
        """Take the initial state as published without any message: every node starts at
        seq 0 with the full view, which agents fetch as a snapshot."""
        for name, node in cluster.nodes.items():
            self.serve(name)
            self._nodes[name] = node
        for key in cluster.services:
            self._published[key] = state = cluster.service_state(key)
            self._snapshots.track(key, state)

    # -- deltas ------------------------------------------------------------------------------
    def publish(self, cluster: ClusterState, changes: Changes, now: float) -> list[Outgoing]:
        """Messages that move every served node (and the global view) to ``cluster``."""
        for name in changes.nodes:
            if name in cluster.nodes:
                self.serve(name)
        batch = _Batch()
        for name in sorted(changes.nodes):
            self._node_changed(batch, name, cluster.nodes.get(name))
        zones: dict[str, list[str]] = {}
        for node in self.seq:
            zones.setdefault(self.zone(node), []).append(node)
        for key in sorted(changes.services):
            self._service_changed(batch, key, cluster.service_state(key), zones)
        self._global_chunks.clear()
        trigger = changes.trigger_time
        out: list[Outgoing] = []
        for members in zones.values():
            out.extend(self._zone_messages(batch, members, now, trigger))
        self.stats.node_messages += len(out)
        self.stats.node_bytes += sum(o.size for o in out)
        for count, run in self._pack(batch.global_ops):
            self.global_seq += 1
            head = delta_head(self.epoch, self.global_seq, now, trigger, count)
            out.append(Outgoing(None, head, run))
        self.stats.messages += len(out)
        self.stats.bytes += sum(o.size for o in out)
        return out

    def _zone_messages(
        self, batch: _Batch, members: list[str], now: float, trigger: float | None
    ) -> Iterator[Outgoing]:
        """The deltas of a zone's nodes: one shared list of operations, packed once into
        runs; a node with operations of its own gets them, and the shared ones it is not
        special to."""
        segments = batch.by_zone.get(self.zone(members[0]), [])
        shared: list[tuple[int, bytes]] | None = None
        for node in members:
            skip = batch.skip.get(node)
            if skip is None and node not in batch.per_node:
                if shared is None:
                    shared = self._pack([op for _, ops in segments for op in ops])
                runs = shared
            else:
                ops = list(batch.per_node.get(node, ()))
                for key, encoded in segments:
                    if skip is None or key not in skip:
                        ops.extend(encoded)
                runs = self._pack(ops)
            history = self._history.get(node) if self.history > 0 else None
            if history is None and self.history > 0:
                history = self._history[node] = History()
            for count, blob in runs:
                self._last_delta[node] = now
                self.seq[node] += 1
                head = delta_head(self.epoch, self.seq[node], now, trigger, count)
                if history is not None:
                    history.add(self.seq[node], count, blob, self.history, self.history_bytes)
                yield Outgoing(node, head, blob)

    def _encode(self, batch: _Batch, ops: list[Op[Any]]) -> list[bytes]:
        key = tuple(ops)
        encoded = batch.encoded.get(key)
        if encoded is None:
            encoded = [encode_op(op) for op in ops]
            self.stats.encodings += len(ops)
            batch.encoded[key] = encoded
        return encoded

    def _service_changed(
        self, batch: _Batch, key: str, new: ServiceState, zones: dict[str, list[str]]
    ) -> None:
        old = self._published.get(key, _EMPTY)
        if new.service is None:
            self._published.pop(key, None)
        else:
            self._published[key] = new
        self._snapshots.track(key, new)
        global_ops: list[Op[Endpoint]] = diff_service(
            key,
            old.spec,
            {e.ip: e for e in old.endpoints},
            new.spec,
            {e.ip: e for e in new.endpoints},
        )
        batch.global_ops.extend(self._encode(batch, list(global_ops)))
        special: set[str] = set()
        for state in (old, new):
            if state.service is not None:
                special |= special_nodes(state.service, state.endpoints)
        for node in special:
            if node in self.seq:
                zone = self.zone(node)
                encoded = self._encode(batch, _node_service_ops(key, old, new, node, zone))
                batch.skip.setdefault(node, set()).add(key)
                if encoded:
                    batch.per_node.setdefault(node, []).extend(encoded)
        by_variant: dict[Hashable, list[bytes]] = {}
        for zone in zones:  # every other node: its view of the service depends on its zone
            variant = self._variant(old, new, "", zone)
            if variant not in by_variant:
                ops = _node_service_ops(key, old, new, "", zone)
                by_variant[variant] = self._encode(batch, ops)
            if by_variant[variant]:
                batch.by_zone.setdefault(zone, []).append((key, by_variant[variant]))

    @staticmethod
    def _variant(old: ServiceState, new: ServiceState, node: str, zone: str) -> Hashable:
        """The variant of a node that is special to neither state (depends on its zone)."""
        return tuple(
            view_variant(s.service, s.endpoints, node, zone) if s.service else None
            for s in (old, new)
        )

    def _node_changed(self, batch: _Batch, name: str, new: Node | None) -> None:
        old = self._nodes.get(name)
        if new is None:
            self._nodes.pop(name, None)
        else:
            self._nodes[name] = new
        global_ops: list[Op[Endpoint]] = diff_nodes(
            {name: old} if old else {}, {name: new} if new else {}
        )
        batch.global_ops.extend(self._encode(batch, list(global_ops)))
        if name not in self.seq:
            return
        ops: list[Op[ViewEndpoint]] = diff_nodes(
            {name: old} if old else {}, {name: new} if new else {}
        )
        old_zone, new_zone = (old.zone if old else ""), (new.zone if new else "")
        if old_zone != new_zone:
            for key, state in sorted(self._published.items()):
                ops += _node_service_ops_zones(key, state, name, old_zone, new_zone)
        if ops:
            batch.per_node.setdefault(name, []).extend(self._encode(batch, list(ops)))

    def _pack(self, ops: list[bytes]) -> list[tuple[int, bytes]]:
        """Operations in runs that fit the server's max payload (never an empty run)."""
        return pack(((1, op) for op in ops), self._limit)

    @property
    def _limit(self) -> int:
        return max(self.max_payload - ENVELOPE, 1)

    # -- snapshots and ticks -----------------------------------------------------------------
    def snapshot(
        self, node: str, now: float = 0.0, compact: bool = False, zstd: bool = False
    ) -> list[bytes]:
        """The node's whole view at its current seq, as chunks under the max payload: its
        zone's part (the same bytes for every node of the zone), then its own
        (:mod:`kpng.fanout.snapshots`). ``compact``: endpoints as ``eps`` operations; ``zstd``:
        large chunks compressed (``zops``)."""
        self.serve(node, now)
        self.stats.snapshots += 1
        chunks = self._snapshots.node_chunks(
            self.epoch,
            self.seq[node],
            node,
            self.zone(node),
            self._nodes.get(node),
            compact,
            self._limit,
            zstd,
        )
        self.stats.snapshot_bytes += sum(len(c) for c in chunks)
        return chunks

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
                self.epoch, self.global_seq, self._nodes.values(), self._limit, zstd
            )
        return chunks

    def ticks(self, now: float, quiet: float = 0.0, full: bool = True) -> list[Outgoing]:
        """Ticks carrying nodes' current seqs, so that a lost last delta is noticed.

        ``full``: every served node (and the global subject). Otherwise only the nodes whose
        last delta, ``quiet`` seconds ago or more, no tick has followed yet: a delta lost
        before another delta shows as a gap, so only the last one of a burst needs a tick.
        At 5,000 quiet nodes that is no message a second instead of 5,000."""
        encoded: dict[int, bytes] = {}  # most nodes are at the same seq
        out = []
        for node, seq in self.seq.items():
            if not full and (
                self._ticked.get(node) == seq or now - self._last_delta.get(node, 0.0) < quiet
            ):
                continue
            self._ticked[node] = seq
            data = encoded.get(seq)
            if data is None:
                data = encoded[seq] = encode(Tick(self.epoch, seq, now))
            out.append(Outgoing(node, data))
        out.append(Outgoing(None, encode(Tick(self.epoch, self.global_seq, now))))
        return out


def _view_of(state: ServiceState, node: str, zone: str) -> dict[str, ViewEndpoint]:
    if state.service is None:
        return {}
    return {e.ip: e for e in service_view(state.service, state.endpoints, node, zone)}


def _node_service_ops(
    key: str, old: ServiceState, new: ServiceState, node: str, zone: str
) -> list[Op[Any]]:
    ops: list[Op[ViewEndpoint]] = diff_service(
        key, old.service, _view_of(old, node, zone), new.service, _view_of(new, node, zone)
    )
    return list(ops)


def _node_service_ops_zones(
    key: str, state: ServiceState, node: str, old_zone: str, new_zone: str
) -> list[Op[ViewEndpoint]]:
    before, after = _view_of(state, node, old_zone), _view_of(state, node, new_zone)
    return diff_service(key, state.service, before, state.service, after)
