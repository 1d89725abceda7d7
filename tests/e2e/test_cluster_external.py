"""Real traffic for what the tracer alone covered: multiport and named target ports,
external and load-balancer IPs (Cluster policy masqueraded, Local keeping the source),
loadBalancerSourceRanges, the eTP Local short-circuit for pods and the node (with iTP Local
too), PreferSameNode,
ExternalName and headless services programming nothing, and (agent restarted with flags)
``--masquerade-all`` and ``--nodeport-addresses``, and ``--detect-local-mode`` by input
interface and by the node's pod CIDR without ``--cluster-cidr``. The outside client routes
203.0.113.0/24 (external and LB IPs) to node-1."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import pytest

from kpng_netns import netns
from kpng_netns.netns import sh
from tests.e2e.cluster import E2E, endpoint, endpoints, eventually, service

pytestmark = pytest.mark.netns


@pytest.fixture(scope="module")
def ext(kube: E2E) -> E2E:
    sh("ip", "route", "add", "203.0.113.0/24", "via", kube.node_ip("node-1"), ns=kube.c.client)
    return kube


def lb(name: str, ip: str, lb_ip: str, **spec: Any) -> dict[str, Any]:
    s = service(name, ip, type="LoadBalancer", **spec)
    s["status"] = {"loadBalancer": {"ingress": [{"ip": lb_ip}]}}
    return s


def test_multiport_and_named_target_ports(ext: E2E) -> None:
    pod = ext.pod("pod-2-1")
    ext.c.serve(replace(pod, ports=(8080, 9090)))
    s = service("multi", "10.96.7.1")
    s["spec"]["ports"] = [
        {"name": "web", "protocol": "TCP", "port": 80, "targetPort": "http"},
        {"name": "alt", "protocol": "TCP", "port": 81, "targetPort": 9090},
    ]
    e = endpoints("multi", [pod])
    e["ports"] = [
        {"name": "alt", "port": 9090, "protocol": "TCP"},
        {"name": "web", "port": 8080, "protocol": "TCP"},
    ]
    ext.apply_and_wait(s, e)
    client = ext.pod("pod-1-1")
    ns = ext.c.pod_ns(client.name)
    assert ext.served_port(ns, "10.96.7.1", 80) == f"{pod.name} {client.ip} 8080"
    assert ext.served_port(ns, "10.96.7.1", 81) == f"{pod.name} {client.ip} 9090"


def test_external_and_lb_ips_masquerade_with_cluster_policy_keep_the_source_with_local(
    ext: E2E,
) -> None:
    external = service("ext", "10.96.7.2", externalIPs=["203.0.113.10"])
    ext.apply_and_wait(
        external,
        endpoints("ext", [ext.pod("pod-2-1")]),
        lb("lb", "10.96.7.3", "203.0.113.11", nodePort=30710),
        endpoints("lb", [ext.pod("pod-2-1")]),
        lb("lbl", "10.96.7.4", "203.0.113.12", nodePort=30711, externalTrafficPolicy="Local"),
        endpoints("lbl", [ext.pod("pod-1-1")]),
    )
    client = ext.topology.client_ip
    for ip in ("203.0.113.10", "203.0.113.11"):
        answer = ext.from_client(ip, 80)
        assert answer.split()[0] == "pod-2-1" and answer.split()[1] != client, ip
    assert ext.from_client("203.0.113.12", 80) == f"pod-1-1 {client}"


def test_lb_source_ranges_filter_lb_ips_only(ext: E2E) -> None:
    client = ext.topology.client_ip
    ext.apply_and_wait(
        lb("allowed", "10.96.7.5", "203.0.113.13", loadBalancerSourceRanges=[f"{client}/32"]),
        endpoints("allowed", [ext.pod("pod-2-1")]),
        lb("denied", "10.96.7.6", "203.0.113.14", loadBalancerSourceRanges=[" 10.0.0.0/8 "]),
        endpoints("denied", [ext.pod("pod-2-1")]),
    )
    assert ext.from_client("203.0.113.13", 80).split()[0] == "pod-2-1"
    assert ext.from_client("203.0.113.14", 80) == "timeout"
    assert ext.from_pod("pod-1-2", "10.96.7.6", 80).split()[0] == "pod-2-1"  # cluster IP


def test_etp_local_lb_ip_short_circuits_for_pods_and_the_node(ext: E2E) -> None:
    ext.apply_and_wait(
        lb("short", "10.96.7.7", "203.0.113.15", nodePort=30712, externalTrafficPolicy="Local"),
        endpoints("short", [ext.pod("pod-2-1")]),
    )
    assert ext.from_client("203.0.113.15", 80) == "timeout"  # node-1 has no local endpoint
    pod = ext.pod("pod-1-1")
    assert ext.from_pod(pod.name, "203.0.113.15", 80) == f"pod-2-1 {pod.ip}"
    node = ext.c.request(ext.c.node_ns("node-1"), "203.0.113.15", 80)
    assert node.split()[0] == "pod-2-1"


def test_both_policies_local_short_circuit_pods_and_the_node_cluster_wide(ext: E2E) -> None:
    """iTP Local too: pods and the node still reach the LB IP and the node port on a node
    with no endpoint of the service (kube-proxy's short-circuit to its cluster-wide
    endpoints), while its cluster IP keeps its Local policy."""
    ext.apply_and_wait(
        lb(
            "both",
            "10.96.7.17",
            "203.0.113.16",
            nodePort=30716,
            externalTrafficPolicy="Local",
            internalTrafficPolicy="Local",
        ),
        endpoints("both", [ext.pod("pod-2-1")]),
    )
    assert ext.from_client("203.0.113.16", 80) == "timeout"  # node-1 has no local endpoint
    pod = ext.pod("pod-1-1")
    assert ext.from_pod(pod.name, "203.0.113.16", 80) == f"pod-2-1 {pod.ip}"
    node_ns, node_ip = ext.c.node_ns("node-1"), ext.node_ip("node-1")
    assert ext.c.request(node_ns, "203.0.113.16", 80).split()[0] == "pod-2-1"
    assert ext.from_pod(pod.name, node_ip, 30716) == f"pod-2-1 {pod.ip}"
    assert ext.c.request(node_ns, node_ip, 30716).split()[0] == "pod-2-1"
    assert ext.from_pod(pod.name, "10.96.7.17", 80) == "timeout"  # iTP Local: none here


def test_prefer_same_node_keeps_traffic_on_the_node(ext: E2E) -> None:
    s = service("near", "10.96.7.8", trafficDistribution="PreferSameNode")
    pods = [ext.pod("pod-1-1"), ext.pod("pod-2-1")]
    zones = [{"name": n.zone} for n in ext.topology.nodes]  # zone hints alone: both
    hinted = [
        {**endpoint(p), "hints": {"forNodes": [{"name": p.node}], "forZones": zones}} for p in pods
    ]
    ext.apply_and_wait(s, endpoints("near", hinted))
    for client, want in (("pod-1-2", "pod-1-1"), ("pod-2-2", "pod-2-1")):
        answers = ext.answers(ext.c.pod_ns(client), "10.96.7.8", 80, 12)
        assert {a.split()[0] for a in answers} == {want}, client


def test_externalname_and_headless_services_program_nothing(ext: E2E) -> None:
    headless = service("headless", "None")
    named = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "named", "namespace": "e2e"},
        "spec": {"type": "ExternalName", "externalName": "example.com"},
    }
    ext.apply_and_wait(headless, endpoints("headless", [ext.pod("pod-1-1")]), named)
    for node in ("node-1", "node-2"):
        table = sh("nft", "list", "table", "ip", "kpng", ns=ext.c.node_ns(node))
        assert "e2e/barrier" in table
        assert "e2e/headless" not in table and "e2e/named" not in table


def test_masquerade_all_and_nodeport_addresses(ext: E2E) -> None:
    """node-1's agent restarted with ``--masquerade-all --nodeport-addresses
    192.168.77.111/32``, a second address on its underlay link (by default only the Node's
    address, 192.168.77.11, is a NodePort address); node-2's agent as it was."""
    node_ns = ext.c.node_ns("node-1")
    sh("ip", "addr", "add", "192.168.77.111/24", "dev", "eth0", ns=node_ns)
    ext.c.stop_agent("node-1")
    only = "192.168.77.111/32"
    ext.c.start_agent(
        "node-1", "--sync-period", "5", "--masquerade-all", "--nodeport-addresses", only
    )
    try:
        ext.apply_and_wait(
            service("all", "10.96.7.9", nodePort=30713), endpoints("all", [ext.pod("pod-2-1")])
        )
        pod = ext.pod("pod-1-1")
        eventually(
            "masquerade all",
            lambda: ext.from_pod(pod.name, "10.96.7.9", 80),
            lambda a: a == f"pod-2-1 {ext.node_ip('node-1')}",
        )
        assert ext.from_pod("pod-2-2", "10.96.7.9", 80) == f"pod-2-1 {ext.pod('pod-2-2').ip}"
        assert ext.from_client("192.168.77.111", 30713).split()[0] == "pod-2-1"
        assert ext.from_client(ext.node_ip("node-1"), 30713) == "refused"  # not listed
    finally:
        ext.c.stop_agent("node-1")
        ext.c.start_agent("node-1", "--sync-period", "5")
        sh("ip", "addr", "del", "192.168.77.111/24", "dev", "eth0", ns=node_ns)


