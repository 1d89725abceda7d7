"""A packet tracer over a kpng table held by :class:`~kpng.dataplane.nft.fake.FakeNftables`.

It follows a new connection's first packet through the skeleton's chains (see
:mod:`kpng.dataplane.nft.skeleton`) using the table's actual maps and sets: firewall, dispatch,
short-circuit, masquerade flags, endpoint choice (every endpoint ``numgen`` may pick),
the filter checks and hairpin. Tests trace kube-proxy's behaviours without root.

Traffic from this node's pods is told as the table's rules tell it (``dispatch_service``'s
masquerade of cluster-IP traffic from elsewhere, ``local_ext``'s short-circuit): by source
address in ``pod_cidrs``, or by the packet's input interface (``TracedPacket.iif``) when the
table matches ``iifname`` (``--detect-local-mode``).

As the rules do, it keeps kpng's register (the connection's ``ct mark``) apart from the
packet mark, of which it sets, tests and clears only the masquerade bit: the packet mark a
trace ends with is the one the packet came with (``TracedPacket.mark``) without that bit.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Literal

from kpng.dataplane.detectlocal import matches
from kpng.dataplane.nft.fake import FakeNftables
from kpng.dataplane.nft.objects import Element, Key
from kpng.dataplane.nft.skeleton import CLUSTER, ID_MASK, LOCAL_EXT, MASQ, PICK_BITS, SHARDS, Config

Origin = Literal["pod", "node", "outside"]


_PICK = re.compile(r"mod (\d+) map @(\w+)$")
# the match that tells pod traffic (kpng.dataplane.nft.skeleton.Config.from_pod)
_FROM_POD = re.compile(
    r'ip6? saddr (?P<not_in>!= )?@pod_cidrs|iifname (?P<not_on>!= )?"(?P<iifname>[^"]+)"'
)


@dataclass(frozen=True, slots=True)
class TracedPacket:
    """A packet the tracer follows through a ruleset: its header, where it enters, its marks."""

    src: str
    dst: str
    proto: str  # "tcp", "udp", "sctp"
    dport: int
    origin: Origin = "outside"
    mark: int = 0  # the packet mark before kpng's chains (another component's bits)
    ct_mark: int = 0  # the conntrack mark another component gave the new connection
    iif: str = ""  # the input interface ("": sent by the node itself, or unknown)


@dataclass(frozen=True, slots=True)
class Trace:
    verdict: Literal["dnat", "reject", "drop", "accept"]
    endpoints: frozenset[tuple[str, int]] = frozenset()
    masquerade: bool = False
    affinity: bool = False
    hairpin: bool = False  # masqueraded if the endpoint chosen is the client itself
    mark: int = 0  # the packet mark after nat postrouting
    conntrack_mark: int = 0  # the connection's ct mark after nat postrouting

    @property
    def endpoint_ips(self) -> frozenset[str]:
        return frozenset(ip for ip, _ in self.endpoints)


@dataclass(frozen=True, slots=True)
class Tracer:
    nft: FakeNftables
    config: Config
    local_addresses: tuple[str, ...]  # what ``fib daddr type local`` answers yes for

    def _elements(self) -> dict[tuple[str, Key], Element]:
        return self.nft.state(self.config.nft_table).elements

    def _get(self, name: str, *key: str) -> tuple[str, ...] | None:
        e = self._elements().get((name, key))
        if e is None:
            return None
        return e.value if e.value is not None else ()

    def _in(self, name: str, *addrs: str) -> bool:
        """Membership in an interval set, or with an interval as the last key part."""
        for e in self._elements().values():
            if e.set == name and e.key[:-1] == addrs[:-1]:
                last = ipaddress.ip_network(e.key[-1], strict=False)
                if ipaddress.ip_address(addrs[-1]) in last:
                    return True
        return False

    def trace(self, p: TracedPacket) -> Trace:
        key = (p.dst, p.proto, str(p.dport))
        if self._get("firewall_ips", *key) is not None and not self._in(
            "firewall_allow", *key, p.src
        ):
            return Trace("drop")
        reg = self._dispatch(p, key)
        if reg is None:  # not a service: kpng's flags are never read from the ct mark
            t = self._filter(p, key)
            return Trace(t.verdict, mark=p.mark, conntrack_mark=p.ct_mark)
        bit = self.config.masq_mark
        mark = p.mark | bit if reg & MASQ or self._masquerade(p, reg) else p.mark
        tid = reg & ID_MASK
        verdict = self._get("pick", str(tid)) if tid else None
        if reg & PICK_BITS:  # dispatch's pick_static rule comes first
            verdict = self._get("pick_static", str(reg & (PICK_BITS | (SHARDS - 1))))
        if verdict and verdict[0] != "return":
            eps = self._endpoints(tid, verdict[0])
            hairpin = self._get("hairpin", p.src, p.src) is not None
            return Trace(
                "dnat",
                frozenset(eps),
                bool(mark & bit),  # nat postrouting: masquerade, and clear the bit
                verdict[0].startswith("goto aff_"),
                hairpin and any(ip == p.src for ip, _ in eps),
                mark & ~bit,
                0,  # DNATed: the register is cleared
            )
        t = self._filter(p, key)  # nat postrouting clears the register of what it passes
        return Trace(t.verdict, mark=mark, conntrack_mark=0 if t.verdict == "accept" else reg)

    def _masquerade(self, p: TracedPacket, reg: int) -> bool:
        """dispatch's rules that set the masquerade bit from the register's flags."""
        if reg & CLUSTER and self._passes(p, "dispatch_service", f"{CLUSTER:#x} != 0x0"):
            return True
        return bool(reg & ID_MASK and self.config.masquerade_all)

    def _dispatch(self, p: TracedPacket, key: tuple[str, ...]) -> int | None:
        """The register (ct mark) as ``dispatch`` leaves it; None for a connection that is
        not to a service (``dispatch`` returns before ``dispatch_service``)."""
        value = self._get("service_ips", *key)
        local = p.dst in self.local_addresses
        if value is None and local and self._in("nodeport_addrs", p.dst):
            value = self._get("service_nodeports", p.proto, str(p.dport))
        if not value:
            return None
        mark = int(value[0])
        if mark & LOCAL_EXT:
            mark = self._short_circuit(p, mark)
        return mark

    def _short_circuit(self, p: TracedPacket, mark: int) -> int:
        internal = self._get("shortcuts", str(mark & ID_MASK))
        if internal is None:
            return mark
        if p.origin == "node" or p.src in self.local_addresses:
            return int(internal[0]) | MASQ
        if self._passes(p, "local_ext", "map @shortcuts"):
            return int(internal[0])
        return mark

    def _passes(self, p: TracedPacket, chain: str, marker: str) -> bool:
        """Whether ``p`` passes the pod match (by source or by input interface, as written)
        of ``chain``'s rule with ``marker``; False when there is no such rule."""
        for rule in self.nft.state(self.config.nft_table).chains[chain].rules:
            m = _FROM_POD.search(rule)
            if marker not in rule or m is None:
                continue
            if m["iifname"]:
                return matches(m["iifname"], p.iif) != bool(m["not_on"])
            return self._in("pod_cidrs", p.src) != bool(m["not_in"])
        return False

    def _endpoints(self, tid: int, verdict: str) -> list[tuple[str, int]]:
        if verdict.startswith("goto aff_"):
            verdict = self._chain_last_rule(verdict.split()[1])
        n, name = self._pick(verdict.removeprefix("goto "))
        out = []
        for k in range(n):
            value = self._get(name, str(tid), str(k))
            if value is None:
                raise AssertionError(f"target {tid} has no endpoint {k} of {n}")
            out.append((value[0], int(value[1])))
        return out

    def _pick(self, chain: str) -> tuple[int, str]:
        """``numgen random mod N`` and the endpoints map of a pick chain, from its rules."""
        rules = self.nft.state(self.config.nft_table).chains[chain].rules
        found = {m.groups() if (m := _PICK.search(r)) else None for r in rules}
        if len(found) != 1 or None in found:
            raise AssertionError(f"{chain}: unexpected rules {rules}")
        n, name = found.pop() or ("", "")
        return int(n), name

    def _chain_last_rule(self, name: str) -> str:
        return self.nft.state(self.config.nft_table).chains[name].rules[-1]

    def _filter(self, p: TracedPacket, key: tuple[str, ...]) -> Trace:
        verdict = self._get("no_endpoint_ips", *key)
        local = p.dst in self.local_addresses
        if verdict is None and local and self._in("nodeport_addrs", p.dst):
            verdict = self._get("no_endpoint_nodeports", p.proto, str(p.dport))
        if verdict is None and self._get("cluster_ips", p.dst) is not None:
            verdict = ("goto reject_chain",)
        if verdict is None:
            return Trace("accept")
        return Trace("drop" if verdict[0] == "drop" else "reject")
