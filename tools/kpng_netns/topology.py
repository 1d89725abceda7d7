"""What a namespace cluster is made of, pure: nodes (address, pod CIDR, zone), pods (node,
address, ports), the underlay, how pods are wired, and the Node objects the watcher reads.

Two pod wirings (:data:`WIRINGS`): ``routed`` (each pod a /32 routed by its node: traffic
between two pods of a node crosses the node's IP layer) and ``bridge`` (pods share their
node's pod CIDR on an L2 bridge, as the bridge CNI plugin and flannel set it up: replies
between two pods of a node are bridged, seen by conntrack only through ``br_netfilter``).

:func:`small` is the test cluster; :func:`from_cluster_objects` places the pods of a
cluster YAML file (its endpoints whose address lies in their node's pod CIDR).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

Wiring = Literal["routed", "bridge"]
WIRINGS: tuple[Wiring, ...] = ("routed", "bridge")
CLUSTER_CIDR6 = "fd10::/48"


@dataclass(frozen=True, slots=True)
class NodeSpec:
    name: str
    ip: str
    pod_cidr: str
    zone: str = "zone-a"
    ip6: str = ""  # dual-stack: the node's IPv6 underlay address and pod CIDR
    pod_cidr6: str = ""

    @property
    def gateway(self) -> str:
        """The node's address on its pod bridge: the first host of the pod CIDR."""
        return str(next(ipaddress.ip_network(self.pod_cidr).hosts()))

    @property
    def gateway6(self) -> str:
        return str(ipaddress.ip_network(self.pod_cidr6)[1]) if self.pod_cidr6 else ""

    def object(self) -> dict[str, Any]:
        cidrs = [c for c in (self.pod_cidr, self.pod_cidr6) if c]
        addresses = [{"type": "InternalIP", "address": ip} for ip in (self.ip, self.ip6) if ip]
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.name,
                "labels": {"topology.kubernetes.io/zone": self.zone},
            },
            "spec": {"podCIDR": self.pod_cidr, "podCIDRs": cidrs},
            "status": {"addresses": addresses},
        }


@dataclass(frozen=True, slots=True)
class PodSpec:
    name: str
    node: str
    ip: str
    ports: tuple[int, ...] = (8080,)
    ip6: str = ""


@dataclass(frozen=True, slots=True)
class Topology:
    nodes: tuple[NodeSpec, ...]
    pods: tuple[PodSpec, ...]
    underlay: str  # CIDR of the underlay bridge
    infra_ip: str  # NATS and the watcher
    client_ip: str  # the outside client
    wiring: Wiring = "routed"
    underlay6: str = ""  # dual-stack: the IPv6 underlay, its infra and client addresses
    infra_ip6: str = ""
    client_ip6: str = ""

    def node(self, name: str) -> NodeSpec:
        return next(n for n in self.nodes if n.name == name)

    def pod(self, name: str) -> PodSpec:
        return next(p for p in self.pods if p.name == name)

    @property
    def prefixlen(self) -> int:
        return ipaddress.ip_network(self.underlay).prefixlen

    def pod_prefixlen(self, pod: PodSpec) -> int:
        """The prefix of a pod's address: /32 routed, its node's pod CIDR on a bridge."""
        if self.wiring == "routed":
            return 32
        return ipaddress.ip_network(self.node(pod.node).pod_cidr).prefixlen

    def pod_prefixlen6(self, pod: PodSpec) -> int:
        if self.wiring == "routed":
            return 128
        return ipaddress.ip_network(self.node(pod.node).pod_cidr6).prefixlen

    @property
    def cluster_cidrs(self) -> tuple[str, ...]:
        """The pod networks an agent is told of (``--cluster-cidr``)."""
        return ("10.244.0.0/16", CLUSTER_CIDR6) if self.underlay6 else ("10.244.0.0/16",)


def underlay_for(node_ips: Iterable[str]) -> tuple[str, str, str]:
    """(underlay CIDR, infra IP, client IP): the smallest network (/24 at most) holding every
    node address, and its two highest free addresses."""
    ips = [ipaddress.ip_address(ip) for ip in node_ips]
    prefix = 24
    net = ipaddress.ip_network(f"{ips[0]}/{prefix}", strict=False)
    while not all(ip in net for ip in ips):
        prefix -= 1
        net = ipaddress.ip_network(f"{ips[0]}/{prefix}", strict=False)
    free = [str(h) for h in reversed(list(net.hosts())[-8:]) if h not in ips]
    return str(net), free[0], free[1]


