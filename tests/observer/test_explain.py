"""explain(): kube-proxy's rules read off a node view, case by case."""

from __future__ import annotations

from dataclasses import replace

import pytest

from kpng.diff import View
from kpng.model import (
    EndpointPort,
    Node,
    Service,
    ServicePort,
    ServiceType,
    TrafficPolicy,
    TransportProtocol,
    ViewEndpoint,
)
from kpng.observe.explain import Explanation, PacketQuery, explain, parse_cidrs
from tests.objects import HTTP, TCP, UDP, http_port
from tests.observer.cluster import CLUSTER_CIDR, NODES, node_view

PODS = parse_cidrs(CLUSTER_CIDR)


def run(
    node: str,
    dst: str,
    port: int,
    src: str | None = None,
    proto: TransportProtocol = TCP,
    pods: bool = True,
) -> Explanation:
    return explain(node_view(node), node, PacketQuery(dst, proto, port, src), PODS if pods else ())


def ips(result: Explanation) -> list[str]:
    return [f"{t.ip}:{t.port}" for t in result.targets]


def forwarding(result: Explanation) -> tuple[str, list[str], bool]:
    """What the tests of forwarded packets check: the verdict, the targets, masquerading."""
    return result.verdict, ips(result), result.masquerade


def test_cluster_ip_spreads_over_internal_endpoints_with_named_target_port() -> None:
    result = run("node-a2", "10.96.10.1", 80, src="10.244.2.5")
    assert (result.verdict, result.match, result.service, result.port) == (
        "forward",
        "clusterIP",
        "demo/web",
        "http",
    )
    assert ips(result) == ["10.244.1.20:8080", "10.244.3.20:8080"]  # the unready one never
    assert result.masquerade is False  # pod to cluster IP keeps the pod's source
    assert result.affinity_timeout == 600
    assert any("session affinity" in r for r in result.reasons)


def test_cluster_ip_from_outside_the_pod_network_is_masqueraded() -> None:
    assert run("node-a2", "10.96.10.1", 80, src="192.168.1.12").masquerade is True


def test_cluster_ip_masquerade_unknown_without_source_or_cluster_cidr() -> None:
    assert run("node-a2", "10.96.10.1", 80).masquerade is None
    assert run("node-a2", "10.96.10.1", 80, src="192.168.9.9", pods=False).masquerade is None


def test_unknown_port_on_a_cluster_ip_is_rejected() -> None:
    result = run("node-a1", "10.96.10.1", 81)
    assert (result.verdict, result.service, result.port) == ("reject", "demo/web", None)


def test_wrong_protocol_on_a_cluster_ip_is_rejected() -> None:
    assert run("node-a1", "10.96.10.1", 80, proto=UDP).verdict == "reject"


def test_service_without_endpoints_is_rejected_on_its_cluster_ip() -> None:
    result = run("node-a1", "10.96.10.9", 80)
    assert (result.verdict, result.service) == ("reject", "demo/empty")
    assert "no usable endpoint" in " ".join(result.reasons)


def test_itp_local_uses_only_local_endpoints() -> None:
    result = run("node-a1", "10.96.10.3", 6379, src="10.244.1.7")
    assert (result.verdict, ips(result)) == ("forward", ["10.244.1.40:6379"])
    assert all(t.local for t in result.targets)


def test_itp_local_without_local_endpoint_drops() -> None:
    result = run("node-a2", "10.96.10.3", 6379)
    assert result.verdict == "drop"
    assert "Local" in " ".join(result.reasons)


def test_node_port_with_cluster_policy_is_masqueraded() -> None:
    result = run("node-a2", NODES["node-a2"], 30080, src="172.16.0.1")
    assert (result.verdict, result.match, result.service) == ("forward", "nodePort", "demo/web")
    assert ips(result) == ["10.244.1.20:8080", "10.244.3.20:8080"]
    assert result.masquerade is True


def test_node_port_of_another_node_address_passes() -> None:
    assert run("node-a2", NODES["node-a1"], 30080).verdict == "pass"


def test_unknown_node_port_passes_and_says_so() -> None:
    result = run("node-a1", NODES["node-a1"], 31999)
    assert result.verdict == "pass"
    assert "no service has this node port" in " ".join(result.reasons)


def test_health_check_node_port_is_named() -> None:
    result = run("node-a1", NODES["node-a1"], 32100)
    assert result.verdict == "pass" and "health check" in " ".join(result.reasons)


def test_etp_local_node_port_keeps_source_on_a_node_with_local_endpoint() -> None:
    result = run("node-a1", NODES["node-a1"], 30443, src="172.16.0.1")
    assert forwarding(result) == ("forward", ["10.244.1.30:8443"], False)


