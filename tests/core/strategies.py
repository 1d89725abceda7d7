"""Hypothesis strategies for model values, views and bus messages.

Names, zones and addresses are drawn from small pools so that random values collide often:
collisions are where merging, topology and diffs get interesting.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from hypothesis import strategies as st

from kpng.bus.codec import (
    CastChunk,
    CastRef,
    CastRequest,
    Delta,
    ErrorReply,
    SnapshotChunk,
    SnapshotRequest,
    Status,
    Tick,
)
from kpng.diff import (
    DeleteEndpoint,
    DeleteNode,
    DeleteService,
    Op,
    SetEndpoint,
    SetNode,
    SetService,
    View,
)
from kpng.model import (
    Endpoint,
    EndpointPort,
    EndpointSlice,
    Node,
    PortMarks,
    Service,
    ServicePort,
    ServiceType,
    TrafficPolicy,
    TransportProtocol,
    ViewEndpoint,
)

NODES = ("node-a1", "node-a2", "node-b1", "node-b2", "node-c1")
ZONES = ("zone-a", "zone-b", "zone-c")
NAMESPACES = ("default", "kube-system")
SERVICE_NAMES = ("web", "dns", "api")

# Wire strings: no lone surrogates (they cannot be UTF-8 encoded at all).
text = st.text(st.characters(codec="utf-8"), max_size=12)
names = st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=10)
node_names = st.sampled_from(NODES)
zones = st.sampled_from(ZONES)
maybe_zone = st.sampled_from((*ZONES, ""))
protocols = st.sampled_from(list(TransportProtocol))
ports = st.integers(1, 65535)


# a Node's spec.podCIDRs: none, one family, both
POD_CIDR_CHOICES = ((), ("10.244.1.0/24",), ("10.244.2.0/24", "fd00:2::/64"))


def _pod_ip(n: int) -> str:
    return f"10.244.{n // 10}.{n % 10 + 1}"


pod_ips = st.integers(1, 40).map(_pod_ip)


def pod_ip_sets(max_size: int) -> st.SearchStrategy[list[str]]:
    """Distinct pod addresses (unique lists of integers: cheaper for hypothesis)."""
    return st.lists(st.integers(1, 40), max_size=max_size, unique=True).map(
        lambda ns: [_pod_ip(n) for n in ns]
    )


ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(str)
ips = st.one_of(ipv4, ipv6)
timestamps = st.floats(0, 4e9, allow_nan=False)


def namespace_and_name(draw: st.DrawFn, key: str | None) -> tuple[str, str]:
    """A service's namespace and name: ``key`` ("namespace/name") split, or drawn from the pools."""
    if key is None:
        return draw(st.sampled_from(NAMESPACES)), draw(st.sampled_from(SERVICE_NAMES))
    namespace, name = key.split("/")
    return namespace, name


@st.composite
def service_ports(draw: st.DrawFn) -> ServicePort:
    return ServicePort(
        name=draw(st.sampled_from(("", "http", "dns", "metrics"))),
        protocol=draw(protocols),
        port=draw(ports),
        target_port=draw(st.one_of(ports, st.sampled_from(("http", "dns-tcp")))),
        node_port=draw(st.sampled_from((0, 30080, 31053))),
    )


@st.composite
def services(draw: st.DrawFn, key: str | None = None) -> Service:
    namespace, name = namespace_and_name(draw, key)
    stype = draw(st.sampled_from(list(ServiceType)))
    lb = stype is ServiceType.LOAD_BALANCER
    etp = draw(st.sampled_from(list(TrafficPolicy)))
    return Service(
        namespace=namespace,
        name=name,
        type=stype,
        cluster_ips=draw(
            st.sampled_from((("10.96.0.10",), ("10.96.0.20", "fd00::20"), ("fd00::30",)))
        ),
        ports=tuple(draw(st.lists(service_ports(), max_size=3))),
        external_ips=tuple(draw(st.lists(st.sampled_from(("203.0.113.7", "2001:db8::7")))))[:2],
        load_balancer_ips=("198.51.100.1",) if lb and draw(st.booleans()) else (),
        load_balancer_source_ranges=("10.0.0.0/8",) if lb and draw(st.booleans()) else (),
        affinity_timeout=draw(st.sampled_from((0, 0, 60, 10800))),
        internal_traffic_policy=draw(st.sampled_from(list(TrafficPolicy))),
        external_traffic_policy=etp,
        health_check_node_port=32000 if lb and etp is TrafficPolicy.LOCAL else 0,
        traffic_distribution=draw(
            st.sampled_from(("", "", "PreferClose", "PreferSameZone", "PreferSameNode", "Odd"))
        ),
        topology_mode=draw(st.sampled_from(("", "", "Auto", "auto", "Disabled"))),
    )


