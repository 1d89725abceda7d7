"""Whether this node bridges pod traffic past netfilter (pure: values in, a finding out).

When pods share a Linux bridge (cni0, cbr0) and ``br_netfilter`` is off
(``net.bridge.bridge-nf-call-iptables`` 0, or absent because the module is not loaded), a
reply from a service's endpoint to a pod on the same bridge is switched at layer 2 and never
meets conntrack: it is not un-NATed and the client's connection times out. kube-proxy logs a
warning for exactly this; the agent does so once at start, in a metric and in its status.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

SYSCTL = {4: "net/bridge/bridge-nf-call-iptables", 6: "net/bridge/bridge-nf-call-ip6tables"}
PRIMARY = "primary"


@dataclass(frozen=True, slots=True)
class BridgeFinding:
    """Bridges carrying pod addresses of an IP family whose bridge-nf-call sysctl is off."""

    bridges: tuple[str, ...]
    sysctls: tuple[str, ...]  # the sysctls off or absent, as ``name=value`` (``absent``)

    def text(self) -> str:
        return (
            f"bridge(s) {', '.join(self.bridges)} carry pod addresses but "
            f"{', '.join(self.sysctls)}: replies between pods on one bridge bypass conntrack "
            "and service connections between them time out; load br_netfilter and set the "
            "sysctl(s) to 1"
        )


def _networks(cidrs: Sequence[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(c, strict=False) for c in cidrs if c != PRIMARY]


def _pod_families(addresses: Sequence[str], pod_cidrs: Sequence[str]) -> set[int]:
    """The IP families of ``addresses`` that are pod addresses: within ``pod_cidrs``, or any
    global address when the pod network is not known."""
    networks = _networks(pod_cidrs)
    families: set[int] = set()
    for text in addresses:
        ip = ipaddress.ip_address(text.split("/")[0])
        if ip.is_link_local or ip.is_loopback:
            continue
        if not networks or any(ip in n for n in networks if n.version == ip.version):
            families.add(ip.version)
    return families


def bridge_finding(
    bridges: Mapping[str, Sequence[str]],
    sysctls: Mapping[str, str | None],
    pod_cidrs: Sequence[str] = (),
    pod_bridge: str = "",
) -> BridgeFinding | None:
    """``bridges``: each bridge's addresses; ``sysctls``: the values of :data:`SYSCTL`'s
    names (None: absent); ``pod_cidrs``: the cluster CIDRs if known; ``pod_bridge``: the pod
    bridge when it is named (``--detect-local-mode BridgeInterface``): then it alone is
    judged, for the families of its addresses (IPv4 if it has none). None when no bridge with
    pod addresses is left outside netfilter."""
    names: list[str] = []
    off: set[str] = set()
    for name in sorted(bridges):
        if pod_bridge:
            if name != pod_bridge:
                continue
            families = _pod_families(bridges[name], ()) or {4}
        else:
            families = _pod_families(bridges[name], pod_cidrs)
        for family in sorted(families):
            sysctl = SYSCTL[family]
            value = sysctls.get(sysctl)
            if value is None or value.strip() != "1":
                if name not in names:
                    names.append(name)
                shown = "absent" if value is None else value.strip()
                off.add(f"{sysctl.replace('/', '.')}={shown}")
    if not names:
        return None
    return BridgeFinding(tuple(names), tuple(sorted(off)))