def small(
    nodes: int = 2,
    pods_per_node: int = 2,
    port: int = 8080,
    wiring: Wiring = "routed",
    dual_stack: bool = False,
) -> Topology:
    """``node-1``..``node-N`` on 192.168.77.0/24, pods ``pod-<n>-<i>`` at 10.244.n.(1+i);
    dual-stack, also fd00:77::(10+n) on fd00:77::/64 and pods fd10:0:0:n::(1+i) in
    fd10:0:0:n::/64."""
    specs = tuple(
        NodeSpec(
            f"node-{n}",
            f"192.168.77.{10 + n}",
            f"10.244.{n}.0/24",
            f"zone-{n}",
            f"fd00:77::{10 + n}" if dual_stack else "",
            f"fd10:0:0:{n}::/64" if dual_stack else "",
        )
        for n in range(1, nodes + 1)
    )
    pods = tuple(
        PodSpec(
            f"pod-{n}-{i}",
            f"node-{n}",
            f"10.244.{n}.{1 + i}",
            (port,),
            f"fd10:0:0:{n}::{1 + i}" if dual_stack else "",
        )
        for n in range(1, nodes + 1)
        for i in range(1, pods_per_node + 1)
    )
    underlay, infra, client = underlay_for(s.ip for s in specs)
    six = ("fd00:77::/64", "fd00:77::fe", "fd00:77::fd") if dual_stack else ("", "", "")
    return Topology(specs, pods, underlay, infra, client, wiring, *six)


def _node_spec(obj: Mapping[str, Any], index: int) -> NodeSpec | None:
    addresses = obj.get("status", {}).get("addresses", [])
    ip = next((a["address"] for a in addresses if a.get("type") == "InternalIP"), None)
    if ip is None or ipaddress.ip_address(ip).version != 4:
        return None
    cidr = obj.get("spec", {}).get("podCIDR") or f"10.244.{index}.0/24"
    zone = obj["metadata"].get("labels", {}).get("topology.kubernetes.io/zone", "")
    return NodeSpec(obj["metadata"]["name"], ip, cidr, zone)


def _pods(
    objects: Sequence[Mapping[str, Any]], nodes: Mapping[str, NodeSpec]
) -> tuple[PodSpec, ...]:
    found: dict[str, PodSpec] = {}
    for obj in objects:
        if obj.get("kind") != "EndpointSlice" or obj.get("addressType") != "IPv4":
            continue
        ports = tuple(int(p["port"]) for p in obj.get("ports") or [] if "port" in p)
        for e in obj.get("endpoints") or []:
            node = nodes.get(e.get("nodeName", ""))
            for ip in e.get("addresses", []):
                if node is None or ipaddress.ip_address(ip) not in ipaddress.ip_network(
                    node.pod_cidr
                ):
                    continue
                old = found.get(ip)
                name = (e.get("targetRef") or {}).get("name") or f"{obj['metadata']['name']}-{ip}"
                merged = tuple(sorted({*ports, *(old.ports if old else ())}))
                found[ip] = PodSpec(old.name if old else name, node.name, ip, merged)
    return tuple(sorted(found.values(), key=lambda p: ipaddress.ip_address(p.ip)))


def from_cluster_objects(objects: Sequence[Mapping[str, Any]]) -> Topology:
    """The nodes of a cluster file (IPv4 InternalIP) and the pods its endpoints place on them."""
    nodes: dict[str, NodeSpec] = {}
    for obj in objects:
        if obj.get("kind") == "Node":
            spec = _node_spec(obj, len(nodes) + 1)
            if spec is not None:
                nodes[spec.name] = spec
    if not nodes:
        raise ValueError("no Node with an IPv4 InternalIP address")
    underlay, infra, client = underlay_for(n.ip for n in nodes.values())
    return Topology(tuple(nodes.values()), _pods(objects, nodes), underlay, infra, client)