def underlay_links(e2e: E2E) -> list[tuple[str, str]]:
    """(namespace, interface) of every underlay link end but the infra bridge itself."""
    nodes = [(e2e.c.node_ns(n.name), "eth0") for n in e2e.topology.nodes]
    infra = [(e2e.c.infra, f"unode{i}") for i in range(len(e2e.topology.nodes))]
    return [*nodes, *infra, (e2e.c.client, "eth0"), (e2e.c.infra, "uclient")]


def test_4_mib_through_nodeport_over_an_underlay_of_mtu_1400(ext: E2E) -> None:
    """The underlay at MTU 1400, the pod links at 1500: from the client (its MSS fits the
    path) and from a pod on the other node (its 1500-byte packets meet the 1400 link at its
    node, and the replies at the endpoint's node, whose ICMP "too big" must be translated
    back through the NodePort's DNAT and masquerade) 4 MiB arrive whole."""
    ext.apply_and_wait(
        service("mtu", "10.96.7.10", nodePort=30714), endpoints("mtu", [ext.pod("pod-2-1")])
    )
    size = 4 << 20
    links = underlay_links(ext)
    for ns, link in links:
        sh("ip", "link", "set", link, "mtu", "1400", ns=ns)
    try:
        answer = ext.echo(ext.c.client, ext.node_ip("node-1"), 30714, size)
        assert answer.split()[0] == "pod-2-1" and answer.endswith(f"ok {size}"), answer
        pod_ns = ext.c.pod_ns("pod-1-1")
        answer = ext.echo(pod_ns, ext.node_ip("node-2"), 30714, size)
        assert answer.split()[0] == "pod-2-1" and answer.endswith(f"ok {size}"), answer
    finally:
        for ns, link in links:
            sh("ip", "link", "set", link, "mtu", "1500", ns=ns)


