"""explain (the observer's reading of the view) and the tracer (the programmed table) agree.

Random services and endpoints make a cluster; its node view, as the watcher computes it,
is programmed on fake nftables by the real backend; then packets from the node's pods, the
node itself and outside go to every service address and port, node port, and some that
are none. Both answers, put in one vocabulary (:mod:`tests.component.verdicts`), must match.
"""

from __future__ import annotations

import asyncio
import gc
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from kpng.bus.consumer import Applied
from kpng.dataplane.nft.fake import FakeNftables
from kpng.dataplane.nft.tracer import Origin, TracedPacket, Tracer
from kpng.diff import View
from kpng.fanout.views import service_view
from kpng.model import (
    Endpoint,
    EndpointPort,
    Node,
    Service,
    ServicePort,
    ServiceType,
    TrafficPolicy,
    TransportProtocol,
    ViewEndpoint,
)
from kpng.observe.explain import PacketQuery as Question
from kpng.observe.explain import explain, parse_cidrs
from kpng_agent.backends.nftables import NftablesBackend, Settings
from tests.component.verdicts import Verdict, from_explanation, from_trace
from tests.objects import HTTP, http_port

POD_CIDR = "10.244.0.0/16"
NODE, NODE_IP, ZONE = "node-a", "192.168.0.10", "zone-1"
NODES = {NODE: ZONE, "node-b": ZONE, "node-c": "zone-2"}
POD_NET = {NODE: "10.244.1", "node-b": "10.244.2", "node-c": "10.244.3"}
OUTSIDE = ("203.0.113.99", "192.0.2.1")  # inside and outside the LB source range
SOURCE_RANGE = "203.0.113.0/24"
PORT_NAMES = ("http", "dns")


@st.composite
def service_ports(draw: st.DrawFn, node_ports: list[int]) -> tuple[ServicePort, ...]:
    count = draw(st.integers(1, 2))
    # the API server refuses two ports with the same number and protocol: numbers differ
    numbers = draw(
        st.lists(st.sampled_from((80, 443, 53)), min_size=count, max_size=count, unique=True)
    )
    out = []
    for name, port in zip(PORT_NAMES, numbers, strict=False):
        proto = draw(st.sampled_from(list(TransportProtocol)))
        target: int | str = draw(st.one_of(st.just(8080), st.just(name)))
        node_port = node_ports.pop() if draw(st.booleans()) else 0
        out.append(ServicePort(name, proto, port, target, node_port))
    return tuple(out)


@st.composite
def services(draw: st.DrawFn, i: int, node_ports: list[int]) -> Service:
    stype = draw(st.sampled_from(list(ServiceType)))
    ports = draw(service_ports(node_ports))
    if stype is ServiceType.CLUSTER_IP:
        ports = tuple(ServicePort(p.name, p.protocol, p.port, p.target_port) for p in ports)
    lb = stype is ServiceType.LOAD_BALANCER
    return Service(
        "default",
        f"svc-{i}",
        stype,
        (f"10.96.0.{i + 1}",),
        ports,
        external_ips=(f"198.51.100.{i + 1}",) if draw(st.booleans()) else (),
        load_balancer_ips=(f"198.51.100.{i + 101}",) if lb else (),
        load_balancer_source_ranges=(SOURCE_RANGE,) if lb and draw(st.booleans()) else (),
        affinity_timeout=draw(st.sampled_from((0, 0, 60))),
        internal_traffic_policy=draw(st.sampled_from(list(TrafficPolicy))),
        external_traffic_policy=draw(st.sampled_from(list(TrafficPolicy))),
        traffic_distribution=draw(st.sampled_from(("", "PreferClose"))),
    )


