"""Which nodes have programmed a service's latest version.

The observer follows every node's delta subject. For each node it remembers the (epoch, seq)
of the node delta that last carried a change to each service (its ``svc``/``-svc``/``ep``/
``-ep`` operations). Services a node got no delta for since the observer started were last
changed at or before the first position seen for that node (its baseline). A node has
programmed a service when its agent's applied (epoch, seq) reaches that position.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from kpng.diff import Op, service_keys


@dataclass(slots=True)
class NodeChanges:
    epoch: str
    baseline: int
    changed: dict[str, int] = field(default_factory=dict)

    def required(self, key: str) -> int:
        """The seq a node must have applied to have this service's latest version."""
        return self.changed.get(key, self.baseline)


@dataclass(slots=True)
class ProgrammingTracker:
    nodes: dict[str, NodeChanges] = field(default_factory=dict)

    def _at(self, node: str, epoch: str, baseline: int) -> NodeChanges:
        known = self.nodes.get(node)
        if known is None or known.epoch != epoch:
            known = self.nodes[node] = NodeChanges(epoch, baseline)
        return known

    def note_delta(self, node: str, epoch: str, seq: int, ops: Iterable[Op[Any]]) -> None:
        changes = self._at(node, epoch, seq - 1)
        for key in service_keys(ops):
            changes.changed[key] = max(seq, changes.changed.get(key, -1))

    def note_tick(self, node: str, epoch: str, seq: int) -> None:
        self._at(node, epoch, seq)

    def forget(self, node: str) -> None:
        self.nodes.pop(node, None)

    def service_state(
        self, key: str, applied: dict[str, tuple[str, int] | None]
    ) -> list[dict[str, Any]]:
        """Per node: the position carrying the service's latest version, and whether the
        node has applied it (None when the observer cannot tell yet)."""
        out = []
        for node in sorted(set(self.nodes) | set(applied)):
            changes = self.nodes.get(node)
            position = applied.get(node)
            entry: dict[str, Any] = {
                "node": node,
                "epoch": changes.epoch if changes else None,
                "requiredSeq": changes.required(key) if changes else None,
                "appliedEpoch": position[0] if position else None,
                "appliedSeq": position[1] if position else None,
                "programmed": None,
            }
            if changes is not None and position is not None:
                entry["programmed"] = position[0] == changes.epoch and position[1] >= (
                    changes.required(key)
                )
            out.append(entry)
        return out
