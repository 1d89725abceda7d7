"""The multi-node namespace cluster for end-to-end tests (built by :mod:`kpng_netns`), with
kpng running over NATS in it, and helpers to declare services and poll traffic."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from kpng_netns.cluster import NetnsCluster
from kpng_netns.netns import sh
from kpng_netns.topology import PodSpec, small

HTTP_GET = """
import sys, urllib.request, urllib.error
try:
    r = urllib.request.urlopen(sys.argv[1], timeout=3)
    status, body, headers = r.status, r.read(), dict(r.headers)
except urllib.error.HTTPError as e:
    status, body, headers = e.code, e.read(), dict(e.headers)
import json; print(json.dumps({"status": status, "body": body.decode(), "headers": headers}))
"""


def service(name: str, ip: str, port: int = 80, proto: str = "TCP", **spec: Any) -> dict[str, Any]:
    node_port = spec.pop("nodePort", 0)
    ports: dict[str, Any] = {"name": "p", "protocol": proto, "port": port, "targetPort": 8080}
    if node_port:
        ports["nodePort"] = node_port
    spec.setdefault("type", "NodePort" if node_port else "ClusterIP")
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "e2e"},
        "spec": {"clusterIP": ip, "ports": [ports], **spec},
    }


def endpoints(name: str, pods: Sequence[PodSpec], proto: str = "TCP") -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{name}-1",
            "namespace": "e2e",
            "labels": {"kubernetes.io/service-name": name},
        },
        "addressType": "IPv4",
        "ports": [{"name": "p", "port": 8080, "protocol": proto}],
        "endpoints": [
            {"addresses": [p.ip], "nodeName": p.node, "conditions": {"ready": True}} for p in pods
        ],
    }


def eventually(
    what: str, get: Callable[[], str], ok: Callable[[str], bool], timeout: float = 15
) -> str:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        last = get()
        if ok(last):
            return last
        time.sleep(0.2)
    raise AssertionError(f"{what}: still {last!r} after {timeout}s")


class E2E:
    """The cluster with kpng running: 2 nodes x 2 pods, a client, NATS + watcher in infra."""

    def __init__(self, workdir: Path) -> None:
        self.topology = small(nodes=2, pods_per_node=2)
        self.c = NetnsCluster(self.topology, workdir)

    def start(self) -> None:
        self.c.build()
        self.c.write_cluster()
        self.c.start_control()
        for node in self.topology.nodes:
            self.c.start_agent(node.name, "--sync-period", "5")

    def pod(self, name: str) -> PodSpec:
        return self.topology.pod(name)

    def node_ip(self, node: str) -> str:
        return self.topology.node(node).ip

    def apply(self, *objects: dict[str, Any]) -> None:
        self.c.write_cluster(objects)

    def from_pod(self, pod: str, ip: str, port: int, proto: str = "tcp", sport: int = 0) -> str:
        return self.c.request(self.c.pod_ns(pod), ip, port, proto, sport)

    def from_client(self, ip: str, port: int, proto: str = "tcp") -> str:
        return self.c.request(self.c.client, ip, port, proto)

    def http(self, ns: str, url: str) -> dict[str, Any]:
        out: dict[str, Any] = json.loads(sh(sys.executable, "-c", HTTP_GET, url, ns=ns))
        return out

    def close(self) -> None:
        self.c.close()
