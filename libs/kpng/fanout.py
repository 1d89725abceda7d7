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

from kpng.cluster import Changes, ClusterState, ServiceState
from kpng.codec import Tick, encode, encode_op, pack_delta, pack_snapshot_chunk
from kpng.diff import Op, SetEndpoint, SetNode, SetService, diff_nodes, diff_service
from kpng.model import Endpoint, Node, ViewEndpoint
from kpng.views import service_view, special_nodes, view_variant

_EMPTY = ServiceState(None, ())
_ENVELOPE = 160  # bytes reserved for a message's header fields around its operations


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message to publish: ``node`` None means the global subject."""

    node: str | None
    data: bytes


@dataclass(slots=True)
class FanoutStats:
    encodings: int = 0
    messages: int = 0
    bytes: int = 0
    node_messages: int = 0  # deltas on node subjects (messages and bytes count the global too)
    node_bytes: int = 0
    snapshots: int = 0
    snapshot_bytes: int = 0
    snapshot_cache_hits: int = 0


@dataclass(slots=True)
class _Batch:
    """Operations per node being gathered for one publish."""

    per_node: dict[str, list[bytes]] = field(default_factory=dict)
    global_ops: list[bytes] = field(default_factory=list)
    encoded: dict[tuple[Op[Any], ...], list[bytes]] = field(default_factory=dict)


class Fanout:
    """Per-node sequence numbers, the state as last published, and the message builder."""

    def __init__(self, epoch: str, max_payload: int = 1024 * 1024) -> None:
        self.epoch = epoch
        self.max_payload = max_payload
        self.seq: dict[str, int] = {}
        self.global_seq = 0
        self.stats = FanoutStats()
        self._published: dict[str, ServiceState] = {}
        self._nodes: dict[str, Node] = {}
        self._snapshot_cache: dict[str, dict[Hashable, list[bytes]]] = {}
        self._last_seen: dict[str, float] = {}
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
            self._published[key] = cluster.service_state(key)

    # -- deltas ------------------------------------------------------------------------------
    def publish(self, cluster: ClusterState, changes: Changes, now: float) -> list[Outgoing]:
        """Messages that move every served node (and the global view) to ``cluster``."""
        for name in changes.nodes:
            if name in cluster.nodes:
                self.serve(name)
        batch = _Batch()
        for name in sorted(changes.nodes):
            self._node_changed(batch, name, cluster.nodes.get(name))
        for key in sorted(changes.services):
            self._service_changed(batch, key, cluster.service_state(key))
        trigger = changes.trigger_time
        out: list[Outgoing] = []
        for node, ops in batch.per_node.items():
            for part in self._split(ops):
                self.seq[node] += 1
                out.append(
                    Outgoing(node, pack_delta(self.epoch, self.seq[node], now, trigger, part))
                )
        self.stats.node_messages += len(out)
        self.stats.node_bytes += sum(len(o.data) for o in out)
        for part in self._split(batch.global_ops):
            self.global_seq += 1
            out.append(Outgoing(None, pack_delta(self.epoch, self.global_seq, now, trigger, part)))
        self.stats.messages += len(out)
        self.stats.bytes += sum(len(o.data) for o in out)
        return out

    def _encode(self, batch: _Batch, ops: list[Op[Any]]) -> list[bytes]:
        key = tuple(ops)
        encoded = batch.encoded.get(key)
        if encoded is None:
            encoded = [encode_op(op) for op in ops]
            self.stats.encodings += len(ops)
            batch.encoded[key] = encoded
        return encoded

    def _service_changed(self, batch: _Batch, key: str, new: ServiceState) -> None:
        old = self._published.get(key, _EMPTY)
        if new.service is None:
            self._published.pop(key, None)
        else:
            self._published[key] = new
        self._snapshot_cache.pop(key, None)
        global_ops: list[Op[Endpoint]] = diff_service(
            key,
            old.service,
            {e.ip: e for e in old.endpoints},
            new.service,
            {e.ip: e for e in new.endpoints},
        )
        batch.global_ops.extend(self._encode(batch, list(global_ops)))
        special: set[str] = set()
        for state in (old, new):
            if state.service is not None:
                special |= special_nodes(state.service, state.endpoints)
        by_variant: dict[Hashable, list[bytes]] = {}
        by_zone: dict[str, Hashable] = {}
        for node in self.seq:
            zone = self.zone(node)
            if node in special:
                variant: Hashable = ("node", node)
            elif (variant := by_zone.get(zone)) is None:
                variant = by_zone[zone] = self._variant(old, new, node, zone)
            encoded = by_variant.get(variant)
            if encoded is None:
                encoded = self._encode(batch, _node_service_ops(key, old, new, node, zone))
                by_variant[variant] = encoded
            if encoded:
                batch.per_node.setdefault(node, []).extend(encoded)

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

    def _split(self, ops: list[bytes]) -> Iterator[list[bytes]]:
        """Operations in runs that fit the server's max payload (never an empty run)."""
        limit = max(self.max_payload - _ENVELOPE, 1)
        part: list[bytes] = []
        size = 0
        for op in ops:
            if part and size + len(op) > limit:
                yield part
                part, size = [], 0
            part.append(op)
            size += len(op)
        if part:
            yield part

    # -- snapshots and ticks -----------------------------------------------------------------
    def snapshot(self, node: str, now: float = 0.0) -> list[bytes]:
        """The node's whole view at its current seq, as chunks under the max payload."""
        self.serve(node, now)
        self.stats.snapshots += 1
        zone = self.zone(node)
        ops: list[bytes] = []
        for key, state in self._published.items():
            assert state.service is not None
            variant = view_variant(state.service, state.endpoints, node, zone)
            cached = self._snapshot_cache.setdefault(key, {})
            encoded = cached.get(variant)
            if encoded is None:
                view = service_view(state.service, state.endpoints, node, zone)
                encoded = _encode_service(state, view)
                self.stats.encodings += len(encoded)
                cached[variant] = encoded
            else:
                self.stats.snapshot_cache_hits += 1
            ops.extend(encoded)
        if node in self._nodes:
            ops.append(encode_op(SetNode(self._nodes[node])))
        chunks = self._chunks(self.seq[node], ops)
        self.stats.snapshot_bytes += sum(len(c) for c in chunks)
        return chunks

    def global_snapshot(self) -> list[bytes]:
        ops: list[bytes] = []
        for state in self._published.values():
            ops.extend(_encode_service(state, state.endpoints))
        ops.extend(encode_op(SetNode(n)) for n in self._nodes.values())
        return self._chunks(self.global_seq, ops)

    def _chunks(self, seq: int, ops: list[bytes]) -> list[bytes]:
        parts = list(self._split(ops)) or [[]]
        return [
            pack_snapshot_chunk(self.epoch, seq, i, len(parts), part)
            for i, part in enumerate(parts)
        ]

    def ticks(self, now: float) -> list[Outgoing]:
        """Idle ticks carrying each node's current seq (so a lost last delta is noticed)."""
        out = [Outgoing(node, encode(Tick(self.epoch, seq, now))) for node, seq in self.seq.items()]
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


def _encode_service(
    state: ServiceState, endpoints: Iterable[Endpoint | ViewEndpoint]
) -> list[bytes]:
    assert state.service is not None
    out = [encode_op(SetService(state.service))]
    out.extend(encode_op(SetEndpoint(state.service.key, e)) for e in endpoints)
    return out
