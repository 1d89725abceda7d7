"""The digest (:mod:`kpng.digest`) of every node view and of the global view, as published.

Kept per zone (every service as a node of the zone special to none of them sees it),
updated by each changed service for the zones computed so far; a node's digest is its
zone's, corrected for the few services it is special to, and its Node object. Ticks and
snapshot requests ask for it at the cost of those few services, not of the view.
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

    def track(self, key: str, new: ServiceState) -> None:
        """A service's new state (``service`` None: deleted)."""
        old = self._states.get(key)
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
        d = self.zone(zone)
        for key in specials:
            state = self._states.get(key)
            if state is not None:
                d ^= self._generic(key, state, zone) ^ _part(key, state, name, zone)
        return d ^ (node_hash(node) if node is not None else 0)

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
        variant = view_variant(state.service, state.endpoints, "", zone)
        parts = self._parts.setdefault(key, {})
        part = parts.get(variant)
        if part is None:
            part = parts[variant] = _part(key, state, "", zone)
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
