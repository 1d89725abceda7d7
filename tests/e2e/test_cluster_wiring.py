"""The core service paths on each pod wiring (``routed`` /32 pods; ``bridge``: pods sharing
their node's /24 on an L2 bridge with br_netfilter on and hairpin ports), agents over NATS.

On the bridge, a reply from an endpoint to a client pod of the same node is bridged, not
routed: only br_netfilter shows it to conntrack, which un-NATs its source (turn
``bridge-nf-call-iptables`` off in a node and the local ClusterIP test fails)."""

from __future__ import annotations

import pytest

from kpng_netns.netns import sh
from tests.e2e.cluster import E2E, endpoints, here_there_dns, service

pytestmark = pytest.mark.netns


def test_the_wiring_is_what_the_topology_says(wired: E2E) -> None:
    """routed: the pod's only on-link route is its gateway; bridge: its node's whole pod CIDR
    is on link, and the node passes bridged IP packets to netfilter."""
    pod = wired.pod("pod-1-2")
    link = sh("ip", "-4", "route", "show", "scope", "link", ns=wired.c.pod_ns(pod.name)).split()
    node_ns = wired.c.node_ns(pod.node)
    nf = sh("sysctl", "-n", "net.bridge.bridge-nf-call-iptables", ns=node_ns).strip()
    if wired.topology.wiring == "bridge":
        assert link[0] == wired.topology.node(pod.node).pod_cidr and nf == "1"
    else:
        assert link[0] == wired.topology.node(pod.node).gateway and nf == "0"


def test_cluster_ip_to_a_local_and_a_remote_endpoint_keeps_the_pod_source(wired: E2E) -> None:
    here, there, client = wired.pod("pod-1-1"), wired.pod("pod-2-1"), wired.pod("pod-1-2")
    wired.apply_and_wait(*here_there_dns(here, there, ("10.96.5.1", "10.96.5.2", "10.96.5.9")))
    assert wired.from_pod(client.name, "10.96.5.1", 80) == f"{here.name} {client.ip}"
    assert wired.from_pod(client.name, "10.96.5.2", 80) == f"{there.name} {client.ip}"
    assert wired.from_pod(client.name, "10.96.5.9", 53, "udp") == f"{here.name} {client.ip}"


def test_a_pod_reaches_itself_through_its_service_masqueraded(wired: E2E) -> None:
    pod = wired.pod("pod-1-1")
    wired.apply_and_wait(
        service("self", "10.96.5.3"),
        endpoints("self", [pod]),
        service("self-udp", "10.96.5.10", 53, "UDP"),
        endpoints("self-udp", [pod], "UDP"),
    )
    gateway = wired.topology.node(pod.node).gateway
    assert wired.from_pod(pod.name, "10.96.5.3", 80) == f"{pod.name} {gateway}"
    assert wired.from_pod(pod.name, "10.96.5.10", 53, "udp") == f"{pod.name} {gateway}"


def test_nodeport_on_every_node_is_masqueraded(wired: E2E) -> None:
    wired.apply_and_wait(
        service("np", "10.96.5.4", nodePort=30501), endpoints("np", [wired.pod("pod-1-1")])
    )
    for node in ("node-1", "node-2"):
        answer = wired.from_client(wired.node_ip(node), 30501)
        assert answer.split()[0] == "pod-1-1"
        assert answer.split()[1] != wired.topology.client_ip


def test_etp_local_keeps_the_client_source_and_drops_without_local_endpoints(wired: E2E) -> None:
    s = service("local", "10.96.5.5", nodePort=30502, externalTrafficPolicy="Local")
    wired.apply_and_wait(s, endpoints("local", [wired.pod("pod-1-1")]))
    client = wired.topology.client_ip
    assert wired.from_client(wired.node_ip("node-1"), 30502) == f"pod-1-1 {client}"
    assert wired.from_client(wired.node_ip("node-2"), 30502) == "timeout"


def test_itp_local_uses_the_local_endpoint_and_drops_without(wired: E2E) -> None:
    wired.apply_and_wait(
        service("near", "10.96.5.6", internalTrafficPolicy="Local"),
        endpoints("near", [wired.pod("pod-1-1"), wired.pod("pod-2-1")]),
        service("far", "10.96.5.7", internalTrafficPolicy="Local"),
        endpoints("far", [wired.pod("pod-2-2")]),
    )
    client = wired.pod("pod-1-2")
    answers = wired.answers(wired.c.pod_ns(client.name), "10.96.5.6", 80, 12)
    assert set(answers) == {f"pod-1-1 {client.ip}"}
    assert wired.from_pod(client.name, "10.96.5.7", 80) == "timeout"


def test_session_affinity_keeps_one_backend(wired: E2E) -> None:
    s = service("sticky", "10.96.5.8", sessionAffinity="ClientIP")
    pods = [wired.pod("pod-1-1"), wired.pod("pod-2-1"), wired.pod("pod-2-2")]
    wired.apply_and_wait(s, endpoints("sticky", pods))
    client = wired.pod("pod-1-2")
    answers = wired.answers(wired.c.pod_ns(client.name), "10.96.5.8", 80, 20)
    assert len(answers) == 20 and len(set(answers)) == 1
    assert answers[0].split()[0] in {p.name for p in pods}
    assert answers[0].split()[1] == client.ip