@st.composite
def endpoints(draw: st.DrawFn, svc: Service, i: int) -> tuple[Endpoint, ...]:
    out = []
    for k in range(draw(st.integers(0, 4))):
        node = draw(st.sampled_from(sorted(NODES)))
        # an endpoint has some of the service's ports (as its slice lists them)
        ports = tuple(
            EndpointPort(p.name, p.protocol, 8080 + j)
            for j, p in enumerate(svc.ports)
            if draw(st.integers(0, 3))
        )
        ready = draw(st.booleans())
        out.append(
            Endpoint(
                f"{POD_NET[node]}.{i * 10 + k + 1}",
                ports,
                node=node,
                zone=NODES[node],
                ready=ready,
                serving=ready or draw(st.booleans()),
                terminating=not ready and draw(st.booleans()),
                zone_hints=draw(st.sampled_from((frozenset(), frozenset({NODES[node]})))),
            )
        )
    return tuple(out)


@st.composite
def clusters(draw: st.DrawFn) -> View[ViewEndpoint]:
    """A node view of node-a, as the watcher computes it from random services."""
    node_ports = [30000 + n for n in range(20)]
    view: View[ViewEndpoint] = View()
    view.nodes[NODE] = Node(NODE, (NODE_IP,), ZONE)
    for i in range(draw(st.integers(1, 4))):
        svc = draw(services(i, node_ports))
        view.services[svc.key] = svc
        eps = service_view(svc, draw(endpoints(svc, i)), NODE, ZONE)
        if eps:
            view.endpoints[svc.key] = {e.ip: e for e in eps}
    return view


def destinations(view: View[ViewEndpoint]) -> list[tuple[str, str, int]]:
    """(address, protocol, port): every service address and port, and near misses."""
    out = [("10.96.0.99", "tcp", 80), (NODE_IP, "tcp", 30099)]
    for svc in view.services.values():
        for p in svc.ports:
            proto = p.protocol.lower()
            for ip in (*svc.cluster_ips, *svc.external_ips, *svc.load_balancer_ips):
                out += [(ip, proto, p.port), (ip, proto, p.port + 1)]
            if p.node_port:
                out.append((NODE_IP, proto, p.node_port))
        out.append((svc.cluster_ips[0], "udp" if svc.ports[0].protocol == "TCP" else "tcp", 80))
    return out


def sources(view: View[ViewEndpoint]) -> list[str]:
    """The node, outside clients, and pods of this node (some of them endpoints)."""
    pods = {ip for eps in view.endpoints.values() for ip, e in eps.items() if e.node == NODE}
    return [NODE_IP, *OUTSIDE, f"{POD_NET[NODE]}.250", *sorted(pods)]


def program(view: View[ViewEndpoint]) -> tuple[FakeNftables, Tracer]:
    nft = FakeNftables()
    settings_ = Settings(NODE, cluster_cidrs=(POD_CIDR,), families=(4,), netlink=False)
    backend = NftablesBackend(settings_, nft, lambda: (NODE_IP,))
    asyncio.run(backend.program(Applied("snapshot", "e", 0, view, ()), full=True))
    return nft, Tracer(nft, backend.planners[4].config, (NODE_IP,))


def origin(source: str) -> Origin:
    if source == NODE_IP:
        return "node"
    return "pod" if source.startswith("10.244.") else "outside"


def verdicts(
    view: View[ViewEndpoint], tracer: Tracer, src: str, dst: str, proto: str, port: int
) -> tuple[Verdict, Verdict]:
    """(the tracer's, explain's) for one packet on node-a."""
    traced = from_trace(tracer.trace(TracedPacket(src, dst, proto, port, origin(src))), src)
    question = Question(dst, TransportProtocol(proto.upper()), port, src)
    explained = from_explanation(explain(view, NODE, question, parse_cidrs(POD_CIDR)))
    return traced, explained


def agree(view: View[ViewEndpoint]) -> None:
    _, tracer = program(view)
    for dst, proto, port in destinations(view):
        for src in sources(view):
            traced, explained = verdicts(view, tracer, src, dst, proto, port)
            assert traced == explained, (
                f"{src} -> {dst} {proto}/{port}: tracer {traced.text()}, explain {explained.text()}"
            )
    gc.unfreeze()


