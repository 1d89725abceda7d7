"""The cluster model a watcher keeps: services, endpoint slices and nodes, and what changed.

Pure and synchronous. Sources feed it objects; it answers which services and nodes changed
so that only their views are recomputed, and builds node views and the global view.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from kpng.diff import View
from kpng.fanout.views import merge_slices, service_view
from kpng.model import Endpoint, EndpointSlice, Node, Object, Service, ViewEndpoint


@dataclass(slots=True)
class Changes:
    """Service keys and node names whose state changed, and the earliest trigger time."""

    services: set[str] = field(default_factory=set)
    nodes: set[str] = field(default_factory=set)
    trigger_time: float | None = None

    def __bool__(self) -> bool:
        return bool(self.services or self.nodes)

    def merge(self, other: Changes) -> None:
        self.services |= other.services
        self.nodes |= other.nodes
        self.note_trigger(other.trigger_time)

    def note_trigger(self, when: float | None) -> None:
        if when is not None and (self.trigger_time is None or when < self.trigger_time):
            self.trigger_time = when


@dataclass(frozen=True, slots=True)
class ServiceState:
    """One service as the views need it: the spec as node views carry it (None if unknown),
    merged endpoints, and the spec with its labels, for the global view."""

    service: Service | None
    endpoints: tuple[Endpoint, ...]
    labelled: Service | None = None

    @property
    def spec(self) -> Service | None:
        """The service as the global view carries it (with labels)."""
        return self.labelled if self.labelled is not None else self.service


class ClusterState:
    """Services, slices (kept even before their service arrives) and nodes."""

    def __init__(self) -> None:
        self.services: dict[str, Service] = {}
        self.slices: dict[str, EndpointSlice] = {}
        self.nodes: dict[str, Node] = {}
        self._slices_of: dict[str, set[str]] = {}
        self._merged: dict[str, tuple[Endpoint, ...]] = {}

    # -- changes -------------------------------------------------------------------------
    def upsert(self, obj: Object, now: float | None = None) -> Changes:
        """Add or replace an object; ``now`` stands in for a missing trigger time."""
        changes = Changes()
        if isinstance(obj, Service):
            if self.services.get(obj.key) != obj:
                self.services[obj.key] = obj
                changes.services.add(obj.key)
                changes.note_trigger(now)
        elif isinstance(obj, EndpointSlice):
            old = self.slices.get(obj.key)
            if old != obj:
                if old is not None and old.service_key != obj.service_key:
                    self._unlink(old)
                    changes.services.add(old.service_key)
                self.slices[obj.key] = obj
                self._slices_of.setdefault(obj.service_key, set()).add(obj.key)
                self._merged.pop(obj.service_key, None)
                changes.services.add(obj.service_key)
                changes.note_trigger(obj.trigger_time if obj.trigger_time is not None else now)
        elif self.nodes.get(obj.name) != obj:
            self.nodes[obj.name] = obj
            changes.nodes.add(obj.name)
        return changes

    def delete(self, kind: str, key: str, now: float | None = None) -> Changes:
        """Remove an object by kind (``Service``, ``EndpointSlice``, ``Node``) and key."""
        changes = Changes()
        if kind == "Service" and self.services.pop(key, None) is not None:
            changes.services.add(key)
        elif kind == "EndpointSlice" and (old := self.slices.pop(key, None)) is not None:
            self._unlink(old)
            changes.services.add(old.service_key)
        elif kind == "Node" and self.nodes.pop(key, None) is not None:
            changes.nodes.add(key)
        if changes:
            changes.note_trigger(now)
        return changes

    def replace(
        self,
        objects: Iterable[Object],
        now: float | None = None,
        kinds: Iterable[str] = ("Service", "EndpointSlice", "Node"),
    ) -> Changes:
        """Make the objects of ``kinds`` exactly ``objects``; only real differences count
        as changes (a relist that returns what we have changes nothing)."""
        wanted: dict[tuple[str, str], Object] = {}
        for obj in objects:
            wanted[(type(obj).__name__, _key(obj))] = obj
        changes = Changes()
        kinds = set(kinds)
        current = [("Service", k) for k in self.services if "Service" in kinds]
        current += [("EndpointSlice", k) for k in self.slices if "EndpointSlice" in kinds]
        current += [("Node", k) for k in self.nodes if "Node" in kinds]
        for kind, key in current:
            if (kind, key) not in wanted:
                changes.merge(self.delete(kind, key, now))
        for obj in wanted.values():
            changes.merge(self.upsert(obj, now))
        return changes

    def _unlink(self, old: EndpointSlice) -> None:
        names = self._slices_of.get(old.service_key)
        if names is not None:
            names.discard(old.key)
            if not names:
                del self._slices_of[old.service_key]
        self._merged.pop(old.service_key, None)

    # -- reading -------------------------------------------------------------------------
    def endpoints(self, service_key: str) -> tuple[Endpoint, ...]:
        merged = self._merged.get(service_key)
        if merged is None:
            names = sorted(self._slices_of.get(service_key, ()))
            merged = merge_slices(self.slices[name] for name in names)
            self._merged[service_key] = merged
        return merged

    def service_state(self, key: str) -> ServiceState:
        service = self.services.get(key)
        if service is None:
            return ServiceState(None, ())
        return ServiceState(service.without_labels(), self.endpoints(key), service)

    def zone_of(self, node: str) -> str:
        known = self.nodes.get(node)
        return known.zone if known is not None else ""

    def node_view(self, node: str) -> View[ViewEndpoint]:
        """Everything ``node`` must program."""
        zone = self.zone_of(node)
        view: View[ViewEndpoint] = View()
        for key, service in self.services.items():
            view.services[key] = service.without_labels()
            endpoints = service_view(service, self.endpoints(key), node, zone)
            if endpoints:
                view.endpoints[key] = {e.ip: e for e in endpoints}
        if node in self.nodes:
            view.nodes[node] = self.nodes[node]
        return view

    def global_view(self) -> View[Endpoint]:
        """The unfiltered model: every service with all its endpoints, and every node."""
        view: View[Endpoint] = View(services=dict(self.services), nodes=dict(self.nodes))
        for key in self.services:
            endpoints = self.endpoints(key)
            if endpoints:
                view.endpoints[key] = {e.ip: e for e in endpoints}
        return view


def _key(obj: Object) -> str:
    return obj.name if isinstance(obj, Node) else obj.key
