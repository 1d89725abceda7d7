"""Where would a packet go on a node? kube-proxy's rules, read off the node's view.

:func:`explain` is pure: it takes a node view (what the node's agent programs), the node's
name, a destination (address, protocol, port), optionally the packet's source and the cluster
(pod) CIDRs (or, where pods are told by their interface, whether it comes in on one), and
says which endpoints the packet may reach, whether it is masqueraded, or
whether it is rejected or dropped, and why. It follows ``shared/reference/kube-proxy.md`` and
the node-view contract of ``docs/bus.md`` (``internal``/``external``/``shortcut`` flags,
per service port with ``port_marks``): it never re-selects endpoints.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from kpng.diff import View
from kpng.model import (
    EXTERNAL_MARK,
    INTERNAL_MARK,
    SHORTCUT_MARK,
    Service,
    ServicePort,
    TrafficPolicy,
    TransportProtocol,
    ViewEndpoint,
    address_family,
    endpoint_port,
)

Verdict = Literal["forward", "reject", "drop", "pass"]
Match = Literal["clusterIP", "nodePort", "externalIP", "loadBalancerIP"]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class DnatEndpoint:
    """One endpoint the packet may be DNATed to."""

    ip: str
    port: int
    node: str
    local: bool
    terminating: bool


@dataclass(frozen=True, slots=True)
class Explanation:
    """``masquerade`` is None when it depends on a source that was not given."""

    verdict: Verdict
    match: Match | None = None
    service: str | None = None
    port: str | None = None
    targets: tuple[DnatEndpoint, ...] = ()
    masquerade: bool | None = None
    affinity_timeout: int | None = None
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PacketQuery:
    """The packet asked about: where it goes and, when known, where it comes from."""

    destination: str
    protocol: TransportProtocol
    port: int
    source: str | None = None
    # it comes in on a pod's interface: how a node whose agent tells pods by their interface
    # (--detect-local-mode BridgeInterface, InterfaceNamePrefix) knows; None: not said
    from_pod: bool | None = None


def parse_cidrs(text: str | Sequence[str]) -> tuple[Network, ...]:
    """CIDRs from ``"a,b"`` or a list; padding is stripped, host bits are allowed."""
    items = text.split(",") if isinstance(text, str) else list(text)
    return tuple(ipaddress.ip_network(i.strip(), strict=False) for i in items if i.strip())


def _in(ip: str, networks: Sequence[Network]) -> bool:
    address = ipaddress.ip_address(ip)
    return any(address.version == n.version and address in n for n in networks)


def _same_ip(a: str, b: str) -> bool:
    return ipaddress.ip_address(a) == ipaddress.ip_address(b)


def explain(
    view: View[ViewEndpoint],
    node: str,
    packet: PacketQuery,
    cluster_cidrs: Sequence[Network] = (),
    by_interface: bool = False,
) -> Explanation:
    """What ``node`` does with ``packet``; pods are told by ``cluster_cidrs`` (a source in
    them), or ``by_interface``: by the packet's ``from_pod``. Raises ValueError for
    addresses that are not IPs."""
    ipaddress.ip_address(packet.destination)
    if packet.source is not None:
        ipaddress.ip_address(packet.source)
    node_info = view.nodes.get(node)
    node_ips = node_info.addresses if node_info is not None else ()
    for key in sorted(view.services):
        found = _match(view.services[key], packet, node_ips)
        if found is not None:
            match, port = found
            rules = _Rules(
                view, node, packet, view.services[key], port, cluster_cidrs, node_ips, by_interface
            )
            return rules.run(match)
    return _unmatched(view, packet, node_ips, node_info is None)


def _match(
    service: Service, packet: PacketQuery, node_ips: Sequence[str]
) -> tuple[Match, ServicePort | None] | None:
    """How the packet's destination hits this service; a None port: a cluster IP, no port."""
    dst = packet.destination

    def port_of(number: Literal["port", "node_port"]) -> ServicePort | None:
        for p in service.ports:
            if p.protocol == packet.protocol and getattr(p, number) == packet.port:
                return p
        return None

    if any(_same_ip(dst, ip) for ip in service.cluster_ips):
        return "clusterIP", port_of("port")
    port = port_of("port")
    if port is not None and any(_same_ip(dst, ip) for ip in service.load_balancer_ips):
        return "loadBalancerIP", port
    if port is not None and any(_same_ip(dst, ip) for ip in service.external_ips):
        return "externalIP", port
    node_port = port_of("node_port")
    if packet.port and node_port is not None and any(_same_ip(dst, ip) for ip in node_ips):
        return "nodePort", node_port
    return None


