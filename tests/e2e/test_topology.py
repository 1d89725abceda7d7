"""The namespace cluster's topology, pure: no root needed."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import yaml

from kpng_netns.topology import from_cluster_objects, small, underlay_for

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "cluster.yaml"


def test_underlay_holds_every_node_and_two_free_addresses() -> None:
    assert underlay_for(["192.168.1.11", "192.168.2.11"]) == (
        "192.168.0.0/22",
        "192.168.3.254",
        "192.168.3.253",
    )


def test_small_cluster() -> None:
    t = small(nodes=2, pods_per_node=2)
    assert [n.gateway for n in t.nodes] == ["10.244.1.1", "10.244.2.1"]
    assert [p.ip for p in t.pods] == ["10.244.1.2", "10.244.1.3", "10.244.2.2", "10.244.2.3"]
    assert t.infra_ip not in {n.ip for n in t.nodes} | {t.client_ip}


def test_the_example_places_its_endpoints_on_their_nodes() -> None:
    t = from_cluster_objects(list(yaml.safe_load_all(EXAMPLE.read_text())))
    assert [n.name for n in t.nodes] == ["node-a1", "node-a2", "node-b1"]
    dns = t.pod("coredns-5d78c9869d-8xk2q")
    assert (dns.node, dns.ip, dns.ports) == ("node-a1", "10.244.1.10", (53, 9153))
    for p in t.pods:
        assert ipaddress.ip_address(p.ip) in ipaddress.ip_network(t.node(p.node).pod_cidr)


def test_pods_are_slash_32s_routed_and_share_their_nodes_cidr_on_a_bridge() -> None:
    routed, bridge = small(wiring="routed"), small(wiring="bridge")
    assert {routed.pod_prefixlen(p) for p in routed.pods} == {32}
    assert {bridge.pod_prefixlen(p) for p in bridge.pods} == {24}
    assert small().wiring == "routed"


def test_a_dual_stack_cluster_gives_nodes_and_pods_ipv6_addresses_too() -> None:
    t = small(dual_stack=True, wiring="bridge")
    node = t.node("node-1")
    assert node.object()["spec"]["podCIDRs"] == ["10.244.1.0/24", "fd10:0:0:1::/64"]
    assert [a["address"] for a in node.object()["status"]["addresses"]] == [
        "192.168.77.11",
        "fd00:77::11",
    ]
    assert (node.gateway6, t.pod("pod-1-1").ip6, t.pod_prefixlen6(t.pod("pod-1-1"))) == (
        "fd10:0:0:1::1",
        "fd10:0:0:1::2",
        64,
    )
    assert all(ipaddress.ip_address(p.ip6) in ipaddress.ip_network("fd10::/48") for p in t.pods)
    assert t.cluster_cidrs == ("10.244.0.0/16", "fd10::/48")
    assert small().cluster_cidrs == ("10.244.0.0/16",) and small().node("node-1").ip6 == ""