@settings(max_examples=150, deadline=None)
@given(clusters())
def test_explain_and_the_tracer_agree(view: View[ViewEndpoint]) -> None:
    agree(view)


def agree_by_interface(view: View[ViewEndpoint]) -> None:
    """--detect-local-mode InterfaceNamePrefix: pods are told by their interface, not their
    address. Packets from a pod's interface (some with a source outside the pod network) and
    from the outside interface (some with a source inside it): explain, told fromPod, and
    the table the backend writes agree."""
    nft = FakeNftables()
    settings_ = Settings(
        NODE, cluster_cidrs=(POD_CIDR,), pod_interface="kpod*", families=(4,), netlink=False
    )
    backend = NftablesBackend(settings_, nft, lambda: (NODE_IP,))
    asyncio.run(backend.program(Applied("snapshot", "e", 0, view, ()), full=True))
    tracer = Tracer(nft, backend.planners[4].config, (NODE_IP,))
    for dst, proto, port in destinations(view):
        for src in sources(view):
            if src == NODE_IP:
                continue  # the node's own traffic has no input interface (told by address)
            for from_pod in (True, False):
                iif = "kpod7" if from_pod else "eth0"
                where: Origin = "pod" if from_pod else "outside"
                packet = TracedPacket(src, dst, proto, port, where, iif=iif)
                traced = from_trace(tracer.trace(packet), src)
                question = Question(dst, TransportProtocol(proto.upper()), port, src, from_pod)
                answer = explain(view, NODE, question, by_interface=True)
                explained = from_explanation(answer)
                assert traced == explained, (
                    f"{src} on {iif} -> {dst} {proto}/{port}: tracer {traced.text()}, "
                    f"explain {explained.text()}"
                )
    gc.unfreeze()


@settings(max_examples=60, deadline=None)
@given(clusters())
def test_explain_and_the_tracer_agree_where_pods_are_told_by_their_interface(
    view: View[ViewEndpoint],
) -> None:
    agree_by_interface(view)


@st.composite
def rollouts(draw: st.DrawFn) -> View[ViewEndpoint]:
    """A node view of node-a with one service in the middle of a rollout that drops its
    last port: new pods ready without it, old ones serving while terminating with every
    port. The per-port selection gives the old pods that port (kpng.fanout.views), so the
    view nearly always carries port marks (the case the property once left out by name)."""
    node_ports = [30000 + n for n in range(20)]
    svc = draw(services(0, node_ports).filter(lambda s: len(s.ports) == 2))
    out = []
    for k in range(draw(st.integers(2, 4))):
        node = draw(st.sampled_from(sorted(NODES)))
        new = k == 0 or (k > 1 and draw(st.booleans()))
        kept = svc.ports[:1] if new else svc.ports
        ports = tuple(EndpointPort(p.name, p.protocol, 8080 + j) for j, p in enumerate(kept))
        conditions = {} if new else {"ready": False, "serving": True, "terminating": True}
        out.append(
            Endpoint(f"{POD_NET[node]}.{k + 1}", ports, node=node, zone=NODES[node], **conditions)
        )
    view: View[ViewEndpoint] = View()
    view.nodes[NODE] = Node(NODE, (NODE_IP,), ZONE)
    view.services[svc.key] = svc
    view.endpoints[svc.key] = {e.ip: e for e in service_view(svc, tuple(out), NODE, ZONE)}
    return view


@settings(max_examples=100, deadline=None)
@given(rollouts())
def test_explain_and_the_tracer_agree_on_ports_selected_each_their_own(
    view: View[ViewEndpoint],
) -> None:
    agree(view)


def test_the_rollouts_carry_port_marks() -> None:
    """The property above is about port marks: most of its views have some."""
    views = []

    @settings(max_examples=60, deadline=None, database=None, derandomize=True)
    @given(rollouts())
    def collect(view: View[ViewEndpoint]) -> None:
        views.append(view)

    collect()
    marked = [
        v for v in views if any(e.port_marks for t in v.endpoints.values() for e in t.values())
    ]
    assert len(marked) >= len(views) // 2, (len(marked), len(views))