def _unmatched(
    view: View[ViewEndpoint], packet: PacketQuery, node_ips: Sequence[str], node_unknown: bool
) -> Explanation:
    reasons = [f"{packet.destination} {packet.protocol}/{packet.port} is no service address"]
    if node_unknown:
        reasons.append("the node is not in its view (no Node object): NodePorts are unknown")
    elif any(_same_ip(packet.destination, ip) for ip in node_ips):
        health = [
            s.key
            for s in view.services.values()
            if s.health_check_node_port == packet.port and packet.protocol == TransportProtocol.TCP
        ]
        if health:
            reasons.append(f"it is the health check node port of {health[0]} (served locally)")
        else:
            reasons.append("a node address, but no service has this node port")
    if ipaddress.ip_address(packet.destination).is_loopback:
        reasons.append("no NodePorts on localhost in nftables mode")
    reasons.append("kpng does not touch the packet: it is routed as usual")
    return Explanation("pass", reasons=tuple(reasons))


@dataclass(slots=True)
class _Rules:
    view: View[ViewEndpoint]
    node: str
    packet: PacketQuery
    service: Service
    port: ServicePort | None
    cluster_cidrs: Sequence[Network]
    node_ips: Sequence[str]
    by_interface: bool = False  # pods told by their interface: the packet's from_pod

    def result(
        self,
        verdict: Verdict,
        match: Match,
        reasons: list[str],
        targets: tuple[DnatEndpoint, ...] = (),
        masquerade: bool | None = None,
    ) -> Explanation:
        affinity = self.service.affinity_timeout or None
        if affinity and verdict == "forward":
            reasons.append(
                f"session affinity ClientIP: a client keeps its endpoint for {affinity}s"
            )
        return Explanation(
            verdict,
            match,
            self.service.key,
            self.port.name if self.port is not None else None,
            targets,
            masquerade,
            affinity,
            tuple(reasons),
        )

    def run(self, match: Match) -> Explanation:
        where = f"{self.packet.destination} {self.packet.protocol}/{self.packet.port}"
        reasons = [f"{where} is a {_MATCH_NAMES[match]} of {self.service.key}"]
        if self.port is None:
            reasons[0] = f"{self.packet.destination} is a cluster IP of {self.service.key}"
            reasons.append(
                f"but it has no {self.packet.protocol} port {self.packet.port}: rejected"
            )
            return self.result("reject", match, reasons)
        if match == "clusterIP":
            return self.internal(reasons)
        if match == "loadBalancerIP" and not self.source_allowed(reasons):
            return self.result("drop", match, reasons)
        return self.external(match, reasons)

    # -- endpoints ---------------------------------------------------------------------------
    def endpoints(self) -> Mapping[str, ViewEndpoint]:
        """The service's endpoints of the destination's family: each family has a table of
        its own (kube-proxy: a proxier of its own) that knows only that family's."""
        family = address_family(self.packet.destination)
        eps = self.view.endpoints_of(self.service.key)
        return {ip: e for ip, e in eps.items() if address_family(ip) == family}

    def targets(
        self, flag: Literal["internal", "external", "shortcut"]
    ) -> tuple[DnatEndpoint, ...]:
        """The endpoints of the service port (those that list it) marked for ``flag`` on
        this port (``shortcut``: pods' and the node's traffic to an external address when
        both traffic policies are Local)."""
        sp = self.port
        assert sp is not None
        eps = [(e, p) for e in self.endpoints().values() if (p := _target_port(sp, e))]
        k = _MARK_INDEX[flag]
        chosen = [(e, p) for e, p in eps if e.all_marks(sp.name, sp.protocol)[k]]
        chosen.sort(key=lambda ep: ipaddress.ip_address(ep[0].ip))
        return tuple(
            DnatEndpoint(e.ip, p, e.node, e.node == self.node, e.terminating) for e, p in chosen
        )

    def no_targets(
        self, match: Match, kind: str, policy: TrafficPolicy, reasons: list[str]
    ) -> Explanation:
        """Rejected, unless a Local policy finds only endpoints elsewhere: dropped. Endpoints
        are per service port: one without this port is none of its endpoints."""
        assert self.port is not None
        port = self.port
        if not any(_target_port(port, e) is not None for e in self.endpoints().values()):
            reasons.append("the service has no usable endpoint: rejected (connection refused)")
            return self.result("reject", match, reasons)
        if policy != "Local":
            reasons.append(f"no endpoint may take {kind} traffic: rejected (connection refused)")
            return self.result("reject", match, reasons)
        reasons.append(
            f"the service has endpoints, none for {kind} traffic on {self.node}"
            f" ({kind} traffic policy Local, no local endpoint): dropped"
        )
        return self.result("drop", match, reasons)

    # -- internal (cluster IP) ---------------------------------------------------------------
    def internal(self, reasons: list[str]) -> Explanation:
        policy = self.service.internal_traffic_policy
        targets = self.targets("internal")
        if not targets:
            return self.no_targets("clusterIP", "internal", policy, reasons)
        reasons.append(_spread("internal", policy, targets))
        masquerade = self.cluster_ip_masquerade(reasons)
        masquerade = self.hairpin(targets, masquerade, reasons)
        return self.result("forward", "clusterIP", reasons, targets, masquerade)

    def cluster_ip_masquerade(self, reasons: list[str]) -> bool | None:
        source = self.packet.source
        if self.by_interface:
            return self.interface_masquerade(reasons)
        if not self.cluster_cidrs:
            reasons.append(
                "masquerade: only from outside the pod network, unknown without clusterCIDR"
            )
            return None
        if source is None:
            reasons.append("masquerade: only if the source is outside the pod network")
            return None
        if _in(source, self.cluster_cidrs):
            reasons.append(f"no masquerade: {source} is in the pod network (source IP kept)")
            return False
        reasons.append(f"masquerade: {source} is outside the pod network")
        return True

    def interface_masquerade(self, reasons: list[str]) -> bool | None:
        from_pod = self.packet.from_pod
        if from_pod is None:
            reasons.append(
                "masquerade: only from outside the pods, told here by their interface:"
                " unknown without fromPod"
            )
            return None
        if from_pod:
            reasons.append("no masquerade: it comes in on a pod's interface (source IP kept)")
            return False
        reasons.append("masquerade: it does not come in on a pod's interface")
        return True

    def hairpin(
        self, targets: tuple[DnatEndpoint, ...], masquerade: bool | None, reasons: list[str]
    ) -> bool | None:
        source = self.packet.source
        if source is None or not any(_same_ip(source, t.ip) for t in targets):
            return masquerade
        reasons.append(f"hairpin: when {source} reaches itself, that connection is masqueraded")
        return True if len(targets) == 1 else masquerade

    # -- external (node ports, external IPs, load-balancer IPs) ------------------------------
    def source_allowed(self, reasons: list[str]) -> bool:
        ranges = parse_cidrs(self.service.load_balancer_source_ranges)
        if not ranges:
            return True
        shown = ", ".join(str(r) for r in ranges)
        if self.packet.source is None:
            reasons.append(f"loadBalancerSourceRanges {shown}: other sources are dropped")
            return True
        if _in(self.packet.source, ranges):
            reasons.append(f"{self.packet.source} is within loadBalancerSourceRanges {shown}")
            return True
        reasons.append(
            f"{self.packet.source} is outside loadBalancerSourceRanges {shown}: dropped before DNAT"
        )
        return False

    def from_inside(self) -> Literal["node", "pod"] | None:
        source = self.packet.source
        if source is not None and any(_same_ip(source, ip) for ip in self.node_ips):
            return "node"
        if self.by_interface:
            return "pod" if self.packet.from_pod else None
        if source is None:
            return None
        if self.cluster_cidrs and _in(source, self.cluster_cidrs):
            return "pod"
        return None

    def external(self, match: Match, reasons: list[str]) -> Explanation:
        policy = self.service.external_traffic_policy
        if policy == "Local":
            inside = self.from_inside()
            if inside is not None:
                return self.short_circuit(match, inside, reasons)
        targets = self.targets("external")
        if not targets:
            return self.no_targets(match, "external", policy, reasons)
        reasons.append(_spread("external", policy, targets))
        masquerade: bool | None
        if policy == "Local":
            reasons.append("no masquerade: externalTrafficPolicy Local keeps the source IP")
            if self.packet.source is None:
                reasons.append(
                    "(traffic from this node or, with clusterCIDR, from pods goes cluster-wide)"
                )
            masquerade = False
        else:
            reasons.append("masquerade: external traffic with Cluster policy is SNATed")
            masquerade = True
        masquerade = self.hairpin(targets, masquerade, reasons)
        return self.result("forward", match, reasons, targets, masquerade)

    def short_circuit(
        self, match: Match, inside: Literal["node", "pod"], reasons: list[str]
    ) -> Explanation:
        if self.service.internal_traffic_policy == "Cluster":
            targets = self.targets("internal")
        else:  # both policies Local: the view marks the cluster-wide endpoints for it
            targets = self.targets("shortcut") or self.targets("internal")
        who = "this node" if inside == "node" else "a pod"
        reasons.append(
            f"externalTrafficPolicy Local, but the source is {who}:"
            " short-circuited to the cluster-wide endpoints"
        )
        if not targets:  # the external address's own verdict, as for any other source
            return self.no_targets(match, "external", TrafficPolicy.LOCAL, reasons)
        masquerade = inside == "node"
        reasons.append(
            "masquerade: traffic from the node itself is SNATed"
            if masquerade
            else "no masquerade: the pod's source IP is kept"
        )
        masquerade = bool(self.hairpin(targets, masquerade, reasons))
        return self.result("forward", match, reasons, targets, masquerade)


_MARK_INDEX = {"internal": INTERNAL_MARK, "external": EXTERNAL_MARK, "shortcut": SHORTCUT_MARK}
_MATCH_NAMES: dict[Match, str] = {
    "clusterIP": "cluster IP",
    "nodePort": "node port",
    "externalIP": "external IP",
    "loadBalancerIP": "load-balancer IP",
}


def _target_port(port: ServicePort, endpoint: ViewEndpoint) -> int | None:
    """The endpoint port for a service port: same name and protocol (EndpointSlice rules)."""
    return endpoint_port(port, endpoint) or None


def _spread(kind: str, policy: TrafficPolicy, targets: Sequence[DnatEndpoint]) -> str:
    where = "local " if policy == "Local" else ""
    terminating = ""
    if all(t.terminating for t in targets):
        terminating = " (terminating endpoints: the fallback, none is ready)"
    shown = ", ".join(f"{t.ip}:{t.port}" for t in targets)
    return f"{kind} traffic is spread over {len(targets)} {where}endpoint(s): {shown}{terminating}"
