"""What the observer knows: the global view, each node's published and applied position."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kpng.codec import Status, endpoint_to_wire, service_to_wire
from kpng.diff import View
from kpng.model import Endpoint


@dataclass(slots=True)
class NodeProgress:
    name: str
    published_epoch: str = ""
    published_seq: int = -1
    published_at: float | None = None
    status: Status | None = None
    status_received_at: float | None = None

    def to_json(self, now: float, silent_after: float) -> dict[str, Any]:
        status = self.status
        applied_seq = status.seq if status is not None else None
        applied_epoch = status.epoch if status is not None else None
        in_sync = (
            status is not None
            and applied_epoch == self.published_epoch
            and applied_seq == self.published_seq
        )
        silent = self.status_received_at is None or now - self.status_received_at > silent_after
        return {
            "name": self.name,
            "published": {"epoch": self.published_epoch, "seq": self.published_seq},
            "applied": None
            if status is None
            else {
                "epoch": status.epoch,
                "seq": status.seq,
                "backend": status.backend,
                "healthy": status.healthy,
                "lastSync": status.last_sync,
                "syncDuration": status.sync_duration,
                "counts": status.counts,
                "errors": list(status.errors),
                "version": status.version,
            },
            "inSync": in_sync,
            "silent": silent,
            "lastStatusAge": None
            if self.status_received_at is None
            else round(now - self.status_received_at, 3),
        }


@dataclass(slots=True)
class ObserverState:
    view: View[Endpoint] = field(default_factory=View)
    epoch: str = ""
    seq: int = -1
    snapshot_received: bool = False
    nodes: dict[str, NodeProgress] = field(default_factory=dict)
    malformed: int = 0

    def node(self, name: str) -> NodeProgress:
        progress = self.nodes.get(name)
        if progress is None:
            progress = self.nodes[name] = NodeProgress(name)
        return progress

    def note_published(self, name: str, epoch: str, seq: int, now: float) -> None:
        progress = self.node(name)
        if epoch != progress.published_epoch or seq > progress.published_seq:
            progress.published_epoch, progress.published_seq = epoch, seq
            progress.published_at = now

    def note_status(self, status: Status, now: float) -> None:
        progress = self.node(status.node)
        progress.status, progress.status_received_at = status, now

    def services_json(self, namespace: str | None = None) -> list[dict[str, Any]]:
        return [
            self.service_json(key)
            for key, service in sorted(self.view.services.items())
            if namespace is None or service.namespace == namespace
        ]

    def service_json(self, key: str) -> dict[str, Any]:
        entry = service_to_wire(self.view.services[key])
        endpoints = self.view.endpoints_of(key)
        entry["endpoints"] = [endpoint_to_wire(endpoints[ip]) for ip in sorted(endpoints)]
        return entry

    def nodes_json(self, now: float, silent_after: float) -> list[dict[str, Any]]:
        names = set(self.nodes) | set(self.view.nodes)
        out = []
        for name in sorted(names):
            entry = self.node(name).to_json(now, silent_after)
            known = self.view.nodes.get(name)
            entry["zone"] = known.zone if known is not None else ""
            entry["addresses"] = list(known.addresses) if known is not None else []
            out.append(entry)
        return out