def test_etp_local_without_local_endpoint_drops() -> None:
    result = run("node-a2", NODES["node-a2"], 30443, src="172.16.0.1")
    assert result.verdict == "drop"


def test_etp_local_falls_back_to_a_terminating_local_endpoint() -> None:
    result = run("node-b1", NODES["node-b1"], 30443, src="172.16.0.1")
    assert (result.verdict, ips(result)) == ("forward", ["10.244.3.30:8443"])
    assert result.targets[0].terminating
    assert "terminating" in " ".join(result.reasons)


def test_etp_local_from_a_pod_short_circuits_to_cluster_endpoints_without_snat() -> None:
    result = run("node-a2", "203.0.113.10", 443, src="10.244.2.9")
    assert (result.verdict, result.match, ips(result)) == (
        "forward",
        "externalIP",
        ["10.244.1.30:8443"],
    )
    assert result.masquerade is False


def test_etp_local_from_the_node_itself_short_circuits_with_snat() -> None:
    result = run("node-a2", NODES["node-a2"], 30443, src=NODES["node-a2"])
    assert forwarding(result) == ("forward", ["10.244.1.30:8443"], True)


def test_pods_told_by_their_interface() -> None:
    """--detect-local-mode BridgeInterface / InterfaceNamePrefix: a packet is a pod's when it
    comes in on a pod's interface, whatever its source address; not said, masquerading is
    unknown; the cluster CIDRs tell nothing then."""

    def by_interface(dst: str, port: int, src: str | None, from_pod: bool | None) -> Explanation:
        packet = PacketQuery(dst, TCP, port, src, from_pod)
        return explain(node_view("node-a2"), "node-a2", packet, PODS, by_interface=True)

    # a cluster IP: a pod's packet keeps its source, another's is masqueraded
    assert by_interface("10.96.10.1", 80, "172.16.0.9", True).masquerade is False
    assert by_interface("10.96.10.1", 80, "10.244.2.5", False).masquerade is True
    unknown = by_interface("10.96.10.1", 80, "10.244.2.5", None)
    assert unknown.verdict == "forward" and unknown.masquerade is None
    assert any("fromPod" in r for r in unknown.reasons)
    # externalTrafficPolicy Local: a pod's packet is short-circuited to every endpoint
    short = by_interface("203.0.113.10", 443, "172.16.0.9", True)
    assert forwarding(short) == ("forward", ["10.244.1.30:8443"], False)
    assert any("the source is a pod" in r for r in short.reasons)
    outside = by_interface("203.0.113.10", 443, "10.244.2.9", False)
    assert outside.verdict == "drop"  # no local endpoint on node-a2 for external traffic
    # the node itself is told by its address in every mode
    node = by_interface(NODES["node-a2"], 30443, NODES["node-a2"], None)
    assert forwarding(node) == ("forward", ["10.244.1.30:8443"], True)


def test_lb_ip_source_outside_ranges_is_dropped() -> None:
    result = run("node-a1", "198.51.100.10", 443, src="172.16.0.1")
    assert (result.verdict, result.match) == ("drop", "loadBalancerIP")
    assert "loadBalancerSourceRanges" in " ".join(result.reasons)


def test_lb_ip_source_inside_ranges_goes_to_local_endpoints() -> None:
    result = run("node-a1", "198.51.100.10", 443, src="10.1.2.3", pods=False)
    assert forwarding(result) == ("forward", ["10.244.1.30:8443"], False)


def test_source_ranges_do_not_apply_to_external_ips() -> None:
    result = run("node-a1", "203.0.113.10", 443, src="172.16.0.1")
    assert result.verdict == "forward"


def test_external_ip_on_an_unknown_port_passes() -> None:
    assert run("node-a1", "203.0.113.10", 80).verdict == "pass"


def test_hairpin_is_masqueraded() -> None:
    result = run("node-a1", "10.96.10.3", 6379, src="10.244.1.40")
    assert result.masquerade is True
    assert "hairpin" in " ".join(result.reasons)


def test_not_a_service_address_passes() -> None:
    result = run("node-a1", "8.8.8.8", 53, proto=UDP)
    assert result.verdict == "pass" and result.service is None


def test_unknown_node_has_no_node_ports() -> None:
    result = explain(node_view("node-x"), "node-x", PacketQuery("192.168.1.11", TCP, 30080))
    assert result.verdict == "pass"
    assert "no Node object" in " ".join(result.reasons)


