"""kpng end to end: watcher and NATS in an infra namespace, an nftables agent in each of two
node namespaces, pods answering with their name and the client's address, real traffic."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable

import pytest
from prometheus_client.parser import text_string_to_metric_families

from kpng_netns.cluster import CLIENT
from tests.e2e.cluster import E2E, endpoint, endpoints, eventually, service

pytestmark = pytest.mark.netns


def starts(name: str) -> Callable[[str], bool]:
    return lambda answer: answer.split()[:1] == [name]


def answered(answer: str) -> bool:
    return answer.startswith("pod-")


def test_cluster_ip_from_a_pod_on_the_other_node_keeps_the_pod_source(kube: E2E) -> None:
    kube.apply(service("web", "10.96.1.1"), endpoints("web", [kube.pod("pod-2-1")]))
    answer = eventually(
        "cluster IP", lambda: kube.from_pod("pod-1-1", "10.96.1.1", 80), starts("pod-2-1")
    )
    assert answer == f"pod-2-1 {kube.pod('pod-1-1').ip}"


def test_nodeport_from_the_outside_client(kube: E2E) -> None:
    kube.apply(service("np", "10.96.1.2", nodePort=30081), endpoints("np", [kube.pod("pod-1-1")]))
    for node in ("node-1", "node-2"):
        ip = kube.node_ip(node)
        answer = eventually(
            "NodePort", lambda ip=ip: kube.from_client(ip, 30081), starts("pod-1-1")
        )
        assert answer.split()[1] != kube.topology.client_ip  # Cluster policy: masqueraded


def test_etp_local_keeps_the_client_source_and_drops_without_local_endpoints(kube: E2E) -> None:
    s = service("local", "10.96.1.3", nodePort=30082, externalTrafficPolicy="Local")
    kube.apply(s, endpoints("local", [kube.pod("pod-1-1")]))
    answer = eventually(
        "eTP Local", lambda: kube.from_client(kube.node_ip("node-1"), 30082), starts("pod-1-1")
    )
    assert answer == f"pod-1-1 {kube.topology.client_ip}"
    assert kube.from_client(kube.node_ip("node-2"), 30082) == "timeout"


def test_itp_local_uses_local_endpoints_and_drops_without(kube: E2E) -> None:
    here = service("here", "10.96.1.4", internalTrafficPolicy="Local")
    away = service("away", "10.96.1.5", internalTrafficPolicy="Local")
    kube.apply(
        here,
        endpoints("here", [kube.pod("pod-1-1"), kube.pod("pod-2-1")]),
        away,
        endpoints("away", [kube.pod("pod-2-2")]),
    )
    eventually("iTP Local", lambda: kube.from_pod("pod-1-2", "10.96.1.4", 80), starts("pod-1-1"))
    assert {kube.from_pod("pod-1-2", "10.96.1.4", 80).split()[0] for _ in range(8)} == {"pod-1-1"}
    assert kube.from_pod("pod-1-2", "10.96.1.5", 80) == "timeout"


def test_no_endpoints_is_connection_refused_within_a_second(kube: E2E) -> None:
    kube.apply(service("none", "10.96.1.6", nodePort=30083))
    eventually("reject", lambda: kube.from_pod("pod-1-1", "10.96.1.6", 80), "refused".__eq__)
    for get in (
        lambda: kube.from_pod("pod-1-1", "10.96.1.6", 80),
        lambda: kube.from_client(kube.node_ip("node-2"), 30083),
    ):
        started = time.monotonic()
        assert get() == "refused"
        assert time.monotonic() - started < 1.0


def test_session_affinity_keeps_one_backend_then_lets_go_after_the_timeout(kube: E2E) -> None:
    s = service(
        "sticky",
        "10.96.1.7",
        sessionAffinity="ClientIP",
        sessionAffinityConfig={"clientIP": {"timeoutSeconds": 2}},
    )
    kube.apply(s, endpoints("sticky", [kube.pod("pod-1-1"), kube.pod("pod-2-1")]))
    first = eventually("affinity", lambda: kube.from_pod("pod-1-2", "10.96.1.7", 80), answered)
    chosen = {kube.from_pod("pod-1-2", "10.96.1.7", 80).split()[0] for _ in range(20)}
    assert chosen == {first.split()[0]}
    for _ in range(10):  # each try after the timeout picks at random again
        time.sleep(2.5)
        if kube.from_pod("pod-1-2", "10.96.1.7", 80).split()[0] != first.split()[0]:
            return
    raise AssertionError("the affinity never expired")


def test_udp_keeps_working_after_the_server_pod_is_replaced(kube: E2E) -> None:
    kube.apply(
        service("dns", "10.96.1.8", 53, "UDP"), endpoints("dns", [kube.pod("pod-2-1")], "UDP")
    )

    def ask() -> str:  # one 5-tuple throughout: the same conntrack entry unless it is deleted
        return kube.from_pod("pod-1-1", "10.96.1.8", 53, "udp", sport=40053)

    eventually("UDP service", ask, starts("pod-2-1"))
    kube.apply(
        service("dns", "10.96.1.8", 53, "UDP"), endpoints("dns", [kube.pod("pod-2-2")], "UDP")
    )
    eventually("UDP to the new pod", ask, starts("pod-2-2"), timeout=10)


def test_restarting_the_agent_under_a_steady_stream_loses_no_request(kube: E2E) -> None:
    s = service("steady", "10.96.1.9", nodePort=30084)
    kube.apply(s, endpoints("steady", [kube.pod("pod-1-1"), kube.pod("pod-2-2")]))
    node_ip = kube.node_ip("node-1")
    eventually("NodePort", lambda: kube.from_client(node_ip, 30084), answered)
    argv = [sys.executable, str(CLIENT), "stream", "tcp", node_ip, "30084", "8", "0.05"]
    stream = subprocess.Popen(
        ["ip", "netns", "exec", kube.c.client, *argv], stdout=subprocess.PIPE, text=True
    )
    try:
        time.sleep(1)
        kube.c.stop_agent("node-1")
        kube.c.start_agent("node-1", "--sync-period", "5")
        out, _ = stream.communicate(timeout=30)
    finally:
        if stream.poll() is None:
            stream.kill()
            stream.wait()
    answers = [line.split(maxsplit=1)[1] for line in out.splitlines() if line != "done"]
    assert len(answers) > 50 and out.endswith("done\n")
    assert [a for a in answers if not a.startswith("pod-")] == []
    health = eventually(
        "the restarted agent to sync",
        lambda: kube.http(kube.c.node_ns("node-1"), "http://127.0.0.1:10256/healthz")["body"],
        lambda body: '"lastUpdated": "2' in body,
    )
    assert '"healthy": true' in health


def test_an_endpoint_added_then_removed_in_the_yaml_reaches_the_dataplane(kube: E2E) -> None:
    a, b = kube.pod("pod-1-1"), kube.pod("pod-2-2")
    kube.apply(service("edit", "10.96.1.10"), endpoints("edit", [a]))
    eventually("first endpoint", lambda: kube.from_pod("pod-1-2", "10.96.1.10", 80), starts(a.name))
    kube.apply(service("edit", "10.96.1.10"), endpoints("edit", [a, b]))
    eventually("added endpoint", lambda: kube.from_pod("pod-1-2", "10.96.1.10", 80), starts(b.name))
    kube.apply(service("edit", "10.96.1.10"), endpoints("edit", [b]))
    time.sleep(1)
    assert {kube.from_pod("pod-1-2", "10.96.1.10", 80).split()[0] for _ in range(8)} == {b.name}


def test_healthz_health_check_node_port_metrics_and_proxy_mode(kube: E2E) -> None:
    s = service(
        "lb",
        "10.96.1.11",
        nodePort=30085,
        type="LoadBalancer",
        externalTrafficPolicy="Local",
        healthCheckNodePort=32085,
    )
    kube.apply(s, endpoints("lb", [kube.pod("pod-1-1")]))
    node1, node2 = kube.c.node_ns("node-1"), kube.c.node_ns("node-2")
    url = "http://127.0.0.1:32085/"
    eventually(
        "health check port",
        lambda: str(kube.http(node1, url)["status"]) if _up(kube, node1, url) else "",
        "200".__eq__,
    )
    ok = kube.http(node1, url)
    assert (
        '"localEndpoints": 1' in ok["body"]
        and ok["headers"]["X-Load-Balancing-Endpoint-Weight"] == "1"
    )
    eventually(
        "503 on node-2",
        lambda: str(kube.http(node2, url)["status"]) if _up(kube, node2, url) else "",
        "503".__eq__,
    )
    assert '"localEndpoints": 0' in kube.http(node2, url)["body"]
    assert kube.http(node1, "http://127.0.0.1:10256/healthz")["status"] == 200
    assert kube.http(node1, "http://127.0.0.1:10256/livez")["status"] == 200
    assert kube.http(node1, "http://127.0.0.1:10249/proxyMode")["body"] == "nftables"
    text = kube.http(node1, "http://127.0.0.1:10249/metrics")["body"]
    names = {f.name for f in text_string_to_metric_families(text)}
    for name in (
        "kubeproxy_sync_proxy_rules_duration_seconds",
        "kubeproxy_network_programming_duration_seconds",
        "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
        "kubeproxy_conntrack_reconciler_deleted_entries",
        "kubeproxy_sync_proxy_rules_no_local_endpoints_total",
        "process_cpu_seconds",  # the process's own, as kube-proxy's
        "process_resident_memory_bytes",
        "kpng_process_children_cpu_seconds",
    ):
        assert name in names, name
    # as kube-proxy 1.34: each family's syncs counted on their own, the nftables backend's
    syncs = {
        s.labels["ip_family"]: s.value
        for f in text_string_to_metric_families(text)
        if f.name == "kubeproxy_sync_proxy_rules_duration_seconds"
        for s in f.samples
        if s.name.endswith("_count")
    }
    assert set(syncs) == {"IPv4", "IPv6"} and all(n >= 1 for n in syncs.values()), syncs
    s["spec"]["healthCheckNodePort"] = 32086
    kube.apply(s, endpoints("lb", [kube.pod("pod-1-1")]))
    eventually(
        "the old port closed", lambda: "up" if _up(kube, node1, url) else "closed", "closed".__eq__
    )
    # only a serving, terminating endpoint on node-1: not healthy (kube-proxy counts ready)
    url = "http://127.0.0.1:32086/"
    eventually("the new port", lambda: str(kube.http(node1, url)["status"]), "200".__eq__)
    going = endpoint(kube.pod("pod-1-1"), ready=False, serving=True, terminating=True)
    kube.apply(s, endpoints("lb", [going]))
    eventually(
        "503 with only a terminating endpoint",
        lambda: str(kube.http(node1, url)["status"]),
        "503".__eq__,
    )
    assert '"localEndpoints": 0' in kube.http(node1, url)["body"]


def _up(kube: E2E, ns: str, url: str) -> bool:
    try:
        kube.http(ns, url)
    except Exception:
        return False
    return True
