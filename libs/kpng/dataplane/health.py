"""kube-proxy's health semantics, pure: proxy health, node eligibility, and the
healthCheckNodePort services of a node view with their local endpoint counts.

The agent's HTTP servers (``kpng_agent.health_server``) only turn these values into
responses; nothing here does I/O or reads a clock.

- The proxy is healthy unless an update has been pending (queued, not yet programmed) for
  longer than ``timeout`` (2 x the sync period): a proxy with nothing to do stays healthy,
  also while the watcher is away (fail static).
- ``/healthz`` is also unhealthy while the node is being deleted: as far as a node view
  knows, when this node's Node object was in the view and has gone. ``/livez`` ignores that.
- healthCheckNodePort (LoadBalancer with externalTrafficPolicy Local): 200 when the node
  has at least one local *ready* endpoint (only-terminating endpoints count 0) and the proxy
  is healthy, else 503. The count is per service, as kube-proxy's (``LocalReadyEndpoints``:
  the distinct addresses of the local ready endpoints over all the service's ports), so the
  per-port selection of the view (``port_marks``) does not enter it.
- The no-local-endpoints gauge is per service port, as kube-proxy's: a port with endpoints
  whose traffic of a Local policy has none marked for it on this node (it is dropped).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from kpng.diff import View
from kpng.model import ServiceType, TrafficPolicy, ViewEndpoint, address_family, endpoint_port

WEIGHT_HEADER = "X-Load-Balancing-Endpoint-Weight"


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(slots=True)
class ProxyHealth:
    """What kube-proxy's proxier health server tracks: when the dataplane was last updated,
    since when an update has been waiting, and whether this node is eligible."""

    timeout: float
    last_updated: float | None = None
    oldest_queued: float | None = None
    node_seen: bool = False
    node_gone: bool = False
    node_deleting: bool = False  # its Node is marked as going away (Node.deleting)

    def queued(self, now: float) -> None:
        """An update arrived (or failed and waits for a retry)."""
        if self.oldest_queued is None:
            self.oldest_queued = now

    def updated(self, now: float) -> None:
        """Everything queued is programmed."""
        self.last_updated = now
        self.oldest_queued = None

    def saw_view(self, view: View[ViewEndpoint], node: str) -> None:
        """Track whether this node's Node object is (still) in the programmed view, and
        whether it is marked as going away."""
        known = view.nodes.get(node)
        present = known is not None
        self.node_gone = self.node_seen and not present
        self.node_seen = self.node_seen or present
        self.node_deleting = known is not None and known.deleting

    def healthy(self, now: float) -> bool:
        return self.oldest_queued is None or now - self.oldest_queued <= self.timeout

    @property
    def node_eligible(self) -> bool:
        return not (self.node_gone or self.node_deleting)


def _stamp(t: float | None) -> str:
    if t is None:
        return ""
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def healthz(state: ProxyHealth, now: float, check_node: bool = True) -> Response:
    """``/healthz`` (``check_node``) or ``/livez``: JSON with lastUpdated, currentTime, healthy."""
    healthy = state.healthy(now)
    body: dict[str, object] = {
        "lastUpdated": _stamp(state.last_updated),
        "currentTime": _stamp(now),
    }
    if check_node:
        body["nodeEligible"] = state.node_eligible
        healthy = healthy and state.node_eligible
    body["healthy"] = healthy
    return Response(200 if healthy else 503, json.dumps(body).encode())


@dataclass(frozen=True, slots=True)
class HealthService:
    """One healthCheckNodePort server's subject."""

    namespace: str
    name: str
    local_endpoints: int


def local_ready(endpoints: Mapping[str, ViewEndpoint], node: str) -> int:
    return sum(1 for e in endpoints.values() if e.node == node and e.ready)


def health_service(view: View[ViewEndpoint], key: str, node: str) -> tuple[int, HealthService]:
    """(healthCheckNodePort, its subject) of a LoadBalancer service with
    externalTrafficPolicy Local and a healthCheckNodePort, else (0, ...)."""
    svc = view.services.get(key)
    if (
        svc is None
        or svc.type is not ServiceType.LOAD_BALANCER
        or svc.external_traffic_policy is not TrafficPolicy.LOCAL
    ):
        return 0, HealthService("", "", 0)
    count = local_ready(view.endpoints_of(key), node)
    return svc.health_check_node_port, HealthService(svc.namespace, svc.name, count)


def health_services(view: View[ViewEndpoint], node: str) -> dict[int, HealthService]:
    """healthCheckNodePort -> its service, for the whole view (first key wins a port)."""
    out: dict[int, HealthService] = {}
    for key in sorted(view.services):
        port, hs = health_service(view, key, node)
        if port and port not in out:
            out[port] = hs
    return out


def service_health(hs: HealthService, proxy_healthy: bool) -> Response:
    """The answer of a healthCheckNodePort server, as kube-proxy's."""
    body = {
        "service": {"namespace": hs.namespace, "name": hs.name},
        "localEndpoints": hs.local_endpoints,
        "serviceProxyHealthy": proxy_healthy,
    }
    ok = hs.local_endpoints > 0 and proxy_healthy
    return Response(
        200 if ok else 503,
        json.dumps(body).encode(),
        headers=((WEIGHT_HEADER, str(hs.local_endpoints)),),
    )


def no_local_endpoints(
    view: View[ViewEndpoint], node: str, families: tuple[int, ...] = (4, 6)
) -> dict[tuple[int, str], int]:
    """kube-proxy's ``sync_proxy_rules_no_local_endpoints_total`` gauge, by (IP family,
    "internal"/"external" traffic): the service ports of the family (a cluster IP of it)
    with a Local policy for that traffic that have endpoints of the family (usable ones
    that list the port), none of them marked for that traffic on this node (the view's
    per-port marks: the node drops it)."""
    counts = {(f, policy): 0 for f in families for policy in ("internal", "external")}
    for key, svc in view.services.items():
        internal = svc.internal_traffic_policy is TrafficPolicy.LOCAL
        external = svc.externally_accessible and svc.external_traffic_policy is TrafficPolicy.LOCAL
        eps = view.endpoints_of(key)
        if not eps or not (internal or external):
            continue
        for family in set(map(address_family, svc.cluster_ips)) & set(families):
            of_family = [e for e in eps.values() if address_family(e.ip) == family]
            for sp in svc.ports:
                marks = [e.marks(sp.name, sp.protocol) for e in of_family if endpoint_port(sp, e)]
                if not marks:
                    continue  # no endpoint of this port: rejected, not dropped
                if internal and not any(i for i, _ in marks):
                    counts[family, "internal"] += 1
                if external and not any(x for _, x in marks):
                    counts[family, "external"] += 1
    return counts
