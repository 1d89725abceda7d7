"""Node views: which endpoints of a service may carry which traffic on one node.

This is all of kube-proxy's per-node endpoint selection (see ``CategorizeEndpoints`` in
kube-proxy's topology code): ready endpoints, else serving-and-terminating ones; topology
hints (node hints, then zone hints) for Cluster policy traffic when the service opts in;
internal and external traffic policy Local. Backends program the result and never
re-implement any of it.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable

from kpng.model import Endpoint, EndpointSlice, Service, TrafficPolicy, ViewEndpoint

TOPOLOGY_NONE = ""
TOPOLOGY_NODE = "PreferSameNode"
TOPOLOGY_ZONE = "PreferSameZone"


def merge_slices(slices: Iterable[EndpointSlice]) -> tuple[Endpoint, ...]:
    """A service's endpoints from all its slices; an address in two slices counts once.

    When two slices carry the same address (a transition between slices) the better
    conditions win (ready over serving over neither) and the ports are merged, so the
    result does not depend on the order in which the slices arrived.
    """
    by_ip: dict[str, Endpoint] = {}
    for endpoint_slice in slices:
        for endpoint in endpoint_slice.endpoints:
            seen = by_ip.get(endpoint.ip)
            by_ip[endpoint.ip] = endpoint if seen is None else _merge(seen, endpoint)
    return tuple(by_ip[ip] for ip in sorted(by_ip))


def _rank(e: Endpoint) -> tuple[bool, bool, bool, str, str, tuple[str, ...], tuple[str, ...]]:
    return (
        e.ready,
        e.serving,
        not e.terminating,
        e.node,
        e.zone,
        tuple(sorted(e.zone_hints)),
        tuple(sorted(e.node_hints)),
    )


def _merge(a: Endpoint, b: Endpoint) -> Endpoint:
    best = max(a, b, key=_rank)
    ports = tuple(sorted(set(a.ports) | set(b.ports), key=lambda p: (p.name, p.protocol, p.port)))
    return Endpoint(
        ip=best.ip,
        ports=ports,
        node=best.node,
        zone=best.zone,
        ready=best.ready,
        serving=best.serving,
        terminating=best.terminating,
        zone_hints=best.zone_hints,
        node_hints=best.node_hints,
    )


def uses_local_endpoints(service: Service) -> bool:
    """True when some traffic of this service goes only to endpoints on the node itself."""
    return service.internal_traffic_policy is TrafficPolicy.LOCAL or (
        service.externally_accessible and service.external_traffic_policy is TrafficPolicy.LOCAL
    )


def uses_cluster_endpoints(service: Service) -> bool:
    return service.internal_traffic_policy is TrafficPolicy.CLUSTER or (
        service.externally_accessible and service.external_traffic_policy is TrafficPolicy.CLUSTER
    )


def topology_mode(service: Service, endpoints: Iterable[Endpoint], node: str, zone: str) -> str:
    """Which topology filter applies to this service's Cluster traffic on this node.

    Node hints win when every ready endpoint has one and one names this node; then zone
    hints the same way with this node's zone; otherwise no filter. Only services that opt
    in (trafficDistribution, or the topology-mode annotation ``Auto``) use hints.
    """
    if not service.topology_enabled:
        return TOPOLOGY_NONE
    all_node_hints = all_zone_hints = True
    for_node = for_zone = False
    for e in endpoints:
        if not e.ready:
            continue
        if not e.node_hints:
            all_node_hints = False
        elif node in e.node_hints:
            for_node = True
        if not e.zone_hints:
            all_zone_hints = False
        elif zone and zone in e.zone_hints:
            for_zone = True
    if all_node_hints and for_node:
        return TOPOLOGY_NODE
    if all_zone_hints and for_zone:
        return TOPOLOGY_ZONE
    return TOPOLOGY_NONE


def _in_topology(e: Endpoint, mode: str, node: str, zone: str) -> bool:
    if mode == TOPOLOGY_NODE:
        return node in e.node_hints
    if mode == TOPOLOGY_ZONE:
        return zone in e.zone_hints
    return True


def _cluster_endpoints(
    endpoints: tuple[Endpoint, ...], mode: str, node: str, zone: str
) -> set[str]:
    chosen = {e.ip for e in endpoints if e.ready and _in_topology(e, mode, node, zone)}
    if not chosen:
        chosen = {
            e.ip
            for e in endpoints
            if e.serving and e.terminating and _in_topology(e, mode, node, zone)
        }
    return chosen


def _local_endpoints(endpoints: tuple[Endpoint, ...], node: str) -> set[str]:
    local = [e for e in endpoints if node and e.node == node]
    ready = {e.ip for e in local if e.ready}
    if ready:
        return ready
    return {e.ip for e in local if e.serving and e.terminating}


def service_view(
    service: Service, endpoints: tuple[Endpoint, ...], node: str, zone: str
) -> tuple[ViewEndpoint, ...]:
    """The service's usable endpoints as this node sees them, each marked for the traffic
    it may carry: ``internal`` (cluster IPs) and ``external`` (NodePorts, LB IPs, external
    IPs). Endpoints neither ready nor serving-and-terminating are left out; a usable
    endpoint with both marks off tells the dataplane that the service has endpoints
    elsewhere (Local policy: drop, rather than reject)."""
    cluster: set[str] = set()
    if uses_cluster_endpoints(service):
        mode = topology_mode(service, endpoints, node, zone)
        cluster = _cluster_endpoints(endpoints, mode, node, zone)
    local = _local_endpoints(endpoints, node) if uses_local_endpoints(service) else set()
    internal = local if service.internal_traffic_policy is TrafficPolicy.LOCAL else cluster
    external: set[str] = set()
    if service.externally_accessible:
        external = local if service.external_traffic_policy is TrafficPolicy.LOCAL else cluster
    return tuple(
        ViewEndpoint(
            ip=e.ip,
            ports=e.ports,
            node=e.node,
            zone=e.zone,
            ready=e.ready,
            serving=e.serving,
            terminating=e.terminating,
            internal=e.ip in internal,
            external=e.ip in external,
        )
        for e in endpoints
        if e.usable
    )


def view_variant(
    service: Service, endpoints: tuple[Endpoint, ...], node: str, zone: str
) -> Hashable:
    """A key such that two nodes with the same key have the same :func:`service_view`.

    Most services look the same on every node (key ``None``). A node that holds one of the
    service's endpoints under a Local policy, or that an endpoint's node hint names, may see
    its own view (key ``("node", name, zone)``: its zone still matters to Cluster
    traffic); any other node of a service with topology hints
    sees its zone's view (key ``("zone", zone)``). The watcher computes and encodes one view
    per distinct key: the nodes of :func:`special_nodes` one by one, the rest per zone.
    """
    if node and uses_local_endpoints(service) and any(e.node == node for e in endpoints):
        return ("node", node, zone)
    if service.topology_enabled and uses_cluster_endpoints(service):
        if node and any(node in e.node_hints for e in endpoints):
            return ("node", node, zone)
        return ("zone", zone)
    return None


def special_nodes(service: Service, endpoints: tuple[Endpoint, ...]) -> set[str]:
    """The nodes whose :func:`view_variant` for this service may be their own."""
    nodes: set[str] = set()
    if uses_local_endpoints(service):
        nodes.update(e.node for e in endpoints if e.node)
    if service.topology_enabled and uses_cluster_endpoints(service):
        for e in endpoints:
            nodes.update(e.node_hints)
    return nodes
