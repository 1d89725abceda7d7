"""Node views: which endpoints of a service may carry which traffic on one node.

This is all of kube-proxy's per-node endpoint selection (see ``CategorizeEndpoints`` in
kube-proxy's topology code): ready endpoints, else serving-and-terminating ones; topology
hints (node hints, then zone hints) for Cluster policy traffic when the service opts in;
internal and external traffic policy Local. Backends program the result and never
re-implement any of it.

Like kube-proxy's, the selection is **per service port**: a port's candidates are the
endpoints that list it (same name and protocol), and readiness, the serving-terminating
fallback, Local policy and topology hints are all judged over those. The view marks each
endpoint with the service-wide selection and adds :class:`~kpng.model.PortMarks` only
for the ports whose own selection marks it otherwise, which happens only when the
endpoints list different ports (a rollout that drops a named port: the new pods are
ready without it, the old ones serve it while terminating, and take its traffic).

And like kube-proxy's, whose two proxiers (IPv4, IPv6) each see only the EndpointSlices of
their family, the selection is **per address family**: a dual-stack service whose ready
endpoints are all IPv6 keeps sending its IPv4 traffic to its serving-terminating IPv4
endpoints, and topology hints and Local policy are judged within each family.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from operator import attrgetter

from kpng.model import (
    Endpoint,
    EndpointPort,
    EndpointSlice,
    PortMarks,
    Service,
    TrafficPolicy,
    ViewEndpoint,
    endpoint_port,
)

_PORTS: Callable[[Endpoint | ViewEndpoint], tuple[EndpointPort, ...]] = attrgetter("ports")
_IP: Callable[[Endpoint], str] = attrgetter("ip")
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
    """True when some traffic of this service goes to the cluster-wide endpoints: a Cluster
    policy, or any external address (kube-proxy's ``UsesClusterEndpoints``: with both
    policies Local, pods and the node still reach the external addresses cluster-wide)."""
    return service.internal_traffic_policy is TrafficPolicy.CLUSTER or service.externally_accessible


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


def _cluster_endpoints(endpoints: Sequence[Endpoint], mode: str, node: str, zone: str) -> set[str]:
    chosen = {e.ip for e in endpoints if e.ready and _in_topology(e, mode, node, zone)}
    if not chosen:
        chosen = {
            e.ip
            for e in endpoints
            if e.serving and e.terminating and _in_topology(e, mode, node, zone)
        }
    return chosen


def _local_endpoints(endpoints: Sequence[Endpoint], node: str) -> set[str]:
    local = [e for e in endpoints if node and e.node == node]
    ready = {e.ip for e in local if e.ready}
    if ready:
        return ready
    return {e.ip for e in local if e.serving and e.terminating}


Selection = tuple[set[str], set[str], set[str]]  # internal, external, shortcut addresses


def _selection(service: Service, endpoints: Sequence[Endpoint], node: str, zone: str) -> Selection:
    """The addresses that may carry internal, external and short-circuited traffic:
    kube-proxy's ``CategorizeEndpoints`` over ``endpoints`` of each address family."""
    if ":" in "".join(map(_IP, endpoints)):  # some IPv6 (an IPv4 address has no colon)
        v6 = [e for e in endpoints if ":" in e.ip]
        if len(v6) < len(endpoints):  # and some IPv4: each family on its own
            v4 = [e for e in endpoints if ":" not in e.ip]
            four = _family_selection(service, v4, node, zone)
            six = _family_selection(service, v6, node, zone)
            return four[0] | six[0], four[1] | six[1], four[2] | six[2]
    return _family_selection(service, endpoints, node, zone)


def _family_selection(
    service: Service, endpoints: Sequence[Endpoint], node: str, zone: str
) -> Selection:
    """``shortcut``: the cluster-wide endpoints, only where neither policy selects them
    (:attr:`~kpng.model.Service.short_circuits`); empty otherwise."""
    cluster: set[str] = set()
    if uses_cluster_endpoints(service):
        mode = topology_mode(service, endpoints, node, zone)
        cluster = _cluster_endpoints(endpoints, mode, node, zone)
    local = _local_endpoints(endpoints, node) if uses_local_endpoints(service) else set()
    internal = local if service.internal_traffic_policy is TrafficPolicy.LOCAL else cluster
    external: set[str] = set()
    if service.externally_accessible:
        external = local if service.external_traffic_policy is TrafficPolicy.LOCAL else cluster
    return internal, external, cluster if service.short_circuits else set()


def port_marks(
    service: Service,
    usable: Sequence[Endpoint],
    marked: Selection,
    node: str,
    zone: str,
) -> dict[str, tuple[PortMarks, ...]]:
    """Address -> its marks for the service ports whose own selection (over the usable
    endpoints that list the port) differs from ``marked``, the service-wide one. Empty
    when every usable endpoint lists the same ports (each port's candidates are then all
    of them or none: :func:`service_view` does not ask then). A port listed by every usable
    endpoint is never marked (docs/bus.md promises it: the renderer looks for marks only
    otherwise)."""
    internal, external, shortcut = marked
    out: dict[str, list[PortMarks]] = {}
    seen: set[tuple[str, str]] = set()
    for sp in service.ports:
        if (sp.name, sp.protocol) in seen:
            continue  # the API server refuses two ports of one name: the first one decides
        seen.add((sp.name, sp.protocol))
        having = [e for e in usable if endpoint_port(sp, e)]
        if not having or len(having) == len(usable):
            continue
        own_internal, own_external, own_shortcut = _selection(service, having, node, zone)
        for e in having:
            ip = e.ip
            mine = (ip in own_internal, ip in own_external, ip in own_shortcut)
            if mine != (ip in internal, ip in external, ip in shortcut):
                out.setdefault(ip, []).append(PortMarks(sp.name, sp.protocol, *mine))
    return {ip: tuple(marks) for ip, marks in out.items()}


def service_view(
    service: Service, endpoints: tuple[Endpoint, ...], node: str, zone: str
) -> tuple[ViewEndpoint, ...]:
    """The service's usable endpoints as this node sees them, each marked for the traffic
    it may carry: ``internal`` (cluster IPs) and ``external`` (NodePorts, LB IPs, external
    IPs) and, where both policies are Local, ``shortcut`` (pods' and the node's traffic to
    the external addresses), per service port (``port_marks``: see :func:`port_marks`).
    Endpoints neither ready nor serving-and-terminating are left out; a usable endpoint with
    both marks off for a port tells the dataplane that the port has endpoints elsewhere
    (Local policy: drop, rather than reject)."""
    internal, external, shortcut = marked = _selection(service, endpoints, node, zone)
    view = tuple(
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
            shortcut=e.ip in shortcut,
        )
        for e in endpoints
        if e.usable
    )
    if len(view) < 2 or [*map(_PORTS, view)].count(view[0].ports) == len(view):
        return view  # every endpoint lists the same ports: no port marks (C loops: fastest)
    usable = [e for e in endpoints if e.usable]
    overrides = port_marks(service, usable, marked, node, zone)
    if not overrides:
        return view
    return tuple(e.with_port_marks(overrides[e.ip]) if e.ip in overrides else e for e in view)


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
