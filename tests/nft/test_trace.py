"""kube-proxy's behaviours, traced through rendered rules (no root needed)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from kpng.dataplane.nft.skeleton import SHARDS
from kpng.fanout.views import service_view
from kpng.model import (
    Endpoint,
    EndpointPort,
    PortMarks,
    Service,
    ServicePort,
    TrafficPolicy,
    TransportProtocol,
)
from tests.nft.helpers import CONFIG, NODE, NODE_IP, Harness, ep, svc, view

POD = "10.244.1.5"
OUTSIDE = "172.16.0.9"


def test_cluster_ip_dnats_to_every_endpoint_and_keeps_pod_source() -> None:
    h = Harness()
    h.full(view((svc("a"), [ep("10.244.2.1"), ep("10.244.3.1")])))
    t = h.trace(POD, "10.96.0.10", 80)
    assert t.verdict == "dnat"
    assert t.endpoints == {("10.244.2.1", 8080), ("10.244.3.1", 8080)}
    assert not t.masquerade


def test_cluster_ip_from_off_pod_network_is_masqueraded() -> None:
    h = Harness()
    h.full(view((svc("a"), [ep("10.244.2.1")])))
    assert h.trace(NODE_IP, "10.96.0.10", 80, origin="node").masquerade
    assert h.trace(OUTSIDE, "10.96.0.10", 80).masquerade


def test_each_protocol_is_separate() -> None:
    h = Harness()
    h.full(view((svc("a"), [ep("10.244.2.1")])))
    assert h.trace(POD, "10.96.0.10", 80, proto="udp").verdict == "reject"
    assert h.trace(POD, "10.96.0.10", 80, proto="sctp").verdict == "reject"


def test_multiport_and_named_target_ports() -> None:
    ports = (
        ServicePort("http", TransportProtocol.TCP, 80, "web"),
        ServicePort("dns", TransportProtocol.UDP, 53, "dns"),
        ServicePort("sig", TransportProtocol.SCTP, 9000, 9000),
    )
    eports = (
        EndpointPort("http", TransportProtocol.TCP, 8080),
        EndpointPort("dns", TransportProtocol.UDP, 5353),
        EndpointPort("sig", TransportProtocol.SCTP, 9001),
    )
    h = Harness()
    h.full(view((svc("a", ports=ports), [ep("10.244.2.1", ports=eports)])))
    assert h.trace(POD, "10.96.0.10", 80).endpoints == {("10.244.2.1", 8080)}
    assert h.trace(POD, "10.96.0.10", 53, "udp").endpoints == {("10.244.2.1", 5353)}
    assert h.trace(POD, "10.96.0.10", 9000, "sctp").endpoints == {("10.244.2.1", 9001)}


def test_no_endpoints_rejects_and_undefined_port_rejects() -> None:
    h = Harness()
    h.full(view((svc("a", np=30080, external_ips=("172.16.1.1",)), [])))
    assert h.trace(POD, "10.96.0.10", 80).verdict == "reject"
    assert h.trace(OUTSIDE, NODE_IP, 30080).verdict == "reject"
    assert h.trace(OUTSIDE, "172.16.1.1", 80).verdict == "reject"
    assert h.trace(POD, "10.96.0.10", 81).verdict == "reject"
    assert h.trace(POD, "10.244.9.9", 81).verdict == "accept"


def test_nodeport_on_node_addresses_only_and_masqueraded() -> None:
    h = Harness()
    h.full(view((svc("a", np=30080), [ep("10.244.2.1")])))
    t = h.trace(OUTSIDE, NODE_IP, 30080)
    assert t.verdict == "dnat" and t.masquerade
    assert h.trace(OUTSIDE, "127.0.0.1", 30080).verdict == "accept"
    assert h.trace(OUTSIDE, NODE_IP, 30081).verdict == "accept"


def test_external_and_lb_ips_with_cluster_policy_masquerade() -> None:
    h = Harness()
    s = svc(
        "a", type="LoadBalancer", external_ips=("172.16.1.1",), load_balancer_ips=("172.16.2.2",)
    )
    h.full(view((s, [ep("10.244.2.1")])))
    for ip in ("172.16.1.1", "172.16.2.2"):
        t = h.trace(OUTSIDE, ip, 80)
        assert (t.verdict, t.masquerade) == ("dnat", True)


def etp_local() -> Harness:
    h = Harness()
    s = svc(
        "a",
        np=30080,
        load_balancer_ips=("172.16.2.2",),
        type="LoadBalancer",
        external_traffic_policy=TrafficPolicy.LOCAL,
    )
    local = ep("10.244.1.7", node=NODE, internal=True, external=True)
    remote = ep("10.244.2.1", internal=True, external=False)
    h.full(view((s, [local, remote])))
    return h


def test_etp_local_keeps_source_and_uses_local_endpoints_only() -> None:
    t = etp_local().trace(OUTSIDE, NODE_IP, 30080)
    assert t.endpoints == {("10.244.1.7", 8080)} and not t.masquerade


def test_etp_local_without_local_endpoints_drops_outside_traffic() -> None:
    h = Harness()
    s = svc("a", np=30080, external_traffic_policy=TrafficPolicy.LOCAL)
    h.full(view((s, [ep("10.244.2.1", internal=True, external=False)])))
    assert h.trace(OUTSIDE, NODE_IP, 30080).verdict == "drop"
    # pods and the node itself short-circuit to the cluster-wide endpoints
    t = h.trace(POD, NODE_IP, 30080, origin="pod")
    assert t.endpoints == {("10.244.2.1", 8080)} and not t.masquerade
    t = h.trace(NODE_IP, NODE_IP, 30080, origin="node")
    assert t.endpoints == {("10.244.2.1", 8080)} and t.masquerade


def test_etp_local_short_circuits_lb_ip_for_pods() -> None:
    t = etp_local().trace(POD, "172.16.2.2", 80, origin="pod")
    assert t.endpoint_ips == {"10.244.1.7", "10.244.2.1"}


def test_itp_local_without_local_endpoints_drops() -> None:
    h = Harness()
    s = svc("a", internal_traffic_policy=TrafficPolicy.LOCAL)
    h.full(view((s, [ep("10.244.2.1", internal=False, external=False)])))
    assert h.trace(POD, "10.96.0.10", 80).verdict == "drop"


def test_hairpin_is_masqueraded() -> None:
    h = Harness()
    h.full(view((svc("a"), [ep("10.244.1.7", node=NODE)])))
    t = h.trace("10.244.1.7", "10.96.0.10", 80, origin="pod")
    assert t.hairpin and not t.masquerade


def test_masquerade_all() -> None:
    from dataclasses import replace

    from tests.nft.helpers import CONFIG

    h = Harness(replace(CONFIG, masquerade_all=True))
    h.full(view((svc("a"), [ep("10.244.2.1")])))
    assert h.trace(POD, "10.96.0.10", 80).masquerade


def test_lb_source_ranges_apply_to_lb_ips_only() -> None:
    h = Harness()
    s = svc(
        "a",
        np=30080,
        type="LoadBalancer",
        load_balancer_ips=("172.16.2.2",),
        external_ips=("172.16.1.1",),
        load_balancer_source_ranges=(" 172.16.0.0/24 ",),
    )
    h.full(view((s, [ep("10.244.2.1")])))
    assert h.trace("172.16.0.9", "172.16.2.2", 80).verdict == "dnat"
    assert h.trace("172.16.5.9", "172.16.2.2", 80).verdict == "drop"
    assert h.trace("172.16.5.9", "172.16.1.1", 80).verdict == "dnat"
    assert h.trace("172.16.5.9", NODE_IP, 30080).verdict == "dnat"


def test_session_affinity_uses_a_per_target_chain() -> None:
    h = Harness()
    h.full(view((svc("a", affinity_timeout=30), [ep("10.244.2.1"), ep("10.244.3.1")])))
    t = h.trace(POD, "10.96.0.10", 80)
    assert t.affinity and t.endpoint_ips == {"10.244.2.1", "10.244.3.1"}
    aff = [s for s in h.nft.state(h.config.nft_table).sets.values() if s.timeout]
    assert [s.timeout for s in aff] == [30]


def test_ipv6_session_affinity_keeps_address_and_port_in_two_maps() -> None:
    """nft 1.0.6 aborts on ``update @m { ip6 saddr : ip6 daddr . th dport }`` (nine
    registers), which failed a node's whole ``ip6`` batch: IPv6 records the endpoint's
    address and port in a map each, with the same timeout, and dnats from both."""
    from dataclasses import replace

    h = Harness(replace(CONFIG, family=6, pod_cidrs=("fd10::/64",), nodeport_cidrs=()))
    s = svc("a", ip="fd00::10", affinity_timeout=30)
    h.full(view((s, [ep("fd10::5"), ep("fd10::6")])))
    t = h.trace("fd10::9", "fd00::10", 80)
    assert t.affinity and t.endpoint_ips == {"fd10::5", "fd10::6"}
    state = h.nft.state(h.config.nft_table)
    aff = {s.name: s for s in state.sets.values() if s.timeout}
    assert sorted((s.type, s.data, s.timeout) for s in aff.values()) == [
        ("ipv6_addr", "inet_service", 30),
        ("ipv6_addr", "ipv6_addr", 30),
    ]
    rules = [
        r for c in state.chains.values() for r in c.rules if "saddr map" in r or "update @" in r
    ]
    assert rules and not any("daddr . th dport" in r for r in rules), rules


def test_dual_stack_each_family_its_own_endpoints() -> None:
    from dataclasses import replace

    from tests.nft.helpers import CONFIG

    s = svc("a")
    s = type(s)(
        **{
            **{f: getattr(s, f) for f in s.__dataclass_fields__},
            "cluster_ips": ("10.96.0.10", "fd00::10"),
        }
    )
    h6 = Harness(replace(CONFIG, family=6, pod_cidrs=("fd10::/64",), nodeport_cidrs=()))
    h6.full(view((s, [ep("10.244.2.1"), ep("fd10::5")])))
    assert h6.trace("fd10::9", "fd00::10", 80).endpoints == {("fd10::5", 8080)}
    h4 = Harness()
    h4.full(view((s, [ep("10.244.2.1"), ep("fd10::5")])))
    assert h4.trace(POD, "10.96.0.10", 80).endpoints == {("10.244.2.1", 8080)}


def test_endpoints_are_split_by_target_id_and_each_target_picks_from_its_own_map() -> None:
    h = Harness()
    services = [
        (svc(f"s{i}", ip=f"10.96.1.{i}"), [ep(f"10.244.2.{i}"), ep(f"10.244.3.{i}")])
        for i in range(1, 41)
    ]
    h.full(view(*services))
    state = h.nft.state(CONFIG.nft_table)
    used = {e.set for e in state.elements.values() if e.set.startswith("endpoints_")}
    assert used == {f"endpoints_{i}" for i in range(SHARDS)}
    for i in range(1, 41):
        t = h.trace(POD, f"10.96.1.{i}", 80)
        assert t.endpoints == {(f"10.244.2.{i}", 8080), (f"10.244.3.{i}", 8080)}
    # an endpoint moved to another target's map is not reachable through the pick chain
    moved = next(e for e in state.elements.values() if e.set == "endpoints_1")
    del state.elements[(moved.set, moved.key)]
    state.elements[("endpoints_2", moved.key)] = moved._replace(set="endpoints_2")
    with pytest.raises(AssertionError, match="has no endpoint"):
        h.trace(POD, "10.96.1.1", 80)


def test_an_endpoint_serves_only_the_service_ports_it_names() -> None:
    """As kube-proxy reads EndpointSlices: an endpoint whose slice lists only ``http`` is no
    endpoint of ``alt`` (its one port is not a stand-in for every port of the protocol)."""
    ports = (
        ServicePort("http", TransportProtocol.TCP, 80, 8080),
        ServicePort("alt", TransportProtocol.TCP, 81, 8081),
    )
    h = Harness()
    h.full(view((svc("a", ports=ports), [ep("10.244.2.1")])))  # lists "http" only
    assert h.trace(POD, "10.96.0.10", 80).endpoints == {("10.244.2.1", 8080)}
    assert h.trace(POD, "10.96.0.10", 81).verdict == "reject"


def _rollout(**policies: TrafficPolicy) -> Service:
    """http (80, node port 30080) and metrics (9090, node port 30090), after a rollout that
    dropped metrics: new pods ready with http only, old ones terminating with both."""
    ports = (
        ServicePort("http", TransportProtocol.TCP, 80, "http", 30080),
        ServicePort("metrics", TransportProtocol.TCP, 9090, "metrics", 30090),
    )
    return svc("a", ports=ports, **policies)


HTTP_PORT = EndpointPort("http", TransportProtocol.TCP, 8080)
METRICS_PORT = EndpointPort("metrics", TransportProtocol.TCP, 9091)


def _rollout_endpoints() -> tuple[Endpoint, ...]:
    both = (HTTP_PORT, METRICS_PORT)
    gone = {"ready": False, "serving": True, "terminating": True}
    return (
        Endpoint("10.244.2.1", (HTTP_PORT,), "node-b"),
        Endpoint("10.244.2.2", both, "node-b", **gone),
        Endpoint("10.244.3.1", (HTTP_PORT,), NODE),
        Endpoint("10.244.3.2", both, NODE, **gone),
    )


def _programmed(service: Service) -> Harness:
    h = Harness()
    h.full(view((service, list(service_view(service, _rollout_endpoints(), NODE, "")))))
    return h


def test_each_port_goes_to_its_own_endpoints() -> None:
    """kube-proxy's per-port selection: metrics, which no ready endpoint lists, goes to
    the old serving-terminating pods, http to the new ready ones; cluster IP and node port."""
    h = _programmed(_rollout())
    new = {("10.244.2.1", 8080), ("10.244.3.1", 8080)}
    old = {("10.244.2.2", 9091), ("10.244.3.2", 9091)}
    assert h.trace(POD, "10.96.0.10", 80).endpoints == new
    assert h.trace(POD, "10.96.0.10", 9090).endpoints == old
    assert h.trace(OUTSIDE, NODE_IP, 30080).endpoints == new
    assert h.trace(OUTSIDE, NODE_IP, 30090).endpoints == old


def test_each_port_local_policy_takes_the_nodes_own_endpoints_of_the_port() -> None:
    local = TrafficPolicy.LOCAL
    h = _programmed(_rollout(internal_traffic_policy=local, external_traffic_policy=local))
    assert h.trace(POD, "10.96.0.10", 80).endpoints == {("10.244.3.1", 8080)}
    assert h.trace(POD, "10.96.0.10", 9090).endpoints == {("10.244.3.2", 9091)}
    assert h.trace(OUTSIDE, NODE_IP, 30080).endpoints == {("10.244.3.1", 8080)}
    assert h.trace(OUTSIDE, NODE_IP, 30090).endpoints == {("10.244.3.2", 9091)}


def test_a_port_marks_own_topology_narrows_it() -> None:
    """Every ready endpoint with metrics is zone-hinted, one with http only is not: hints
    apply to metrics alone (zone-1: its one endpoint there), http goes to all three."""
    both = (HTTP_PORT, METRICS_PORT)
    endpoints = (
        Endpoint("10.244.2.1", both, "node-b", "zone-1", zone_hints=frozenset({"zone-1"})),
        Endpoint("10.244.3.1", both, "node-c", "zone-2", zone_hints=frozenset({"zone-2"})),
        Endpoint("10.244.3.2", (HTTP_PORT,), "node-c", "zone-2"),
    )
    service = _rollout(traffic_distribution="PreferClose")
    marked = service_view(service, endpoints, NODE, "zone-1")
    assert [e.port_marks for e in marked][1] == (
        PortMarks("metrics", TransportProtocol.TCP, False, False),
    )
    h = Harness()
    h.full(view((service, list(marked))))
    assert h.trace(POD, "10.96.0.10", 9090).endpoints == {("10.244.2.1", 9091)}
    assert h.trace(OUTSIDE, NODE_IP, 30090).endpoints == {("10.244.2.1", 9091)}
    assert h.trace(POD, "10.96.0.10", 80).endpoints == {
        ("10.244.2.1", 8080),
        ("10.244.3.1", 8080),
        ("10.244.3.2", 8080),
    }


def test_the_other_familys_endpoints_neither_mark_nor_hide_a_port() -> None:
    """Every IPv4 endpoint lists metrics, an IPv6 one does not and is the only ready one:
    the IPv4 family selects on its own (its serving-terminating endpoint, for every port),
    so it needs no port marks, and the IPv4 table sends both ports to it."""
    gone = {"ready": False, "serving": True, "terminating": True}
    endpoints = (
        Endpoint("10.244.2.2", (HTTP_PORT, METRICS_PORT), "node-b", **gone),
        Endpoint("fd10::5", (HTTP_PORT,), "node-b"),
    )
    service = replace(_rollout(), cluster_ips=("10.96.0.10", "fd00::10"))
    marked = service_view(service, endpoints, NODE, "")
    assert [(e.internal, e.external, e.port_marks) for e in marked] == [
        (True, True, ()),
        (True, True, ()),
    ]
    h = Harness()
    h.full(view((service, list(marked))))
    assert h.trace(POD, "10.96.0.10", 9090).endpoints == {("10.244.2.2", 9091)}
    assert h.trace(POD, "10.96.0.10", 80).endpoints == {("10.244.2.2", 8080)}
