"""Views shared by the consumers of one process: the leading runs of snapshots that several
nodes' views have in common (a zone's part, the same bytes for every node of the zone) are
decoded and applied once, and each view is built on them copy-on-write
(:class:`SnapshotPrefixes`, :func:`apply_snapshot`). The observer and the scale bench follow
many nodes; an agent follows one and builds its view from scratch."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from kpng.diff import (
    E,
    InconsistentOp,
    Op,
    SetEndpoint,
    SetNode,
    SetService,
    View,
    apply_in_place,
)
from kpng.model import Node, Service


@dataclass(frozen=True, slots=True)
class Grouping:
    """A run of set operations (no deletes) by table, the later replacing the earlier;
    ``needs``: services its endpoints belong to that it does not set itself."""

    services: dict[str, Service]
    endpoints: dict[str, dict[str, Any]]
    nodes: dict[str, Node]
    needs: frozenset[str]


class SharedOps(tuple[Op[Any], ...]):
    """Decoded operations that several consumers of one process share (the same bytes
    decoded once by :class:`kpng.bus.codec.OpCache`): their :class:`Grouping` is computed once
    too, so that each consumer applies a snapshot chunk at the cost of copying it."""

    grouping: Grouping | None

    def grouped(self) -> Grouping | None:
        try:
            return self.grouping
        except AttributeError:
            self.grouping = group_sets(self)
            return self.grouping


def group_sets(ops: Iterable[Op[Any]]) -> Grouping | None:
    """``ops`` grouped by table; None if any is not a set operation."""
    services: dict[str, Service] = {}
    endpoints: dict[str, dict[str, Any]] = {}
    nodes: dict[str, Node] = {}
    needs: set[str] = set()
    for op in ops:
        if isinstance(op, SetEndpoint):
            if op.service not in services:
                needs.add(op.service)
            endpoints.setdefault(op.service, {})[op.endpoint.ip] = op.endpoint
        elif isinstance(op, SetService):
            services[op.service.key] = op.service
        elif isinstance(op, SetNode):
            nodes[op.node.name] = op.node
        else:
            return None
    return Grouping(services, endpoints, nodes, frozenset(needs))


class SnapshotPrefixes:
    """Views built from the leading runs of snapshots that several consumers of one process
    share (a zone's nodes get the same zone part, decoded once into :class:`SharedOps`), so
    that each consumer copies the view of those runs instead of merging them again. The
    last few are kept; an entry holds its runs, so their ids stay theirs while it lives."""

    def __init__(self, size: int = 8) -> None:
        self.size = size
        self.hits = 0
        # full snapshots applied with these prefixes: while it grows, their process is busy
        # with a storm (kpng.bus.client waits for it to stop before computing digests)
        self.snapshots = 0
        self._views: OrderedDict[tuple[int, ...], tuple[list[SharedOps], View[Any]]] = OrderedDict()

    def view(self, runs: list[SharedOps]) -> View[Any]:
        """The view of ``runs`` applied to an empty view: never change it, copy it."""
        key = tuple(id(r) for r in runs)
        entry = self._views.get(key)
        if entry is not None:
            self.hits += 1
            self._views.move_to_end(key)
            return entry[1]
        built: View[Any] = apply_snapshot(runs)
        self._views[key] = (runs, built)
        if len(self._views) > self.size:
            self._views.popitem(last=False)
        return built


def apply_snapshot(
    parts: Sequence[Sequence[Op[E]]], prefixes: SnapshotPrefixes | None = None
) -> View[E]:
    """A new view from a snapshot's runs of operations, applied in order (as
    :func:`apply_in_place` on an empty view would). A run of set operations only is applied
    by merging its grouping (cached for :class:`SharedOps`); any other run op by op.

    With ``prefixes``, the view of the leading shared runs (all but the last) is built once
    and copied, its endpoint tables shared copy-on-write."""
    view: View[E] = View()
    if prefixes is not None:
        prefixes.snapshots += 1
    lead = _shared_lead(parts) if prefixes is not None else []
    if prefixes is not None and len(lead) >= 2:
        base = prefixes.view(lead)
        tables = base.endpoints
        view = View(dict(base.services), dict(tables), dict(base.nodes), set(), tables)
        view.origin, view.changed = base, set()
        parts = parts[len(lead) :]
    for ops in parts:
        grouping = ops.grouped() if isinstance(ops, SharedOps) else group_sets(ops)
        if grouping is None:
            apply_in_place(ops, view)
            continue
        missing = [k for k in grouping.needs if k not in view.services]
        if missing:
            raise InconsistentOp(f"endpoint for unknown service {missing[0]}")
        view.services.update(grouping.services)
        tables = grouping.endpoints
        if view.changed is not None:  # a node's own part on its zone's: what to correct
            view.changed.update(grouping.services, tables)
        overlap = tables.keys() & view.endpoints.keys() if view.endpoints else set()
        fresh = {k: t for k, t in tables.items() if k not in overlap} if overlap else tables
        view.endpoints.update(fresh)
        if isinstance(ops, SharedOps):  # its tables are other views' too: copy on write
            view.shared.update(fresh)
        for key in overlap:  # a service whose endpoints began in an earlier run
            have = view.endpoints[key]
            if view.shares(key, have):
                have = view.endpoints[key] = dict(have)
                view.shared.discard(key)
            have.update(tables[key])
        view.nodes.update(grouping.nodes)
    return view


def _shared_lead(parts: Sequence[Sequence[Op[E]]]) -> list[SharedOps]:
    """The leading runs that are :class:`SharedOps` of set operations, the last run aside
    (a node's own part comes last)."""
    lead: list[SharedOps] = []
    for ops in parts[:-1]:
        if not isinstance(ops, SharedOps) or ops.grouped() is None:
            break
        lead.append(ops)
    return lead
