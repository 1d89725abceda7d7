"""The digest (:mod:`kpng.digest`) of every node view and of the global view, as published.

Kept per zone (every service as a node of the zone special to none of them sees it),
updated by each changed service for the zones computed so far; a node's digest is its
zone's, corrected for the few services it is special to, and its Node object. Ticks and
snapshot requests ask for it at the cost of a few lookups: each service's part is hashed once
per variant until it changes, and each node's correction is kept until one of the services
it is special to changes.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable

from kpng.digest import node_hash, service_hash, table_hash
from kpng.fanout.cluster import ServiceState
from kpng.fanout.views import service_view, view_variant
from kpng.model import Node


class ViewDigests:
    def __init__(self) -> None:
        self._states: dict[str, ServiceState] = {}  # the services as last published
        self._zones: dict[str, int] = {}  # zone: XOR of its services' parts
        self._parts: dict[str, dict[Hashable, int]] = {}  # key: variant: part
        self._global = 0  # XOR of the global view's services and endpoints
        self._fixes: dict[str, tuple[str, int]] = {}  # node: (zone, its own parts' correction)

    def track(self, key: str, new: ServiceState, special: Iterable[str] = ()) -> None:
        """A service's new state (``service`` None: deleted); ``special``: the nodes it was
        or is special to (their corrections are computed again)."""
        old = self._states.get(key)
        for node in special:
            self._fixes.pop(node, None)
        for zone in self._zones:
            self._zones[zone] ^= self._generic(key, old, zone)
        self._parts.pop(key, None)
        if old is not None:
            self._global ^= _global_part(key, old)
        if new.service is None:
            self._states.pop(key, None)
        else:
            self._states[key] = new
            self._global ^= _global_part(key, new)
        for zone in self._zones:
            self._zones[zone] ^= self._generic(key, self._states.get(key), zone)

    def node(self, name: str, zone: str, node: Node | None, specials: Iterable[str]) -> int:
        """The digest of ``name``'s view: its zone's, its own parts of the services in
        ``specials`` instead of the zone's, and its Node object."""
        fixed = self._fixes.get(name)
        if fixed is not None and fixed[0] == zone:
            fix = fixed[1]
        else:
            fix = 0
            for key in specials:
                state = self._states.get(key)
                if state is not None:
                    fix ^= self._generic(key, state, zone) ^ _part(key, state, name, zone)
            self._fixes[name] = (zone, fix)
        return self.zone(zone) ^ fix ^ (node_hash(node) if node is not None else 0)

    def zone(self, zone: str) -> int:
        d = self._zones.get(zone)
        if d is None:
            d = 0
            for key, state in self._states.items():
                d ^= self._generic(key, state, zone)
            self._zones[zone] = d
        return d

    def global_view(self, nodes: Iterable[Node]) -> int:
        d = self._global
        for node in nodes:
            d ^= node_hash(node)
        return d

    def _generic(self, key: str, state: ServiceState | None, zone: str) -> int:
        """A service as a node of ``zone`` special to it not sees it (once per variant)."""
        if state is None or state.service is None:
            return 0
        parts = self._parts.setdefault(key, {})
        part = parts.get(("zone", zone))
        if part is None:  # computed once per variant (most services: one for every zone)
            variant = ("variant", view_variant(state.service, state.endpoints, "", zone))
            part = parts.get(variant)
            if part is None:
                part = parts[variant] = _part(key, state, "", zone)
            parts[("zone", zone)] = part
        return part


def _part(key: str, state: ServiceState, node: str, zone: str) -> int:
    assert state.service is not None
    endpoints = service_view(state.service, state.endpoints, node, zone)
    return service_hash(state.service) ^ table_hash(key, endpoints)


def _global_part(key: str, state: ServiceState) -> int:
    spec = state.spec
    if spec is None:
        return 0
    return service_hash(spec) ^ table_hash(key, state.endpoints)
