"""The multi-node namespace cluster for end-to-end tests (built by :mod:`kpng_netns`), with
kpng running over NATS in it, and helpers to declare services and poll traffic."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from kpng_netns.cluster import CLIENT, NetnsCluster
from kpng_netns.netns import sh
from kpng_netns.topology import PodSpec, Wiring, small

HTTP_GET = """
import sys, urllib.request, urllib.error
try:
    r = urllib.request.urlopen(sys.argv[1], timeout=3)
    status, body, headers = r.status, r.read(), dict(r.headers)
except urllib.error.HTTPError as e:
    status, body, headers = e.code, e.read(), dict(e.headers)
import json; print(json.dumps({"status": status, "body": body.decode(), "headers": headers}))
"""


BARRIER_IP = "10.96.0.250"


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


def endpoint(
    pod: PodSpec,
    ready: bool = True,
    serving: bool | None = None,
    terminating: bool = False,
    zones: Sequence[str] = (),
) -> dict[str, Any]:
    """One entry of an EndpointSlice: conditions (serving defaults to ready), zone hints."""
    serving = ready if serving is None else serving
    conditions = {"ready": ready, "serving": serving, "terminating": terminating}
    e: dict[str, Any] = {"addresses": [pod.ip], "nodeName": pod.node, "conditions": conditions}
    if zones:
        e["hints"] = {"forZones": [{"name": z} for z in zones]}
    return e


def endpoints(
    name: str, pods: Sequence[PodSpec | dict[str, Any]], proto: str = "TCP"
) -> dict[str, Any]:
    """The EndpointSlice of service ``name``: ready pods, or entries made by :func:`endpoint`."""
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
        "endpoints": [p if isinstance(p, dict) else endpoint(p) for p in pods],
    }


def endpoints6(name: str, pods: Sequence[PodSpec], proto: str = "TCP") -> dict[str, Any]:
    """The IPv6 EndpointSlice of service ``name``: ready pods at their IPv6 addresses."""
    out = endpoints(name, [{**endpoint(p), "addresses": [p.ip6]} for p in pods], proto)
    out["metadata"]["name"] = f"{name}-6"
    out["addressType"] = "IPv6"
    return out


def dual_stack(name: str, ip: str, ip6: str, *args: Any, **spec: Any) -> dict[str, Any]:
    """A RequireDualStack :func:`service` with cluster IPs ``ip`` and ``ip6``."""
    s = service(name, ip, *args, **spec)
    s["spec"].update(
        clusterIPs=[ip, ip6], ipFamilies=["IPv4", "IPv6"], ipFamilyPolicy="RequireDualStack"
    )
    return s


def ipv6_only(name: str, ip6: str, *args: Any, **spec: Any) -> dict[str, Any]:
    s = service(name, ip6, *args, **spec)
    s["spec"].update(ipFamilies=["IPv6"], ipFamilyPolicy="SingleStack")
    return s


def here_there_dns(
    here: PodSpec, there: PodSpec, ips: tuple[str, str, str], ipv6: bool = False
) -> list[dict[str, Any]]:
    """Services here and there (port 80) on those pods, and dns (53/UDP) on ``here``, at
    cluster IPs ``ips``: IPv4 services and slices, or IPv6-only ones with ``ipv6``."""
    svc: Callable[..., dict[str, Any]] = ipv6_only if ipv6 else service
    eps: Callable[..., dict[str, Any]] = endpoints6 if ipv6 else endpoints
    return [
        svc("here", ips[0]),
        eps("here", [here]),
        svc("there", ips[1]),
        eps("there", [there]),
        svc("dns", ips[2], 53, "UDP"),
        eps("dns", [here], "UDP"),
    ]


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

    def __init__(
        self,
        workdir: Path,
        wiring: Wiring = "routed",
        dual_stack: bool = False,
        agent_args: tuple[str, ...] = (),
    ) -> None:
        self.topology = small(nodes=2, pods_per_node=2, wiring=wiring, dual_stack=dual_stack)
        self.c = NetnsCluster(self.topology, workdir)
        self.revision = 0
        self.agent_args = agent_args

    def start(self) -> None:
        self.c.build()
        self.c.write_cluster()
        self.c.start_control()
        for node in self.topology.nodes:
            self.c.start_agent(node.name, "--sync-period", "5", *self.agent_args)

    def pod(self, name: str) -> PodSpec:
        return self.topology.pod(name)

    def node_ip(self, node: str) -> str:
        return self.topology.node(node).ip

    def apply(self, *objects: dict[str, Any]) -> None:
        self.c.write_cluster(objects)

    def apply_and_wait(self, *objects: dict[str, Any]) -> None:
        """:meth:`apply`, then wait until every node's agent has programmed it: a barrier
        service, on a port new to this revision, answers a pod on each node (the watcher
        publishes one read of the file at once, and agents apply it in order)."""
        self.revision += 1
        port = 1000 + self.revision
        target = self.topology.pods[0]
        barrier = service("barrier", BARRIER_IP, port)
        self.apply(*objects, barrier, endpoints("barrier", [target]))
        for node in self.topology.nodes:
            src = [p for p in self.topology.pods if p.node == node.name][-1]
            eventually(
                f"revision {self.revision} on {node.name}",
                lambda src=src: self.from_pod(src.name, BARRIER_IP, port),
                lambda answer: answer.startswith(target.name),
            )

    def from_pod(self, pod: str, ip: str, port: int, proto: str = "tcp", sport: int = 0) -> str:
        return self.c.request(self.c.pod_ns(pod), ip, port, proto, sport)

    def node_ip6(self, node: str) -> str:
        return self.topology.node(node).ip6

    def served_port(self, ns: str, ip: str, port: int) -> str:
        """One TCP request from ``ns``: "<pod> <source> <the pod port that served it>"."""
        return sh(sys.executable, str(CLIENT), "port", "tcp", ip, str(port), ns=ns).strip()

    def from_client(self, ip: str, port: int, proto: str = "tcp") -> str:
        return self.c.request(self.c.client, ip, port, proto)

    def answers(self, ns: str, ip: str, port: int, count: int, proto: str = "tcp") -> list[str]:
        """``count`` requests from ``ns`` (one process): their answers."""
        argv = [sys.executable, str(CLIENT), "repeat", proto, ip, str(port), str(count)]
        return sh(*argv, ns=ns, timeout=60).splitlines()

    def echo(self, ns: str, ip: str, port: int, size: int) -> str:
        """Send ``size`` random bytes from ``ns`` to a pod server's echo mode: "<answer> ok
        <size>" when they all came back unchanged."""
        argv = [sys.executable, str(CLIENT), "echo", "tcp", ip, str(port), str(size)]
        return sh(*argv, ns=ns, timeout=60).strip()

    def http(self, ns: str, url: str) -> dict[str, Any]:
        out: dict[str, Any] = json.loads(sh(sys.executable, "-c", HTTP_GET, url, ns=ns))
        return out

    def close(self) -> None:
        self.c.close()
