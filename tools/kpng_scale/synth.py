"""A synthetic cluster: N nodes across zones, S services with E endpoints each, and churn.

Deterministic for a seed. About 10% of the services use a Local traffic policy and 10%
topology hints (zone hints on every endpoint); a fifth are NodePorts. Churn changes one
endpoint of one service at a time: a pod replaced (new IP) or a readiness flip.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from kpng.model import (
    Endpoint,
    EndpointPort,
    EndpointSlice,
    Node,
    Service,
    ServicePort,
    ServiceType,
    TrafficPolicy,
    TransportProtocol,
)

ZONES = ("zone-a", "zone-b", "zone-c")
PORT = EndpointPort("http", TransportProtocol.TCP, 8080)


@dataclass(frozen=True, slots=True)
class Spec:
    nodes: int = 1000
    services: int = 10_000
    endpoints: int = 10
    seed: int = 1


def node_name(i: int) -> str:
    return f"node-{i:05d}"


def _ip(base: int, n: int) -> str:
    return f"{base}.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


def nodes(spec: Spec) -> list[Node]:
    return [
        Node(node_name(i), (_ip(10, i + 1),), ZONES[i % len(ZONES)], "region-1")
        for i in range(spec.nodes)
    ]


def node_independent(i: int) -> bool:
    return i % 10 not in (3, 7)


def service(i: int) -> Service:
    node_port = i % 5 == 0
    local = i % 10 == 3
    topology = i % 10 == 7
    return Service(
        namespace=f"ns-{i % 50}",
        name=f"svc-{i}",
        type=ServiceType.NODE_PORT if node_port else ServiceType.CLUSTER_IP,
        cluster_ips=(_ip(172, i + 1),),
        ports=(
            ServicePort(
                "http", TransportProtocol.TCP, 80, 8080, 30000 + i % 2000 if node_port else 0
            ),
        ),
        internal_traffic_policy=_policy(local and not node_port),
        external_traffic_policy=_policy(local and node_port),
        traffic_distribution="PreferClose" if topology else "",
    )


def _policy(local: bool) -> TrafficPolicy:
    return TrafficPolicy.LOCAL if local else TrafficPolicy.CLUSTER


class Cluster:
    """The objects, and the churn that changes them one endpoint at a time."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.rng = random.Random(spec.seed)
        self.nodes = nodes(spec)
        self._by_name = {n.name: n for n in self.nodes}
        self.services = [service(i) for i in range(spec.services)]
        self._next_ip = 1
        self.slices = [self._slice(s) for s in self.services]
        # every change made so far (its ``independent`` flag): replayed by a new watcher
        # process, it gives the same objects (a restarted watcher lists the same cluster)
        self.log: list[bool] = []

    def replay(self, log: list[bool]) -> None:
        """Make the changes of another Cluster's ``log`` (of the same spec): same objects."""
        for independent in log:
            self.change(0.0, independent)

    def objects(self) -> tuple[Node | Service | EndpointSlice, ...]:
        return (*self.nodes, *self.services, *self.slices)

    def _endpoint(self, topology: bool, node: Node | None = None) -> Endpoint:
        node = node or self.rng.choice(self.nodes)
        ip = _ip(100, self._next_ip)
        self._next_ip += 1
        hints = frozenset({node.zone}) if topology else frozenset()
        return Endpoint(ip, (PORT,), node.name, node.zone, zone_hints=hints)

    def _slice(self, s: Service) -> EndpointSlice:
        topology = bool(s.traffic_distribution)
        endpoints = tuple(self._endpoint(topology) for _ in range(self.spec.endpoints))
        return EndpointSlice(s.namespace, f"{s.name}-1", s.name, "IPv4", endpoints)

    def change(self, now: float, independent: bool = False) -> EndpointSlice:
        """One endpoint of a random service changes: replaced by a new pod, or readiness flips.

        ``independent``: only services that look the same on every node (no Local policy,
        no topology hints)."""
        self.log.append(independent)
        i = self.rng.randrange(len(self.slices))
        while independent and not node_independent(i):
            i = self.rng.randrange(len(self.slices))
        old = self.slices[i]
        endpoints = list(old.endpoints)
        j = self.rng.randrange(len(endpoints))
        e = endpoints[j]
        if self.rng.random() < 0.5:
            topology = bool(self.services[i].traffic_distribution)
            endpoints[j] = self._endpoint(topology, self._by_name[e.node])
        else:
            flip = not e.ready
            endpoints[j] = replace(e, ready=flip, serving=flip)
        new = replace(old, endpoints=tuple(endpoints), trigger_time=now)
        self.slices[i] = new
        return new