ROUTED_POD_IP = "10.244.1.200"  # in node-1's pod CIDR, on a veth of its own


@contextmanager
def veth_pod(ext: E2E, name: str, ip: str, link: str) -> Iterator[str]:
    """A pod namespace ``name`` on node-1 with address ``ip``, wired as Calico wires its
    pods: its own veth (node side ``link``, routed, no bridge), the node answering ARP for
    the gateway; removed after, pass or fail."""
    ns, node_ns = ext.c.prefix + name, ext.c.node_ns("node-1")
    gateway = ext.topology.node("node-1").gateway
    netns.add(ns)
    try:
        netns.veth(node_ns, link, ns, "eth0")
        sh("ip", "route", "add", f"{ip}/32", "dev", link, ns=node_ns)
        sh("ip", "addr", "add", f"{ip}/32", "dev", "eth0", ns=ns)
        sh("ip", "route", "add", gateway, "dev", "eth0", ns=ns)
        sh("ip", "route", "add", "default", "via", gateway, ns=ns)
        yield ns
    finally:
        sh("ip", "netns", "del", ns, check=False)  # its veth goes with it


@pytest.fixture
def routed_pod(ext: E2E) -> Iterator[str]:
    """A pod on node-1 on a veth of its own (``pod9``). The topology's pods are bridge ports
    of ``cbr0``: their packets come in on ``cbr0``, whatever their port."""
    with veth_pod(ext, "vpod", ROUTED_POD_IP, "pod9") as ns:
        yield ns


