"""Which UDP conntrack entries are stale after a sync, pure (kube-proxy's conntrack
reconciler): an entry whose original destination is a service IP:port (cluster IP,
external IP, load-balancer IP) or a NodePort, and whose reply source is not one of that
service port's serving endpoints, keeps a UDP flow black-holed; it must be deleted.

Endpoints are compared by IP, as kube-proxy does. An entry that was never DNATed (its reply
comes from the service IP itself, e.g. sent before the service had endpoints) is stale too.
The plan is kept per service and updated for the services a delta touches, so that a delta
that changes no UDP service needs no conntrack work at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from kpng.diff import View
from kpng.model import Service, ServicePort, TransportProtocol, ViewEndpoint


@dataclass(frozen=True, slots=True)
class UdpEntry:
    """The parts of a conntrack entry the reconciler looks at."""

    family: int
    orig_dst: str
    orig_dport: int
    reply_src: str


@dataclass(frozen=True, slots=True)
class UdpPort:
    """One UDP port of a service: where its traffic arrives and who may answer it."""

    destinations: frozenset[tuple[str, int]]  # (service IP, port)
    node_port: int
    endpoints: frozenset[str]


def udp_ports(svc: Service, endpoints: Mapping[str, ViewEndpoint]) -> tuple[UdpPort, ...]:
    serving = frozenset(e.ip for e in endpoints.values() if e.internal or e.external or e.shortcut)
    marked = any(e.port_marks for e in endpoints.values())
    ips = (*svc.cluster_ips, *svc.external_ips, *svc.load_balancer_ips)
    return tuple(
        UdpPort(
            frozenset((ip, sp.port) for ip in ips),
            sp.node_port,
            _serving(sp, endpoints) if marked else serving,
        )
        for sp in svc.ports
        if sp.protocol is TransportProtocol.UDP
    )


def _serving(sp: ServicePort, endpoints: Mapping[str, ViewEndpoint]) -> frozenset[str]:
    """The endpoints marked for some traffic of the service port ``sp`` (its own marks)."""
    return frozenset(e.ip for e in endpoints.values() if any(e.all_marks(sp.name, sp.protocol)))


@dataclass(frozen=True, slots=True)
class Index:
    by_destination: Mapping[tuple[str, int], frozenset[str]]
    by_node_port: Mapping[int, frozenset[str]]

    def stale(self, e: UdpEntry) -> bool:
        allowed = self.by_destination.get((e.orig_dst, e.orig_dport))
        if allowed is None:
            allowed = self.by_node_port.get(e.orig_dport)
        return allowed is not None and e.reply_src not in allowed


@dataclass(slots=True)
class ConntrackPlan:
    """The UDP ports of every service, kept up to date sync by sync."""

    ports: dict[str, tuple[UdpPort, ...]] = field(default_factory=dict)

    def update(self, view: View[ViewEndpoint], keys: Iterable[str] | None = None) -> bool:
        """Recompute the services ``keys`` (all when None); True if a UDP port changed."""
        changed = False
        if keys is None:
            keys = set(view.services) | set(self.ports)
        for key in keys:
            svc = view.services.get(key)
            new = udp_ports(svc, view.endpoints_of(key)) if svc is not None else ()
            if new != self.ports.get(key, ()):
                changed = True
            if new:
                self.ports[key] = new
            else:
                self.ports.pop(key, None)
        return changed

    def index(self) -> Index:
        by_dst: dict[tuple[str, int], frozenset[str]] = {}
        by_np: dict[int, frozenset[str]] = {}
        for ports in self.ports.values():
            for p in ports:
                for d in p.destinations:
                    by_dst[d] = by_dst.get(d, frozenset()) | p.endpoints
                if p.node_port:
                    by_np[p.node_port] = by_np.get(p.node_port, frozenset()) | p.endpoints
        return Index(by_dst, by_np)


def stale_entries(index: Index, entries: Iterable[UdpEntry]) -> list[UdpEntry]:
    return [e for e in entries if index.stale(e)]
