"""What the observer knows: the global view, each node's published and applied position,
latency samples, which node delta last changed each service, and the event log."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from kpng.bus.codec import Delta, Status, endpoint_to_wire, service_to_wire
from kpng.bus.consumer import Applied
from kpng.bus.watcher_status import WatcherStatus
from kpng.diff import View, service_keys
from kpng.labels import LabelSelector
from kpng.model import Endpoint
from kpng_observer.events import EventLog
from kpng_observer.latency import LatencyWindow
from kpng_observer.programming import ProgrammingTracker
from kpng_observer.trust import judge_position, status_ahead

NodeState = Literal["ok", "syncing", "lagging", "diverged", "failed", "silent", "unknown"]


@dataclass(slots=True)
class NodeProgress:
    name: str
    published_epoch: str = ""
    published_seq: int = -1
    published_at: float | None = None
    published_digest: str = ""  # the view's digest at the published seq, from its ticks
    status: Status | None = None
    status_received_at: float | None = None
    behind_since: float | None = None
    first_seen: float | None = None
    # a tick, delta or status said a seq beyond the published one (not stored): refreshing
    ahead: bool = False
    last_heard: float = 0.0  # anything about this node (an unknown one expires without)

    @property
    def behind(self) -> bool:
        """The watcher published something this node's agent has not applied (yet)."""
        if not self.published_epoch:
            return False
        status = self.status
        return status is None or (status.epoch, status.seq) != (
            self.published_epoch,
            self.published_seq,
        )

    @property
    def diverged(self) -> bool:
        """The agent's view at the published (epoch, seq) is not the watcher's (digests)."""
        status = self.status
        return (
            status is not None
            and bool(status.digest and self.published_digest)
            and (status.epoch, status.seq) == (self.published_epoch, self.published_seq)
            and status.digest != self.published_digest
        )

    def update_lag(self, now: float) -> None:
        if not self.behind:
            self.behind_since = None
        elif self.behind_since is None:
            self.behind_since = now

    def silent(self, now: float, silent_after: float) -> bool:
        last = self.status_received_at or self.first_seen
        return last is None or now - last > silent_after

    def state(self, now: float, silent_after: float, lag_after: float) -> NodeState:
        if self.status is None and self.published_at is None:
            return "unknown"
        if self.silent(now, silent_after):
            return "silent"
        if self.status is None:
            return "unknown"  # published to, no status yet, not silent for long enough
        if self.status.errors:
            return "failed"
        if self.diverged:
            return "diverged"
        if not self.status.healthy:
            return "syncing"  # no error: its view is being (re)synced
        if self.behind_since is not None and now - self.behind_since >= lag_after:
            return "lagging"
        return "ok"

    def lag_json(self, now: float) -> dict[str, Any] | None:
        if self.behind_since is None:
            return None
        status = self.status
        seqs = None
        if status is not None and status.epoch == self.published_epoch:
            seqs = self.published_seq - status.seq
        return {
            "seqs": seqs,
            "since": self.behind_since,
            "seconds": round(now - self.behind_since, 3),
        }

    def to_json(self, now: float, silent_after: float, lag_after: float) -> dict[str, Any]:
        status = self.status
        return {
            "name": self.name,
            "state": self.state(now, silent_after, lag_after),
            "published": {"epoch": self.published_epoch, "seq": self.published_seq},
            "applied": None if status is None else _status_json(status),
            "inSync": status is not None
            and not self.behind
            and not self.diverged
            and not self.ahead,
            "diverged": self.diverged,
            "ahead": self.ahead,
            "lag": self.lag_json(now),
            "silent": self.silent(now, silent_after),
            "lastStatusAge": None
            if self.status_received_at is None
            else round(now - self.status_received_at, 3),
        }


def _status_json(status: Status) -> dict[str, Any]:
    return {
        "epoch": status.epoch,
        "seq": status.seq,
        "backend": status.backend,
        "healthy": status.healthy,
        "lastSync": status.last_sync,
        "syncDuration": status.sync_duration,
        "counts": status.counts,
        "errors": list(status.errors),
        "warnings": list(status.warnings),
        "version": status.version,
    }


