"""A batch of cluster changes as each served node's delta messages, each distinct list of
operations computed and encoded once.

A change to a service is computed once for all nodes that see it the same way (most
nodes), once per zone for topology-aware services, and once per node only for the few
nodes that hold its endpoints under a Local policy or that a node hint names; each
distinct list of operations is encoded once and shared by every node's message.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field
from typing import Any

from kpng.bus.codec import delta_head, encode_op
from kpng.diff import Op, diff_nodes, diff_service
from kpng.fanout.cluster import Changes, ClusterState, ServiceState
from kpng.fanout.history import History
from kpng.fanout.nodes import NodeRegistry
from kpng.fanout.oversize import oversize_op
from kpng.fanout.stats import FanoutStats
from kpng.fanout.views import service_view, special_nodes, view_variant
from kpng.model import Endpoint, Node, ViewEndpoint

EMPTY = ServiceState(None, ())
Packer = Callable[[list[bytes]], list[tuple[int, bytes]]]  # operations into runs that fit


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
class PendingOps:
    """Operations being gathered for one publish.

    Most nodes get the operations of their zone (``by_zone``, one shared list per zone and
    service); a node that is special to a service (``skip``) gets its own operations for it
    in ``per_node`` instead, beside its Node operations."""

    per_node: dict[str, list[bytes]] = field(default_factory=dict)
    skip: dict[str, set[str]] = field(default_factory=dict)
    by_zone: dict[str, list[tuple[str, list[bytes]]]] = field(default_factory=dict)
    global_ops: list[bytes] = field(default_factory=list)
    encoded: dict[tuple[Op[Any], ...], list[bytes]] = field(default_factory=dict)


@dataclass(slots=True)
class DeltaBuilder:
    """Builds one batch's messages; updates the state as published (``published``, the
    registry's Node objects and seqs, each node's catch-up ``history``) as it goes."""

    epoch: str
    registry: NodeRegistry
    published: dict[str, ServiceState]
    history: dict[str, History]
    stats: FanoutStats
    pack: Packer
    track: Callable[[str, ServiceState], None]  # a service's new state, for snapshots
    history_len: int = 256
    history_bytes: int = 8 * 1024 * 1024
    max_op: int = 1 << 20  # an operation must fit one message's operations
    # services whose latest version was refused (an operation over max_op): key -> size
    refused: dict[str, int] = field(default_factory=dict)
    # (key, size) of each refusal since the caller last took them, for its log
    refusals: list[tuple[str, int]] = field(default_factory=list)

    def node_messages(
        self, cluster: ClusterState, changes: Changes, now: float
    ) -> tuple[list[Outgoing], list[bytes]]:
        """Every served node's deltas, and the global view's operations (encoded)."""
        batch = PendingOps()
        for name in sorted(changes.nodes):
            self._node_changed(batch, name, cluster.nodes.get(name))
        zones = self.registry.by_zone()
        for key in sorted(changes.services):
            self._service_changed(batch, key, cluster.service_state(key), zones)
        out: list[Outgoing] = []
        for members in zones.values():
            out.extend(self._zone_messages(batch, members, now, changes.trigger_time))
        return out, batch.global_ops

    def _zone_messages(
        self, batch: PendingOps, members: list[str], now: float, trigger: float | None
    ) -> Iterator[Outgoing]:
        """The deltas of a zone's nodes: one shared list of operations, packed once into
        runs; a node with operations of its own gets them, and the shared ones it is not
        special to."""
        segments = batch.by_zone.get(self.registry.zone(members[0]), [])
        shared: list[tuple[int, bytes]] | None = None
        for node in members:
            skip = batch.skip.get(node)
            if skip is None and node not in batch.per_node:
                if shared is None:
                    shared = self.pack([op for _, ops in segments for op in ops])
                runs = shared
            else:
                ops = list(batch.per_node.get(node, ()))
                for key, encoded in segments:
                    if skip is None or key not in skip:
                        ops.extend(encoded)
                runs = self.pack(ops)
            history = self._history_of(node)
            for count, blob in runs:
                seq = self.registry.next_seq(node, now)
                head = delta_head(self.epoch, seq, now, trigger, count)
                if history is not None:
                    history.add(seq, count, blob, self.history_len, self.history_bytes)
                yield Outgoing(node, head, blob)

    def _history_of(self, node: str) -> History | None:
        if self.history_len <= 0:
            return None
        history = self.history.get(node)
        if history is None:
            history = self.history[node] = History()
        return history

    def _encode(self, batch: PendingOps, ops: list[Op[Any]]) -> list[bytes]:
        key = tuple(ops)
        encoded = batch.encoded.get(key)
        if encoded is None:
            encoded = [encode_op(op) for op in ops]
            self.stats.encodings += len(ops)
            batch.encoded[key] = encoded
        return encoded

    def _service_changed(
        self, batch: PendingOps, key: str, new: ServiceState, zones: dict[str, list[str]]
    ) -> None:
        if self.refuse(key, new):
            return  # the version as published stays: previous or none
        old = self.published.get(key, EMPTY)
        if new.service is None:
            self.published.pop(key, None)
        else:
            self.published[key] = new
        self.track(key, new)
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
            if node in self.registry.seq:
                zone = self.registry.zone(node)
                encoded = self._encode(batch, node_service_ops(key, old, new, node, zone))
                batch.skip.setdefault(node, set()).add(key)
                if encoded:
                    batch.per_node.setdefault(node, []).extend(encoded)
        by_variant: dict[Hashable, list[bytes]] = {}
        for zone in zones:  # every other node: its view of the service depends on its zone
            variant = _variant(old, new, "", zone)
            if variant not in by_variant:
                ops = node_service_ops(key, old, new, "", zone)
                by_variant[variant] = self._encode(batch, ops)
            if by_variant[variant]:
                batch.by_zone.setdefault(zone, []).append((key, by_variant[variant]))

    def refuse(self, key: str, state: ServiceState) -> bool:
        """Whether ``state`` cannot be published (an operation over ``max_op``): recorded
        in ``refused``, ``refusals`` and the stats."""
        size = oversize_op(state, self.max_op)
        if not size:
            self.refused.pop(key, None)
            return False
        self.refused[key] = size
        self.refusals.append((key, size))
        self.stats.refused_services += 1
        return True

    def _node_changed(self, batch: PendingOps, name: str, new: Node | None) -> None:
        old = self.registry.set_node(name, new)
        before, after = ({name: old} if old else {}), ({name: new} if new else {})
        global_ops: list[Op[Endpoint]] = diff_nodes(before, after)
        batch.global_ops.extend(self._encode(batch, list(global_ops)))
        if name not in self.registry.seq:
            return
        ops: list[Op[ViewEndpoint]] = diff_nodes(before, after)
        old_zone, new_zone = (old.zone if old else ""), (new.zone if new else "")
        if old_zone != new_zone:
            for key, state in sorted(self.published.items()):
                ops += _node_service_ops_zones(key, state, name, old_zone, new_zone)
        if ops:
            batch.per_node.setdefault(name, []).extend(self._encode(batch, list(ops)))


def _variant(old: ServiceState, new: ServiceState, node: str, zone: str) -> Hashable:
    """The variant of a node that is special to neither state (depends on its zone)."""
    return tuple(
        view_variant(s.service, s.endpoints, node, zone) if s.service else None for s in (old, new)
    )


def _view_of(state: ServiceState, node: str, zone: str) -> dict[str, ViewEndpoint]:
    if state.service is None:
        return {}
    return {e.ip: e for e in service_view(state.service, state.endpoints, node, zone)}


def node_service_ops(
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
