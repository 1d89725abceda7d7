"""Per-port endpoint selection end to end, over the namespace cluster with agents over NATS:
a rollout that drops a named port, as kube-proxy serves it (each service port selects among
the endpoints whose slices list it). Real traffic through cluster IP and NodePort."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.e2e.cluster import E2E, endpoint, endpoints, eventually, service

pytestmark = pytest.mark.netns
ROUNDS = 12  # requests per sample: 12 from one of 2 backends by chance is 2 * 2**-12
IP = "10.96.9.1"


def served(kube: E2E, ns: str, ip: str, port: int) -> str:
    """The distinct "pod:port" (the pod port that served) of ``ROUNDS`` requests from
    ``ns``, sorted, space separated."""
    out = set()
    for _ in range(ROUNDS):
        words = kube.served_port(ns, ip, port).split()
        out.add(f"{words[0]}:{words[-1]}")
    return " ".join(sorted(out))


def test_a_port_no_ready_endpoint_lists_goes_to_the_serving_terminating_ones(kube: E2E) -> None:
    """The new pod is ready and lists web only; the old pods terminate (still serving) and
    list web and metrics. web goes to the new pod; metrics, which no ready endpoint lists,
    to the old ones (a per-service selection would reject it: the service has a ready
    endpoint)."""
    new, old1, old2 = kube.pod("pod-1-1"), kube.pod("pod-2-1"), kube.pod("pod-2-2")
    for pod in (old1, old2):
        kube.c.serve(replace(pod, ports=(8080, 9090)))
    svc = service("roll", IP, nodePort=30190)
    svc["spec"]["ports"] = [
        {"name": "web", "protocol": "TCP", "port": 80, "targetPort": 8080, "nodePort": 30190},
        {"name": "metrics", "protocol": "TCP", "port": 81, "targetPort": 9090, "nodePort": 30191},
    ]
    fresh = endpoints("roll", [new])
    fresh["ports"] = [{"name": "web", "port": 8080, "protocol": "TCP"}]
    gone = {"ready": False, "serving": True, "terminating": True}
    leaving = endpoints("roll", [endpoint(old1, **gone), endpoint(old2, **gone)])
    leaving["metadata"]["name"] = "roll-old"
    leaving["ports"] = [
        {"name": "web", "port": 8080, "protocol": "TCP"},
        {"name": "metrics", "port": 9090, "protocol": "TCP"},
    ]
    kube.apply_and_wait(svc, fresh, leaving)
    pod_ns = kube.c.pod_ns("pod-1-2")
    olds = f"{old1.name}:9090 {old2.name}:9090"
    eventually("metrics to the old pods", lambda: served(kube, pod_ns, IP, 81), olds.__eq__)
    assert served(kube, pod_ns, IP, 80) == f"{new.name}:8080"
    for node in ("node-1", "node-2"):
        via = kube.node_ip(node)
        assert served(kube, kube.c.client, via, 30191) == olds, node
        assert served(kube, kube.c.client, via, 30190) == f"{new.name}:8080", node
