"""Endpoint selection and traffic shapes end to end, over the namespace cluster with agents
over NATS (issue #4): session affinity switched at runtime, the terminating fallback, topology
hints, large transfers, UDP whose only endpoint turns ready. Each service is edited in the
cluster YAML the watcher reads; every check is real traffic."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.cluster import E2E, endpoint, endpoints, eventually, service

pytestmark = pytest.mark.netns
ROUNDS = 12  # requests per sample: 12 from one of 3 backends by chance is 3 * 3**-12


def sample(kube: E2E, ns: str, ip: str, port: int) -> str:
    """The answering pods' names of ``ROUNDS`` requests from ``ns``, sorted, space separated."""
    return " ".join(sorted(a.split()[0] for a in kube.answers(ns, ip, port, ROUNDS)))


def only(*names: str) -> Callable[[str], bool]:
    """Every answer came from ``names``, and each of them answered at least once."""
    return lambda got: set(got.split()) == set(names)


def starts(name: str) -> Callable[[str], bool]:
    return lambda answer: answer.split()[:1] == [name]


def one_backend(got: str) -> bool:
    return len(set(got.split())) == 1 and got.startswith("pod-")


def spread(got: str) -> bool:
    return len(set(got.split())) > 1 and all(n.startswith("pod-") for n in got.split())


def test_session_affinity_switched_off_and_on_again_at_runtime(kube: E2E) -> None:
    ip, pods = "10.96.2.1", [kube.pod(n) for n in ("pod-1-1", "pod-2-1", "pod-2-2")]
    on = service(
        "aff",
        ip,
        nodePort=30091,
        sessionAffinity="ClientIP",
        sessionAffinityConfig={"clientIP": {"timeoutSeconds": 600}},
    )
    off = service("aff", ip, nodePort=30091)
    node_ip = kube.node_ip("node-1")

    def from_pod() -> str:
        return sample(kube, kube.c.pod_ns("pod-1-2"), ip, 80)

    def from_client() -> str:  # NodePort, from outside
        return sample(kube, kube.c.client, node_ip, 30091)

    for phase, svc, ok in (
        ("on", on, one_backend),
        ("off", off, spread),
        ("on again", on, one_backend),
    ):
        kube.apply(svc, endpoints("aff", pods))
        eventually(f"affinity {phase}, cluster IP", from_pod, ok)
        eventually(f"affinity {phase}, NodePort", from_client, ok)
    assert one_backend(from_pod()) and one_backend(from_client())


def test_terminating_endpoints_serve_until_a_ready_one_appears(kube: E2E) -> None:
    a, b, c = kube.pod("pod-1-1"), kube.pod("pod-2-1"), kube.pod("pod-2-2")
    terminating = {"ready": False, "serving": True, "terminating": True}
    gone = {"ready": False, "serving": False, "terminating": True}
    svc = service("term", "10.96.2.2", nodePort=30092)
    local = service(
        "term-local",
        "10.96.2.12",
        nodePort=30102,
        externalTrafficPolicy="Local",
        internalTrafficPolicy="Local",
    )
    kube.apply(
        svc,
        endpoints(
            "term", [endpoint(b, **terminating), endpoint(c, **terminating), endpoint(a, **gone)]
        ),
        local,
        endpoints("term-local", [endpoint(a), endpoint(b, **terminating), endpoint(c, **gone)]),
    )

    def cluster_ip() -> str:
        return sample(kube, kube.c.pod_ns("pod-1-2"), "10.96.2.2", 80)

    eventually("only serving terminating endpoints", cluster_ip, only(b.name, c.name))
    assert set(sample(kube, kube.c.client, kube.node_ip("node-1"), 30092).split()) <= {
        b.name,
        c.name,
    }
    # Local policies on node-2: its only serving endpoint terminates; the ready one is on
    # node-1. iTP (a pod on node-2 to the cluster IP), then eTP (NodePort from outside)
    inside = eventually(
        "iTP Local: the local terminating endpoint",
        lambda: sample(kube, kube.c.pod_ns("pod-2-2"), "10.96.2.12", 80),
        lambda got: got.startswith("pod-"),
    )
    assert inside.split() == [b.name] * ROUNDS
    answer = kube.from_client(kube.node_ip("node-2"), 30102)
    assert answer == f"{b.name} {kube.topology.client_ip}"
    assert sample(kube, kube.c.client, kube.node_ip("node-2"), 30102).split() == [b.name] * ROUNDS

    ready = [endpoint(b, **terminating), endpoint(c, **terminating), endpoint(a)]
    kube.apply(svc, endpoints("term", ready))
    eventually("the ready endpoint preferred", cluster_ip, only(a.name))
    assert cluster_ip().split() == [a.name] * ROUNDS


