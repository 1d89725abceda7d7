"""IPv6 and dual-stack with real traffic: a dual-stack namespace cluster (an IPv6 underlay
beside the IPv4 one, IPv6 pod CIDRs fd10:0:0:N::/64), on each pod wiring, agents over NATS
programming their ``ip6 kpng`` table beside ``ip kpng``. For external and load-balancer IPs
the outside client routes 2001:db8:113::/64 to node-1."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from kpng_netns.netns import sh
from tests.e2e.cluster import (
    E2E,
    dual_stack,
    endpoint,
    endpoints,
    endpoints6,
    eventually,
    here_there_dns,
    ipv6_only,
)

pytestmark = pytest.mark.netns


EXTERNAL6 = "2001:db8:113::/64"  # external and LB IPs over IPv6, routed to node-1


def starts(name: str) -> Callable[[str], bool]:
    return lambda answer: answer.split()[:1] == [name]


@pytest.fixture
def ext6(dual: E2E) -> E2E:
    sh("ip", "-6", "route", "replace", EXTERNAL6, "via", dual.node_ip6("node-1"), ns=dual.c.client)
    return dual


def lb6(name: str, ip6: str, lb_ip: str, **spec: Any) -> dict[str, Any]:
    s = ipv6_only(name, ip6, type="LoadBalancer", **spec)
    s["status"] = {"loadBalancer": {"ingress": [{"ip": lb_ip}]}}
    return s


def test_a_dual_stack_service_reaches_each_family_its_own_endpoints(dual: E2E) -> None:
    v4, v6, client = dual.pod("pod-2-1"), dual.pod("pod-2-2"), dual.pod("pod-1-1")
    dual.apply_and_wait(
        dual_stack("both", "10.96.6.1", "fd00:96::1"),
        endpoints("both", [v4]),
        endpoints6("both", [v6]),
    )
    eventually("IPv6", lambda: dual.from_pod(client.name, "fd00:96::1", 80), starts(v6.name))
    ns = dual.c.pod_ns(client.name)
    assert set(dual.answers(ns, "10.96.6.1", 80, 8)) == {f"{v4.name} {client.ip}"}
    assert set(dual.answers(ns, "fd00:96::1", 80, 8)) == {f"{v6.name} {client.ip6}"}


def test_each_family_falls_back_to_its_own_terminating_endpoints(dual: E2E) -> None:
    """kube-proxy runs a proxier per family, each with its own family's slices: the IPv4
    endpoint, serving but terminating, still takes IPv4 traffic while the only ready
    endpoint is IPv6 (the service as a whole has a ready endpoint: not a reason to reject)."""
    v4, v6, client = dual.pod("pod-2-1"), dual.pod("pod-2-2"), dual.pod("pod-1-1")
    going = endpoint(v4, ready=False, serving=True, terminating=True)
    dual.apply_and_wait(
        dual_stack("fallback", "10.96.6.2", "fd00:96::2"),
        endpoints("fallback", [going]),
        endpoints6("fallback", [v6]),
    )
    eventually("IPv4", lambda: dual.from_pod(client.name, "10.96.6.2", 80), starts(v4.name))
    ns = dual.c.pod_ns(client.name)
    assert set(dual.answers(ns, "10.96.6.2", 80, 4)) == {f"{v4.name} {client.ip}"}
    assert set(dual.answers(ns, "fd00:96::2", 80, 4)) == {f"{v6.name} {client.ip6}"}


def test_ipv6_cluster_ip_keeps_the_pod_source_and_hairpin_is_masqueraded(dual: E2E) -> None:
    here, there, client = dual.pod("pod-1-1"), dual.pod("pod-2-1"), dual.pod("pod-1-2")
    dual.apply_and_wait(
        *here_there_dns(here, there, ("fd00:96::2", "fd00:96::3", "fd00:96::8"), ipv6=True)
    )
    eventually("IPv6", lambda: dual.from_pod(client.name, "fd00:96::3", 80), starts(there.name))
    assert dual.from_pod(client.name, "fd00:96::3", 80) == f"{there.name} {client.ip6}"
    assert dual.from_pod(client.name, "fd00:96::2", 80) == f"{here.name} {client.ip6}"
    assert dual.from_pod(client.name, "fd00:96::8", 53, "udp") == f"{here.name} {client.ip6}"
    gateway6 = dual.topology.node(here.node).gateway6
    assert dual.from_pod(here.name, "fd00:96::2", 80) == f"{here.name} {gateway6}"


def test_nodeport_over_ipv6_masqueraded_and_etp_local_keeps_the_source_or_drops(
    dual: E2E,
) -> None:
    pod = dual.pod("pod-1-1")
    dual.apply_and_wait(
        ipv6_only("np", "fd00:96::4", nodePort=30601),
        endpoints6("np", [pod]),
        ipv6_only("local", "fd00:96::5", nodePort=30602, externalTrafficPolicy="Local"),
        endpoints6("local", [pod]),
    )
    client6 = dual.topology.client_ip6
    first = dual.node_ip6("node-1")
    eventually("NodePort over IPv6", lambda: dual.from_client(first, 30601), starts(pod.name))
    for node in ("node-1", "node-2"):
        answer = dual.from_client(dual.node_ip6(node), 30601)
        assert answer.split()[0] == pod.name and answer.split()[1] != client6
    assert dual.from_client(first, 30602) == f"{pod.name} {client6}"
    assert dual.from_client(dual.node_ip6("node-2"), 30602) == "timeout"  # dropped


def test_no_endpoints_is_rejected_over_ipv6_with_icmpv6(dual: E2E) -> None:
    """A reject is an ICMPv6 port unreachable: UDP reads it at once; this kernel's TCP takes
    the one answering a SYN as a soft error and gives up on the next (its retransmission
    after 1 s), so TCP reads "refused" in 1-2 s, where a drop reads "timeout" (2 s)."""
    dual.apply_and_wait(
        ipv6_only("none", "fd00:96::6", nodePort=30603),
        ipv6_only("none-udp", "fd00:96::7", 53, "UDP"),
    )
    eventually("reject", lambda: dual.from_pod("pod-1-1", "fd00:96::6", 80), "refused".__eq__)
    assert dual.from_pod("pod-1-2", "fd00:96::6", 80) == "refused"
    assert dual.from_client(dual.node_ip6("node-2"), 30603) == "refused"
    took = []  # the fastest of 3 (a loaded machine starts a client slowly)
    for _ in range(3):
        started = time.monotonic()
        assert dual.from_pod("pod-1-1", "fd00:96::7", 53, "udp") == "refused"
        took.append(time.monotonic() - started)
    assert min(took) < 1.0


def test_udp_over_ipv6_keeps_working_after_the_server_pod_is_replaced(dual: E2E) -> None:
    old, new = dual.pod("pod-2-1"), dual.pod("pod-2-2")
    dual.apply_and_wait(ipv6_only("dns", "fd00:96::9", 53, "UDP"), endpoints6("dns", [old], "UDP"))

    def ask() -> str:  # one 5-tuple throughout: the same conntrack entry unless it is deleted
        return dual.from_pod("pod-1-1", "fd00:96::9", 53, "udp", sport=40063)

    eventually("UDP over IPv6", ask, starts(old.name))
    dual.apply(ipv6_only("dns", "fd00:96::9", 53, "UDP"), endpoints6("dns", [new], "UDP"))
    eventually("UDP to the new pod", ask, starts(new.name), timeout=10)


def test_external_and_lb_ips_over_ipv6_masquerade_with_cluster_policy_keep_the_source_with_local(
    ext6: E2E,
) -> None:
    there, here = ext6.pod("pod-2-1"), ext6.pod("pod-1-1")
    ext6.apply_and_wait(
        ipv6_only("ext6", "fd00:96::10", externalIPs=["2001:db8:113::10"]),
        endpoints6("ext6", [there]),
        lb6("lb6", "fd00:96::11", "2001:db8:113::11", nodePort=30611),
        endpoints6("lb6", [there]),
        lb6(
            "lbl6", "fd00:96::12", "2001:db8:113::12", nodePort=30612, externalTrafficPolicy="Local"
        ),
        endpoints6("lbl6", [here]),
    )
    client6 = ext6.topology.client_ip6
    ask = ext6.from_client
    eventually("external IP over IPv6", lambda: ask("2001:db8:113::10", 80), starts(there.name))
    for ip in ("2001:db8:113::10", "2001:db8:113::11"):  # Cluster policy: masqueraded
        answer = ask(ip, 80)
        assert answer.split()[0] == there.name and answer.split()[1] != client6, (ip, answer)
    assert ask("2001:db8:113::12", 80) == f"{here.name} {client6}"  # Local: source kept


def test_lb_source_ranges_over_ipv6_filter_lb_ips_only(ext6: E2E) -> None:
    client6, pod = ext6.topology.client_ip6, ext6.pod("pod-2-1")
    ext6.apply_and_wait(
        lb6(
            "allowed6",
            "fd00:96::13",
            "2001:db8:113::13",
            loadBalancerSourceRanges=[f"{client6}/128"],
        ),
        endpoints6("allowed6", [pod]),
        lb6("denied6", "fd00:96::14", "2001:db8:113::14", loadBalancerSourceRanges=[" fd99::/16 "]),
        endpoints6("denied6", [pod]),
    )
    allowed = lambda: ext6.from_client("2001:db8:113::13", 80)  # noqa: E731
    eventually("an allowed source over IPv6", allowed, starts(pod.name))
    assert ext6.from_client("2001:db8:113::14", 80) == "timeout"
    assert ext6.from_pod("pod-1-2", "fd00:96::14", 80).split()[0] == pod.name  # cluster IP


def test_session_affinity_over_ipv6_keeps_one_backend(dual: E2E) -> None:
    pods = [dual.pod("pod-1-1"), dual.pod("pod-2-1"), dual.pod("pod-2-2")]
    dual.apply_and_wait(
        ipv6_only("sticky6", "fd00:96::15", sessionAffinity="ClientIP"), endpoints6("sticky6", pods)
    )
    client = dual.pod("pod-1-2")
    names = {p.name for p in pods}
    eventually(
        "IPv6",
        lambda: dual.from_pod(client.name, "fd00:96::15", 80),
        lambda a: a.split()[0] in names,
    )
    answers = dual.answers(dual.c.pod_ns(client.name), "fd00:96::15", 80, 20)
    assert len(answers) == 20 and len(set(answers)) == 1, answers  # 3 x 3^-20 by chance
    assert answers[0].split()[0] in names and answers[0].split()[1] == client.ip6