def _pod_traffic_services(ext: E2E, n: int) -> None:
    """What the detect-local tests send to: ``there`` (10.96.7.n) served by pod-2-1,
    ``here`` (.n+1) by node-1's pod-1-2, and an eTP Local LB IP 203.0.113.n (.n+2, node port
    30700+n) served by pod-2-1 only, so node-1 has no local endpoint for it."""
    ext.apply_and_wait(
        service("there", f"10.96.7.{n}"),
        endpoints("there", [ext.pod("pod-2-1")]),
        service("here", f"10.96.7.{n + 1}"),
        endpoints("here", [ext.pod("pod-1-2")]),
        lb(
            "lbl",
            f"10.96.7.{n + 2}",
            f"203.0.113.{n}",
            nodePort=30700 + n,
            externalTrafficPolicy="Local",
        ),
        endpoints("lbl", [ext.pod("pod-2-1")]),
    )


@pytest.mark.parametrize(
    ("mode", "flag", "value", "pods_are"),
    [
        ("InterfaceNamePrefix", "--pod-interface-name-prefix", "pod", "routed"),
        ("BridgeInterface", "--pod-bridge-interface", "cbr0", "bridged"),
    ],
)
def test_pod_traffic_told_by_input_interface(
    ext: E2E, routed_pod: str, mode: str, flag: str, value: str, pods_are: str
) -> None:
    """node-1's agent restarted with ``--detect-local-mode MODE`` and without
    ``--cluster-cidr`` (restored after, pass or fail): a packet that comes in on a pod
    interface (the routed pod's ``pod9`` for prefix ``pod``; ``cbr0`` for the bridge) is a
    pod's: to a cluster IP it keeps its source, to an eTP Local LB IP with no local endpoint
    it short-circuits; one from the other kind of pod is masqueraded, or dropped; the node's
    own connection to a cluster IP is masqueraded."""
    _pod_traffic_services(ext, 20)
    node_ns, node_ip = ext.c.node_ns("node-1"), ext.node_ip("node-1")
    gateway = ext.topology.node("node-1").gateway
    bridged = ext.pod("pod-1-1")
    clients = {"routed": (routed_pod, ROUTED_POD_IP), "bridged": (bridged.name, bridged.ip)}
    pod_ns, pod_ip = clients[pods_are]
    other_ns, _ = clients["bridged" if pods_are == "routed" else "routed"]
    if pods_are == "bridged":
        pod_ns = ext.c.pod_ns(pod_ns)
    else:
        other_ns = ext.c.pod_ns(other_ns)
    pattern = f'"{value}*"' if mode == "InterfaceNamePrefix" else f'"{value}"'
    ext.c.stop_agent("node-1")
    try:
        ext.c.start_agent(
            "node-1",
            *("--sync-period", "5", "--detect-local-mode", mode, flag, value),
            cluster_cidr=False,
        )
        eventually(  # the restarted agent has rewritten the chains the last one left
            "local_ext matching the input interface",
            lambda: sh("nft", "list", "chain", "ip", "kpng", "local_ext", ns=node_ns),
            lambda listed: f"iifname {pattern}" in listed and "pod_cidrs" not in listed,
        )
        assert ext.c.request(pod_ns, "10.96.7.20", 80) == f"pod-2-1 {pod_ip}"
        assert ext.c.request(pod_ns, "203.0.113.20", 80) == f"pod-2-1 {pod_ip}"
        assert ext.c.request(other_ns, "10.96.7.20", 80) == f"pod-2-1 {node_ip}"
        assert ext.c.request(other_ns, "203.0.113.20", 80) == "timeout"
        assert ext.from_client("203.0.113.20", 80) == "timeout"
        # the node's connection to its local endpoint: unmasqueraded, its source would be
        # the underlay address (routed to the cluster IP); masqueraded out of cbr0, the
        # bridge's
        assert ext.c.request(node_ns, "10.96.7.21", 80) == f"pod-1-2 {gateway}"
    finally:
        ext.c.stop_agent("node-1")
        ext.c.start_agent("node-1", "--sync-period", "5", *ext.agent_args)