@dataclass(slots=True)
class ObserverState:
    silent_after: float = 15.0
    lag_after: float = 1.0
    view: View[Endpoint] = field(default_factory=View)
    epoch: str = ""
    seq: int = -1
    snapshot_received: bool = False
    nodes: dict[str, NodeProgress] = field(default_factory=dict)
    malformed: int = 0
    latency: LatencyWindow = field(default_factory=LatencyWindow)
    programming: ProgrammingTracker = field(default_factory=ProgrammingTracker)
    events: EventLog = field(default_factory=EventLog)
    node_states: dict[str, NodeState] = field(default_factory=dict)
    diverged: int = 0  # times a node's view was seen to differ from the watcher's
    # trust (see kpng_observer.trust): positions and statuses not believed, and why
    ahead: int = 0  # ticks, deltas and statuses beyond a node's published seq
    untrusted_statuses: int = 0  # a status on another node's subject
    # nodes neither in the cluster nor published to (statuses from anyone): bounded, expiring
    max_unknown_nodes: int = 256
    unknown_node_ttl: float = 60.0
    unknown_nodes_dropped: int = 0
    refresh: set[str] = field(default_factory=set)  # nodes whose position to ask the watcher
    # watcher liveness: anything on the global subject (ticks come every tick interval)
    watcher_gone_after: float = 3.0
    watcher_heard_at: float | None = None
    watcher_status: WatcherStatus | None = None  # what it last said of itself

    def note_watcher_status(self, status: WatcherStatus, now: float) -> None:
        previous = self.watcher_status
        self.watcher_status, self.watcher_heard_at = status, now
        if previous is None or previous.reload_held != status.reload_held:
            self.events.append("watcher", now, status.to_json())

    def watcher_json(self, now: float) -> dict[str, Any]:
        status = self.watcher_status
        return {
            "state": self.watcher_state(now),
            "status": None if status is None else status.to_json(),
        }

    def watcher_state(self, now: float) -> Literal["ok", "gone", "unknown"]:
        if self.watcher_heard_at is None:
            return "unknown"
        return "gone" if now - self.watcher_heard_at > self.watcher_gone_after else "ok"

    def unknown(self, name: str) -> bool:
        progress = self.nodes.get(name)
        published = progress is not None and bool(progress.published_epoch)
        return name not in self.view.nodes and not published

    def admits(self, name: str) -> bool:
        """Whether a message about ``name`` may be tracked: known nodes always, unknown ones
        while fewer than ``max_unknown_nodes`` are."""
        if name in self.nodes or name in self.view.nodes:
            return True
        unknown = sum(1 for n in self.nodes if self.unknown(n))
        if unknown < self.max_unknown_nodes:
            return True
        self.unknown_nodes_dropped += 1
        return False

    def node(self, name: str, now: float | None = None) -> NodeProgress:
        progress = self.nodes.get(name)
        if progress is None:
            progress = self.nodes[name] = NodeProgress(name, first_seen=now)
        return progress

    # -- inputs ------------------------------------------------------------------------------
    def note_global(self, event: Applied[Endpoint], now: float) -> None:
        self.view, self.epoch, self.seq = event.view, event.epoch, event.seq
        self.snapshot_received = True
        if event.kind == "snapshot":
            data: dict[str, Any] = {"epoch": event.epoch, "seq": event.seq, **event.view.counts()}
            self.events.append("snapshot", now, data)
            return
        keys = sorted(service_keys(event.ops))
        data = {
            "epoch": event.epoch,
            "seq": event.seq,
            "published": event.time,
            "trigger": event.trigger_time,
            "ops": len(event.ops),
            "services": keys[:50],
            "nodesChanged": any(type(op).__name__.endswith("Node") for op in event.ops),
        }
        self.events.append("delta", now, data)

    def believes(self, name: str, epoch: str, seq: int, now: float, delta: bool) -> bool:
        """Whether a delta's or tick's position for ``name`` is believable (see
        :func:`~kpng_observer.trust.judge_position`); if not, it is flagged and refreshed."""
        progress = self.node(name, now)
        known = (progress.published_epoch, progress.published_seq)
        if judge_position(known, (epoch, seq), self.epoch, delta) != "ahead":
            return True
        self.ahead += 1
        progress.ahead = True
        self.refresh.add(name)
        self._transition(progress, now)
        return False

    def note_tick(self, name: str, epoch: str, seq: int, now: float, digest: str = "") -> None:
        if self.believes(name, epoch, seq, now, delta=False):
            self.note_published(name, epoch, seq, now, digest)

    def set_published(self, name: str, epoch: str, seq: int, now: float) -> None:
        """The node's position as the watcher answered it (a refresh): believed as it is."""
        progress = self.node(name, now)
        progress.published_epoch, progress.published_seq = epoch, seq
        progress.published_at, progress.ahead = now, False
        progress.update_lag(now)
        self._transition(progress, now)

    def note_published(self, name: str, epoch: str, seq: int, now: float, digest: str = "") -> None:
        """A delta or tick of ``name``'s view; a tick's ``digest`` is the view's at ``seq``."""
        progress = self.node(name, now)
        progress.last_heard = now
        if epoch != progress.published_epoch or seq > progress.published_seq:
            progress.published_epoch, progress.published_seq = epoch, seq
            progress.published_at = now
            progress.published_digest = ""
            progress.ahead = False
        if digest and (epoch, seq) == (progress.published_epoch, progress.published_seq):
            progress.published_digest = digest
        progress.update_lag(now)
        self.programming.note_tick(name, epoch, seq)
        self._transition(progress, now)

    def note_node_delta(self, name: str, delta: Delta, now: float) -> None:
        if not self.believes(name, delta.epoch, delta.seq, now, delta=True):
            return
        self.programming.note_delta(name, delta.epoch, delta.seq, delta.ops)
        self.note_published(name, delta.epoch, delta.seq, now)

    def note_status(self, status: Status, now: float) -> list[float]:
        """Record a status; returns the latency samples it brought that were not seen yet."""
        progress = self.node(status.node, now)
        previous = progress.status
        progress.status, progress.status_received_at = status, now
        progress.last_heard = now
        known = (progress.published_epoch, progress.published_seq)
        if status_ahead(known, (status.epoch, status.seq)):
            self.ahead += 1
            progress.ahead = True
            self.refresh.add(status.node)
        progress.update_lag(now)
        new = self.latency.add(status.node, status.latency, now)
        if previous is None or _summary(previous) != _summary(status):
            self.events.append("status", now, {"node": status.node, **_summary(status)})
        self._transition(progress, now)
        return new

    def sweep(self, now: float) -> None:
        """Notice nodes going silent (nothing else happens when a node stops talking)."""
        for name, progress in list(self.nodes.items()):
            if self.unknown(name) and now - progress.last_heard > self.unknown_node_ttl:
                self.forget(name)
                continue
            self._transition(progress, now)

    def forget(self, name: str) -> None:
        self.nodes.pop(name, None)
        self.node_states.pop(name, None)
        self.refresh.discard(name)

    def _transition(self, progress: NodeProgress, now: float) -> None:
        state = progress.state(now, self.silent_after, self.lag_after)
        previous = self.node_states.get(progress.name)
        if state != previous:
            self.diverged += state == "diverged"
            self.node_states[progress.name] = state
            data = {"node": progress.name, "state": state, "previous": previous}
            self.events.append("node", now, data)

    # -- outputs -----------------------------------------------------------------------------
    def services_json(
        self,
        namespace: str | None = None,
        type_: str | None = None,
        name: str | None = None,
        labels: LabelSelector | None = None,
    ) -> list[dict[str, Any]]:
        return [
            self.service_json(key)
            for key, service in sorted(self.view.services.items())
            if (namespace is None or service.namespace == namespace)
            and (type_ is None or service.type.value == type_)
            and (name is None or name in service.name)
            and (labels is None or labels.matches(dict(service.labels)))
        ]

    def service_json(self, key: str) -> dict[str, Any]:
        entry = service_to_wire(self.view.services[key])
        endpoints = self.view.endpoints_of(key)
        entry["endpoints"] = [endpoint_to_wire(endpoints[ip]) for ip in sorted(endpoints)]
        entry["endpointCounts"] = {
            "total": len(endpoints),
            "ready": sum(1 for e in endpoints.values() if e.ready),
            "usable": sum(1 for e in endpoints.values() if e.usable),
        }
        return entry

    def applied_positions(self) -> dict[str, tuple[str, int] | None]:
        return {
            name: (p.status.epoch, p.status.seq) if p.status is not None else None
            for name, p in self.nodes.items()
        }

    def nodes_json(self, now: float) -> list[dict[str, Any]]:
        return [
            self.node_json(name, now) for name in sorted(set(self.nodes) | set(self.view.nodes))
        ]

    def node_json(self, name: str, now: float) -> dict[str, Any]:
        entry = self.node(name).to_json(now, self.silent_after, self.lag_after)
        known = self.view.nodes.get(name)
        entry["zone"] = known.zone if known is not None else ""
        entry["addresses"] = list(known.addresses) if known is not None else []
        entry["inCluster"] = known is not None
        entry["podCIDRs"] = list(known.pod_cidrs) if known is not None else []
        entry["deleting"] = known is not None and known.deleting
        return entry


def _summary(status: Status) -> dict[str, Any]:
    return {
        "epoch": status.epoch,
        "seq": status.seq,
        "healthy": status.healthy,
        "errors": list(status.errors),
        "warnings": list(status.warnings),
        "backend": status.backend,
    }
