"""Which nodes the fan-out serves, their sequence numbers, zones, and when to tick them.

Pure bookkeeping: no message is built here. A node is served from its Node object, or
while its agent asks for snapshots or reports status; an idle node without a Node object
is retired and comes back one seq further on (a gap for whoever still holds its view).
Nodes without a Node object are a bounded set (``max_unknown``): anyone on the bus can ask
for any name, and each served node costs a view, ticks and history.
"""

from __future__ import annotations

from collections.abc import Iterable

from kpng.bus.codec import MAX_SEQ
from kpng.model import Node


class SeqExhausted(RuntimeError):
    """A subject's seq would pass the contract's largest (2^53 - 1): the watcher stops, and
    its successor starts a new epoch (at 1,000 deltas a second, 285,000 years away)."""


def next_seq(seq: int, subject: str) -> int:
    """The seq after ``seq`` on ``subject``, never beyond :data:`MAX_SEQ`."""
    if seq >= MAX_SEQ:
        raise SeqExhausted(f"{subject}: seq {seq} is the largest the bus contract allows")
    return seq + 1


class NodeRegistry:
    def __init__(self, max_unknown: int = 64) -> None:
        self.max_unknown = max_unknown
        self.unknown: set[str] = set()  # the served nodes without a Node object
        self.seq: dict[str, int] = {}  # the served nodes and the seq each was last sent
        self.nodes: dict[str, Node] = {}  # the Node objects, as last published
        self._last_seen: dict[str, float] = {}
        self._last_delta: dict[str, float] = {}  # when each node was last sent a delta
        self._ticked: dict[str, int] = {}  # the seq each node's last tick carried
        self._retired: dict[str, int] = {}

    def serve(self, node: str, now: float = 0.0) -> bool:
        """Serve ``node`` from now on; False if it was served already. A new node starts at
        seq 0; a node served again after :meth:`retire_idle` one past its last seq."""
        self._last_seen[node] = max(now, self._last_seen.get(node, 0.0))
        if node in self.seq:
            return False
        self.seq[node] = next_seq(self._retired.pop(node, -1), f"node {node}")
        if node not in self.nodes:
            self.unknown.add(node)
        return True

    def admits(self, node: str) -> bool:
        """Whether a consumer asking for ``node`` is served: a node served already or with a
        Node object always, an unknown one while fewer than ``max_unknown`` are (they
        expire by :meth:`retire_idle`)."""
        return node in self.seq or node in self.nodes or len(self.unknown) < self.max_unknown

    def retire_idle(self, now: float, idle: float, keep: Iterable[str]) -> list[str]:
        """Stop serving nodes not in ``keep`` (the Node objects) that nobody has asked for,
        nor reported status for, in ``idle`` seconds; returns their names."""
        keep = set(keep)
        idle_nodes = [
            node
            for node in self.seq
            if node not in keep and now - self._last_seen.get(node, 0.0) > idle
        ]
        for node in idle_nodes:
            self._retired[node] = self.seq.pop(node)
            self.unknown.discard(node)
            self._last_delta.pop(node, None)
            self._ticked.pop(node, None)
        return idle_nodes

    def zone(self, node: str) -> str:
        known = self.nodes.get(node)
        return known.zone if known is not None else ""

    def set_node(self, name: str, node: Node | None) -> Node | None:
        """Record a Node object (None: deleted); returns the previous one."""
        old = self.nodes.get(name)
        if node is None:
            self.nodes.pop(name, None)
            if name in self.seq:
                self.unknown.add(name)
        else:
            self.nodes[name] = node
            self.unknown.discard(name)
        return old

    def by_zone(self) -> dict[str, list[str]]:
        """The served nodes, grouped by zone."""
        zones: dict[str, list[str]] = {}
        for node in self.seq:
            zones.setdefault(self.zone(node), []).append(node)
        return zones

    def next_seq(self, node: str, now: float) -> int:
        """The seq of a delta about to be sent to ``node``."""
        self._last_delta[node] = now
        self.seq[node] = next_seq(self.seq[node], f"node {node}")
        return self.seq[node]

    def due_ticks(self, now: float, quiet: float, full: bool) -> list[tuple[str, int]]:
        """(node, seq) of the nodes to tick: with ``full`` every served node; otherwise only
        those whose last delta, ``quiet`` seconds ago or more, no tick has followed yet (a
        delta lost before another shows as a gap, so only a burst's last needs a tick)."""
        due = []
        for node, seq in self.seq.items():
            if not full and (
                self._ticked.get(node) == seq or now - self._last_delta.get(node, 0.0) < quiet
            ):
                continue
            self._ticked[node] = seq
            due.append((node, seq))
        return due