endpoint_ports = st.builds(
    EndpointPort, name=st.sampled_from(("", "http", "dns")), protocol=protocols, port=ports
)


@st.composite
def endpoints(draw: st.DrawFn, ip: str | None = None) -> Endpoint:
    node = draw(st.sampled_from((*NODES, "")))
    # Mostly the zone of the node, sometimes not: the endpoint's own zone is just data.
    zone = draw(st.sampled_from((zone_of(node), zone_of(node), "", "zone-c")))
    hint_zones = st.frozensets(zones, max_size=2)
    return Endpoint(
        ip=ip if ip is not None else draw(pod_ips),
        ports=tuple(draw(st.lists(endpoint_ports, max_size=2))),
        node=node,
        zone=zone,
        ready=draw(st.booleans()),
        serving=draw(st.booleans()),
        terminating=draw(st.booleans()),
        # Hints on all endpoints or none is the common case; mixed is also drawn.
        zone_hints=draw(st.one_of(st.frozensets(zones, min_size=1, max_size=2), hint_zones)),
        node_hints=draw(st.frozensets(node_names, max_size=2)),
    )


def zone_of(node: str) -> str:
    """The zone of the pool's nodes: node-a* in zone-a, node-b* in zone-b, and so on."""
    return f"zone-{node[5]}" if node.startswith("node-") else ""


@st.composite
def endpoint_lists(draw: st.DrawFn, max_size: int = 6) -> tuple[Endpoint, ...]:
    """Endpoints of one service, one per address, in address order (as merge_slices gives)."""
    addresses = draw(pod_ip_sets(max_size))
    return tuple(draw(endpoints(ip)) for ip in sorted(addresses))


nodes = st.builds(
    Node,
    name=node_names,
    addresses=st.lists(ips, max_size=2).map(tuple),
    zone=maybe_zone,
    region=st.sampled_from(("", "region-1")),
)


@st.composite
def endpoint_slices(draw: st.DrawFn, service_key: str | None = None) -> EndpointSlice:
    namespace, service = namespace_and_name(draw, service_key)
    addresses = draw(pod_ip_sets(4))
    return EndpointSlice(
        namespace=namespace,
        name=f"{service}-{draw(names)}",
        service=service,
        address_type="IPv4",
        endpoints=tuple(draw(endpoints(ip)) for ip in addresses),
        trigger_time=draw(st.one_of(st.none(), timestamps)),
    )


def view_endpoints(ip: str | None = None) -> st.SearchStrategy[ViewEndpoint]:
    plain = st.builds(
        ViewEndpoint,
        ip=st.just(ip) if ip is not None else pod_ips,
        ports=st.lists(endpoint_ports, max_size=2).map(tuple),
        node=st.sampled_from((*NODES, "")),
        zone=maybe_zone,
        ready=st.booleans(),
        serving=st.booleans(),
        terminating=st.booleans(),
        internal=st.booleans(),
        external=st.booleans(),
        shortcut=st.booleans(),
    )
    # mostly none, as in real views; at most one per (name, protocol), as a view gives
    marks = st.one_of(
        st.just(()),
        st.lists(port_marks, max_size=3, unique_by=lambda m: (m.name, m.protocol)).map(tuple),
    )
    return st.tuples(plain, marks).map(lambda pair: pair[0].with_port_marks(pair[1]))


port_marks = st.builds(
    PortMarks,
    name=st.sampled_from(("", "http", "dns", "metrics")),
    protocol=st.sampled_from(list(TransportProtocol)),
    internal=st.booleans(),
    external=st.booleans(),
    shortcut=st.booleans(),
)


def _service_variants(key: str) -> list[Service]:
    namespace, name = key.split("/")
    base = Service(
        namespace,
        name,
        ServiceType.CLUSTER_IP,
        ("10.96.0.10",),
        (ServicePort("", TransportProtocol.TCP, 80, 80),),
    )
    return [
        base,
        dataclasses.replace(
            base, type=ServiceType.NODE_PORT, external_traffic_policy=TrafficPolicy.LOCAL
        ),
        dataclasses.replace(base, cluster_ips=("10.96.0.10", "fd00::10"), affinity_timeout=60),
        dataclasses.replace(base, traffic_distribution="PreferClose"),
    ]


_PORT_POOL = (
    (),
    (EndpointPort("http", TransportProtocol.TCP, 8080),),
    (EndpointPort("dns", TransportProtocol.UDP, 53),),
)


def _flags(bits: int, count: int) -> list[bool]:
    return [bool(bits >> i & 1) for i in range(count)]


def _cheap_view_endpoint(ip: str, choice: tuple[int, int, int]) -> ViewEndpoint:
    ports, node, bits = choice
    ready, serving, terminating, internal, external = _flags(bits, 5)
    return ViewEndpoint(
        ip,
        _PORT_POOL[ports],
        NODES[node],
        zone_of(NODES[node]),
        ready,
        serving,
        terminating,
        internal,
        external,
    )


