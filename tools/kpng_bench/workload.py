"""Synthetic node views (S services x E endpoints) and kube-proxy's ruleset shape for them.

A *stack* is the cluster's IP families: ``ipv4``, ``ipv6`` (every address IPv6) or ``dual``
(each service with a cluster IP of each family, E endpoints of each family, the node with an
address of each family)."""

from __future__ import annotations

import ipaddress

from kpng.diff import View
from kpng.model import (
    EndpointPort,
    Node,
    Service,
    ServicePort,
    ServiceType,
    TransportProtocol,
    ViewEndpoint,
)

NODE = "bench-node"
NODE_IP = "192.168.77.1"
NODE_IP6 = "fd00:77::1"
STACKS = ("ipv4", "ipv6", "dual")
FAMILIES = {"ipv4": (4,), "ipv6": (6,), "dual": (4, 6)}
SVC_BASE = {4: int(ipaddress.ip_address("10.96.0.1")), 6: int(ipaddress.ip_address("fd00:96::1"))}
EP_BASE = {4: int(ipaddress.ip_address("10.128.0.1")), 6: int(ipaddress.ip_address("fd00:128::1"))}


def service_ip(i: int, family: int = 4) -> str:
    return str(ipaddress.ip_address(SVC_BASE[family] + i))


def endpoint(i: int, k: int, per: int, family: int = 4) -> ViewEndpoint:
    ip = str(ipaddress.ip_address(EP_BASE[family] + i * per + k))
    port = (EndpointPort("http", TransportProtocol.TCP, 8080),)
    return ViewEndpoint(ip, port, node="elsewhere", internal=True, external=True)


def service(i: int, stack: str = "ipv4") -> Service:
    port = ServicePort("http", TransportProtocol.TCP, 80, 8080, 30000 + i % 2000 if i < 2000 else 0)
    kind = ServiceType.NODE_PORT if i < 2000 else ServiceType.CLUSTER_IP
    ips = tuple(service_ip(i, f) for f in FAMILIES[stack])
    return Service("bench", f"s{i}", kind, ips, (port,))


def node_addresses(stack: str) -> tuple[str, ...]:
    return tuple({4: NODE_IP, 6: NODE_IP6}[f] for f in FAMILIES[stack])


def node_view(services: int, per: int, stack: str = "ipv4") -> View[ViewEndpoint]:
    v: View[ViewEndpoint] = View()
    v.nodes[NODE] = Node(NODE, node_addresses(stack))
    for i in range(services):
        s = service(i, stack)
        v.services[s.key] = s
        v.endpoints[s.key] = {
            e.ip: e for f in FAMILIES[stack] for e in (endpoint(i, k, per, f) for k in range(per))
        }
    return v


def kube_proxy_shape(v: View[ViewEndpoint], table: str) -> str:
    """The shape kube-proxy's nftables mode documents: a chain per service and endpoint
    (an IPv4 view's)."""
    out = [
        f"table ip {table} {{",
        "chain mark-for-masquerade { meta mark set meta mark | 0x4000\n}",
    ]
    vmap = []
    for n, (key, s) in enumerate(v.services.items()):
        eps = list(v.endpoints_of(key).values())
        ip = s.cluster_ips[0]
        vmap.append(f"{ip} . tcp . 80 : goto svc-{n}")
        seps = ", ".join(f"{k} : goto sep-{n}-{k}" for k in range(len(eps)))
        out.append(
            f"chain svc-{n} {{ ip daddr {ip} tcp dport 80 ip saddr != 10.244.0.0/16"
            f" jump mark-for-masquerade\n numgen random mod {len(eps)} vmap {{ {seps} }}\n}}"
        )
        for k, e in enumerate(eps):
            out.append(
                f"chain sep-{n}-{k} {{ ip saddr {e.ip} jump mark-for-masquerade\n"
                f" meta l4proto tcp dnat to {e.ip}:8080\n}}"
            )
    out.append(
        "map service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; elements = { "
        + ", ".join(vmap)
        + " } }"
    )
    out.append(
        "chain services { type nat hook prerouting priority -100 ;"
        " ip daddr . meta l4proto . th dport vmap @service-ips\n}"
    )
    out.append("}")
    return "\n".join(out) + "\n"