def test_topology_hints_keep_traffic_in_the_zone_or_fall_back_to_all(kube: E2E) -> None:
    a, b, c = kube.pod("pod-1-1"), kube.pod("pod-2-1"), kube.pod("pod-2-2")
    assert kube.topology.node("node-1").zone == "zone-1"
    ip = "10.96.2.3"
    close = service("zoned", ip, nodePort=30093, trafficDistribution="PreferClose")

    def zone_1() -> str:  # a pod on node-1
        return sample(kube, kube.c.pod_ns("pod-1-2"), ip, 80)

    def zone_2() -> str:  # node-2 itself
        return sample(kube, kube.c.node_ns("node-2"), ip, 80)

    def zone_1_nodeport() -> str:  # external Cluster-policy traffic follows the hints too
        return sample(kube, kube.c.client, kube.node_ip("node-1"), 30093)

    hinted = [
        endpoint(a, zones=["zone-1"]),
        endpoint(b, zones=["zone-2"]),
        endpoint(c, zones=["zone-2"]),
    ]
    kube.apply_and_wait(close, endpoints("zoned", hinted))
    eventually("zone-1 hints", zone_1, only(a.name))
    eventually("zone-2 hints", zone_2, only(b.name, c.name))
    eventually("zone-1 hints via NodePort", zone_1_nodeport, only(a.name))
    assert zone_1().split() == [a.name] * ROUNDS

    # no endpoint hinted for zone-1: node-1 uses them all; node-2 still its hinted ones
    elsewhere = [
        endpoint(a, zones=["zone-2"]),
        endpoint(b, zones=["zone-2"]),
        endpoint(c, zones=["zone-3"]),
    ]
    kube.apply_and_wait(close, endpoints("zoned", elsewhere))
    eventually("zone-1 falls back to all", zone_1, only(a.name, b.name, c.name))
    eventually("zone-2 hints", zone_2, only(a.name, b.name))

    # one endpoint without a hint: no filter anywhere
    partial = [endpoint(a, zones=["zone-1"]), endpoint(b, zones=["zone-2"]), endpoint(c)]
    kube.apply_and_wait(close, endpoints("zoned", partial))
    eventually("an unhinted endpoint: all, zone-1", zone_1, only(a.name, b.name, c.name))
    eventually("an unhinted endpoint: all, zone-2", zone_2, only(a.name, b.name, c.name))

    # the topology-mode annotation opts in as well
    auto: dict[str, Any] = service("zoned", ip, nodePort=30093)
    auto["metadata"]["annotations"] = {"service.kubernetes.io/topology-mode": "Auto"}
    kube.apply_and_wait(auto, endpoints("zoned", hinted))
    eventually("topology-mode Auto", zone_1, only(a.name))
    eventually("topology-mode Auto, zone-2", zone_2, only(b.name, c.name))


@pytest.mark.parametrize("size", [1 << 20, 4 << 20])
def test_large_transfers_arrive_whole_through_cluster_ip_and_nodeport(kube: E2E, size: int) -> None:
    src = kube.pod("pod-1-1")
    kube.apply(service("big", "10.96.2.4", nodePort=30094), endpoints("big", [kube.pod("pod-2-1")]))
    eventually(
        "service",
        lambda: kube.from_pod(src.name, "10.96.2.4", 80),
        lambda a: a.startswith("pod-2-1"),
    )
    pod_ns = kube.c.pod_ns(src.name)
    assert kube.echo(pod_ns, "10.96.2.4", 80, size) == f"pod-2-1 {src.ip} ok {size}"
    for node in ("node-1", "node-2"):  # from outside, masqueraded; node-1 forwards to node-2
        answer = kube.echo(kube.c.client, kube.node_ip(node), 30094, size)
        assert answer.startswith("pod-2-1 ") and answer.endswith(f" ok {size}"), answer


def test_udp_flow_sent_before_its_endpoint_was_ready_gets_answers_once_it_is(kube: E2E) -> None:
    """kube-proxy's "UDP works when initial unready endpoints become ready": the flow's
    first packets leave a conntrack entry that was never DNATed; it must be cleared."""
    ip, pod = "10.96.2.5", kube.pod("pod-2-1")
    svc = service("late", ip, 53, "UDP", nodePort=30095)

    def cluster_ip() -> str:  # one 5-tuple throughout: the same conntrack entry
        return kube.from_pod("pod-1-1", ip, 53, "udp", sport=40095)

    def nodeport() -> str:
        return kube.c.request(kube.c.client, kube.node_ip("node-1"), 30095, "udp", sport=40096)

    # the service does not exist yet; once the agents have a table (so conntrack runs in
    # the nodes) the flow's first packets go out unNATed and leave entries behind
    kube.apply(service("probe", "10.96.2.15"), endpoints("probe", [pod]))
    eventually("agents up", lambda: kube.from_pod("pod-1-2", "10.96.2.15", 80), starts(pod.name))
    assert cluster_ip() in ("timeout", "refused") and nodeport() in ("timeout", "refused")
    kube.apply(svc, endpoints("late", [endpoint(pod, ready=False)], "UDP"))
    eventually("reject while unready", cluster_ip, "refused".__eq__)
    assert nodeport() == "refused"
    kube.apply(svc, endpoints("late", [endpoint(pod)], "UDP"))
    eventually(
        "answers once ready", cluster_ip, lambda a: a == f"{pod.name} {kube.pod('pod-1-1').ip}"
    )
    eventually("answers once ready, NodePort", nodeport, lambda a: a.startswith(pod.name))


def test_a_pod_reaches_itself_through_its_service_masqueraded(kube: E2E) -> None:
    pod = kube.pod("pod-1-1")
    kube.apply(service("self", "10.96.2.6"), endpoints("self", [pod]))
    answer = eventually(
        "hairpin", lambda: kube.from_pod(pod.name, "10.96.2.6", 80), starts(pod.name)
    )
    assert answer == f"{pod.name} {kube.topology.node(pod.node).gateway}"  # the node's address