@pytest.mark.parametrize("bad", ["10.96.10", "not-an-ip"])
def test_bad_addresses_raise_value_error(bad: str) -> None:
    with pytest.raises(ValueError):
        run("node-a1", bad, 80)
    with pytest.raises(ValueError):
        run("node-a1", "10.96.10.1", 80, src=bad)


def test_parse_cidrs_normalises_padding_and_host_bits() -> None:
    assert [str(n) for n in parse_cidrs(" 10.0.0.1/8 , fd00::/64")] == ["10.0.0.0/8", "fd00::/64"]


def _view(svc: Service, *endpoints: ViewEndpoint) -> View[ViewEndpoint]:
    v: View[ViewEndpoint] = View()
    v.nodes["node-x"] = Node("node-x", ("192.168.7.1",))
    v.services[svc.key] = svc
    v.endpoints[svc.key] = {e.ip: e for e in endpoints}
    return v


def test_endpoints_are_per_service_port() -> None:
    """An endpoint that does not list a port is no endpoint of it: that port has none
    (rejected), even under a Local policy, where endpoints elsewhere mean a drop."""
    ports = (http_port(target="http"), ServicePort("metrics", TCP, 9090, "metrics"))
    svc = Service("demo", "s", ServiceType.CLUSTER_IP, ("10.96.7.1",), ports)
    svc = replace(svc, internal_traffic_policy=TrafficPolicy.LOCAL)
    elsewhere = ViewEndpoint("10.244.9.1", (EndpointPort("metrics", TCP, 9090),), node="node-y")
    v = _view(svc, elsewhere)
    assert explain(v, "node-x", PacketQuery("10.96.7.1", TCP, 80, "10.244.9.2"), PODS).verdict == (
        "reject"
    )
    assert explain(v, "node-x", PacketQuery("10.96.7.1", TCP, 9090), PODS).verdict == "drop"


def test_cluster_policy_without_a_usable_endpoint_rejects() -> None:
    """Drop is only for a Local policy's endpoints elsewhere; with Cluster policy, a port
    whose endpoints may take no traffic here is rejected (as the dataplane programs it)."""
    svc = Service("demo", "s", ServiceType.CLUSTER_IP, ("10.96.7.1",), (http_port(),))
    unflagged = ViewEndpoint("10.244.9.1", HTTP, node="node-y")
    result = explain(_view(svc, unflagged), "node-x", PacketQuery("10.96.7.1", TCP, 80), PODS)
    assert result.verdict == "reject"


def dual_stack_view(node: str) -> dict[str, Explanation]:
    """A dual-stack service whose IPv4 endpoints are all terminating and whose IPv6 ones are
    ready: what ``node`` does with a packet to each of its cluster IPs."""
    from tests.observer.cluster import objects, service, slice_

    http = [{"name": "http", "port": 80, "targetPort": 8080}]
    ports = [{"name": "http", "port": 8080, "protocol": "TCP"}]
    svc = service("demo", "dual", "10.96.20.1", http, clusterIPs=["10.96.20.1", "fd00:96::20:1"])
    svc["spec"]["ipFamilies"] = ["IPv4", "IPv6"]
    svc["spec"]["ipFamilyPolicy"] = "RequireDualStack"
    v4 = slice_("demo", "dual", ports, [("10.244.1.50", "node-a1", "terminating")])
    v6 = slice_("demo", "dual", ports, [("fd00:244:3::50", "node-b1", "ready")])
    v6["metadata"]["name"], v6["addressType"] = "dual-2", "IPv6"
    view = node_view(node, [*objects(), svc, v4, v6])
    return {
        dst: explain(view, node, PacketQuery(dst, TCP, 80, "10.244.1.7"), PODS)
        for dst in ("10.96.20.1", "fd00:96::20:1")
    }


def test_dual_stack_each_family_has_its_own_endpoints_and_fallback() -> None:
    """An IPv4 packet goes to IPv4 endpoints only (each family has its own table), and the
    IPv4 family falls back to its serving-terminating endpoint although IPv6 has a ready
    one, as kube-proxy's IPv4 proxier does."""
    by_dst = dual_stack_view("node-a2")
    assert (by_dst["10.96.20.1"].verdict, ips(by_dst["10.96.20.1"])) == (
        "forward",
        ["10.244.1.50:8080"],
    )
    assert any("terminating endpoints: the fallback" in r for r in by_dst["10.96.20.1"].reasons)
    assert (by_dst["fd00:96::20:1"].verdict, ips(by_dst["fd00:96::20:1"])) == (
        "forward",
        ["fd00:244:3::50:8080"],
    )