def both_local_view(*endpoints: Endpoint) -> View[ViewEndpoint]:
    """node-a's view of a NodePort service whose traffic policies are both Local."""
    svc = Service(
        "default",
        "both-local",
        ServiceType.NODE_PORT,
        ("10.96.0.1",),
        (http_port(node_port=30001),),
        internal_traffic_policy=TrafficPolicy.LOCAL,
        external_traffic_policy=TrafficPolicy.LOCAL,
    )
    view: View[ViewEndpoint] = View()
    view.nodes[NODE] = Node(NODE, (NODE_IP,), ZONE)
    view.services[svc.key] = svc
    view.endpoints[svc.key] = {e.ip: e for e in service_view(svc, endpoints, NODE, ZONE)}
    return view


def test_both_policies_local_short_circuit_to_the_cluster_wide_endpoints() -> None:
    """eTP Local short-circuits pods and the node to the service's *cluster-wide* endpoints
    (kube-proxy: ``UsesClusterEndpoints`` is true for any externally accessible port), also
    with iTP Local: the node view marks them ``shortcut``. Here the only endpoint is on
    another node: an outside client is dropped, a pod and the node reach it (the node
    masqueraded), and explain says the same as the dataplane."""
    view = both_local_view(Endpoint("10.244.2.1", HTTP, "node-b"))
    _, tracer = program(view)
    pod, outside = f"{POD_NET[NODE]}.9", "192.0.2.7"
    for src, verdict in [
        (pod, Verdict("dnat", ("10.244.2.1:8080",))),
        (NODE_IP, Verdict("dnat", ("10.244.2.1:8080",), masquerade=True)),
        (outside, Verdict("drop")),
    ]:
        traced, explained = verdicts(view, tracer, src, NODE_IP, "tcp", 30001)
        assert traced == explained == verdict, src
    # the cluster IP stays Local: no local endpoint, dropped for everyone
    for src in (pod, NODE_IP):
        traced, explained = verdicts(view, tracer, src, "10.96.0.1", "tcp", 80)
        assert traced == explained == Verdict("drop"), src
    gc.unfreeze()


def test_a_view_without_shortcut_marks_short_circuits_to_the_local_endpoints() -> None:
    """A view from a watcher of before shortcut marks: pods still reach the local
    endpoints through the node port, as they did then, and explain says so too."""
    view = both_local_view(
        Endpoint("10.244.1.1", HTTP, NODE), Endpoint("10.244.2.1", HTTP, "node-b")
    )
    for key, endpoints in view.endpoints.items():
        view.endpoints[key] = {ip: replace(e, shortcut=False) for ip, e in endpoints.items()}
    _, tracer = program(view)
    traced, explained = verdicts(view, tracer, f"{POD_NET[NODE]}.9", NODE_IP, "tcp", 30001)
    assert traced == explained == Verdict("dnat", ("10.244.1.1:8080",))
    gc.unfreeze()


def test_an_endpoint_whose_slice_lists_no_ports_serves_none() -> None:
    """kube-proxy builds a service port's endpoints from the slice ports of that name and
    protocol: a slice without ports gives none, even for a numeric target port. A service
    whose only endpoint is such is rejected, by the dataplane and by explain."""
    svc = Service("default", "portless", ServiceType.CLUSTER_IP, ("10.96.0.1",), (http_port(),))
    view: View[ViewEndpoint] = View()
    view.nodes[NODE] = Node(NODE, (NODE_IP,), ZONE)
    view.services[svc.key] = svc
    bare = Endpoint("10.244.2.1", (), "node-b")
    view.endpoints[svc.key] = {e.ip: e for e in service_view(svc, (bare,), NODE, ZONE)}
    _, tracer = program(view)
    traced, explained = verdicts(view, tracer, f"{POD_NET[NODE]}.9", "10.96.0.1", "tcp", 80)
    assert traced == explained == Verdict("reject")
    gc.unfreeze()