STRAY_IP = "10.244.2.200"  # in the cluster CIDR and node-2's pod CIDR, on a veth of node-1


def test_pod_traffic_told_by_the_nodes_pod_cidr(ext: E2E) -> None:
    """node-1's agent restarted with ``--detect-local-mode NodeCIDR`` and without
    ``--cluster-cidr`` (restored after, pass or fail): a pod is told by node-1's own
    ``spec.podCIDRs`` (10.244.1.0/24, from its Node through the watcher). A bridged pod
    keeps its source to a cluster IP and short-circuits an eTP Local LB IP; a sender on
    node-1 with an address of node-2's pod CIDR (a pod in ClusterCIDR mode) is masqueraded,
    so its answer comes back through node-1, and is dropped at the LB IP; the node's own
    connection is masqueraded."""
    _pod_traffic_services(ext, 30)
    node_ns, node_ip = ext.c.node_ns("node-1"), ext.node_ip("node-1")
    own = ext.topology.node("node-1")
    pod = ext.pod("pod-1-1")
    pod_ns = ext.c.pod_ns(pod.name)
    with veth_pod(ext, "stray", STRAY_IP, "pod8") as stray:
        ext.c.stop_agent("node-1")
        try:
            ext.c.start_agent(
                "node-1",
                "--sync-period",
                "5",
                "--detect-local-mode",
                "NodeCIDR",
                cluster_cidr=False,
            )
            eventually(  # the restarted agent has written the node's pod CIDR
                "pod_cidrs holding node-1's pod CIDR alone",
                lambda: sh("nft", "list", "set", "ip", "kpng", "pod_cidrs", ns=node_ns),
                lambda listed: own.pod_cidr in listed and "10.244.0.0/16" not in listed,
            )
            local_ext = sh("nft", "list", "chain", "ip", "kpng", "local_ext", ns=node_ns)
            assert "ip saddr @pod_cidrs" in local_ext and "iifname" not in local_ext
            assert ext.c.request(pod_ns, "10.96.7.30", 80) == f"pod-2-1 {pod.ip}"
            assert ext.c.request(pod_ns, "203.0.113.30", 80) == f"pod-2-1 {pod.ip}"
            assert ext.c.request(stray, "10.96.7.30", 80) == f"pod-2-1 {node_ip}"
            assert ext.c.request(stray, "203.0.113.30", 80) == "timeout"
            assert ext.c.request(node_ns, "10.96.7.31", 80) == f"pod-1-2 {own.gateway}"
        finally:
            ext.c.stop_agent("node-1")
            ext.c.start_agent("node-1", "--sync-period", "5", *ext.agent_args)