def _cheap_endpoint(ip: str, choice: tuple[int, int, int]) -> Endpoint:
    ports, node, bits = choice
    ready, serving, terminating, zone_hint, node_hint = _flags(bits, 5)
    name = NODES[node]
    return Endpoint(
        ip,
        _PORT_POOL[ports],
        name,
        zone_of(name),
        ready,
        serving,
        terminating,
        frozenset({zone_of(name)}) if zone_hint else frozenset(),
        frozenset({name}) if node_hint else frozenset(),
    )


_choices = st.tuples(st.integers(0, 2), st.integers(0, len(NODES) - 1), st.integers(0, 31))


@st.composite
def _views(draw: st.DrawFn, make: Any) -> View[Any]:
    """A view that keeps the invariant: endpoints only for services the view has, and never
    an empty endpoint table. Drawn from small pools: cheap, and collisions are frequent."""
    keys = draw(st.lists(st.sampled_from(_SERVICE_KEYS), unique=True))
    view: View[Any] = View()
    for key in keys:
        view.services[key] = draw(st.sampled_from(_service_variants(key)))
        addresses = draw(pod_ip_sets(4))
        if addresses:
            view.endpoints[key] = {ip: make(ip, draw(_choices)) for ip in addresses}
    for name in draw(st.lists(st.sampled_from(NODES), unique=True, max_size=3)):
        view.nodes[name] = Node(
            name,
            ("192.168.1.1",),
            zone_of(name),
            draw(st.sampled_from(("", "r1"))),
            draw(st.sampled_from(POD_CIDR_CHOICES)),
            draw(st.booleans()),
        )
    return view


def node_views() -> st.SearchStrategy[View[ViewEndpoint]]:
    return _views(_cheap_view_endpoint)


def global_views() -> st.SearchStrategy[View[Endpoint]]:
    return _views(_cheap_endpoint)


_SERVICE_KEYS = tuple(f"{ns}/{name}" for ns in NAMESPACES for name in SERVICE_NAMES)
service_keys = st.sampled_from(_SERVICE_KEYS)


def ops(scope: str) -> st.SearchStrategy[Op[Any]]:
    """Random operations; ``node`` scope carries ViewEndpoints, ``global`` Endpoints."""
    endpoint: st.SearchStrategy[Any] = view_endpoints() if scope == "node" else endpoints()
    return st.one_of(
        st.builds(SetService, services()),
        st.builds(DeleteService, service_keys),
        st.builds(SetEndpoint, service_keys, endpoint),
        st.builds(DeleteEndpoint, service_keys, pod_ips),
        st.builds(SetNode, nodes),
        st.builds(DeleteNode, node_names),
    )


epochs = text
cast_ids = st.text("0123456789abcdef", min_size=16, max_size=16)
seqs = st.integers(0, 2**53 - 1)  # the contract's range (kpng.bus.codec.MAX_SEQ)


def messages(scope: str) -> st.SearchStrategy[Any]:
    op_lists = st.lists(ops(scope), max_size=5).map(tuple)
    return st.one_of(
        st.builds(
            Delta,
            epoch=epochs,
            seq=seqs,
            time=timestamps,
            trigger_time=st.one_of(st.none(), timestamps),
            ops=op_lists,
        ),
        st.builds(Tick, epoch=epochs, seq=seqs, time=timestamps),
        st.integers(1, 20).flatmap(
            lambda chunks: st.builds(
                SnapshotChunk,
                epoch=epochs,
                seq=seqs,
                chunk=st.integers(0, chunks - 1),
                chunks=st.just(chunks),
                ops=op_lists,
                cast=st.one_of(st.none(), st.builds(CastRef, cast_ids, st.integers(1, 4096))),
            )
        ),
        st.builds(CastRequest, cast_ids),
        st.integers(1, 20).flatmap(
            lambda chunks: st.builds(
                CastChunk, cast_ids, st.integers(0, chunks - 1), st.just(chunks), op_lists
            )
        ),
        st.just(SnapshotRequest()),
        st.builds(
            SnapshotRequest,
            epoch=epochs,
            seq=seqs,
            accept=st.lists(st.sampled_from(("eps", "cast", "later")), max_size=2).map(tuple),
        ),
        st.builds(ErrorReply, reason=text),
        st.builds(
            Status,
            node=node_names,
            epoch=epochs,
            seq=seqs,
            backend=st.sampled_from(("nftables", "fake")),
            healthy=st.booleans(),
            time=timestamps,
            version=text,
            last_sync=st.one_of(st.none(), timestamps),
            sync_duration=st.one_of(st.none(), st.floats(0, 100)),
            counts=st.dictionaries(text, st.integers(0, 10**6), max_size=3),
            errors=st.lists(text, max_size=3).map(tuple),
        ),
    )
