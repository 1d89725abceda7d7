"""The static part of a kpng table: its sets, maps and fixed chains, from the configuration.

Packet path (one family; ``A`` is the address type):

* nat prerouting/output jump to ``dispatch``: ``meta mark`` is set from ``service_ips``
  (daddr . proto . dport, for cluster, external and load-balancer IPs) or, for local
  addresses in ``nodeport_addrs``, from ``service_nodeports`` (proto . dport). The mark holds
  a *target* id (an endpoint set) and flags. eTP Local targets reached from a pod or from the
  node are swapped for the service's internal target (``shortcuts``). The masquerade bit is
  set by the flags; then ``pick_static`` (by the endpoint count the mark carries, for 1 to
  15 endpoints without affinity) or ``pick`` (by target id: more endpoints, affinity, none)
  sends the target to ``pick_<N>_<S>``, which DNATs through ``endpoints_<S>`` keyed by
  (target . ``numgen random mod N``), or to an affinity chain. ``S`` is the target id's
  shard (:func:`shard`). Endpoint changes thus rewrite plain elements only.
* filter input/forward/output: new connections still addressed to a service (nothing was
  DNATed) hit ``no_endpoint_ips``/``no_endpoint_nodeports`` (reject, or drop for Local
  policies), and any other port of a cluster IP is rejected.
* filter prerouting (before DNAT): load-balancer source ranges.
* nat postrouting: affinity records, then masquerade for the mark bit and for hairpin.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from kpng.nft.objects import Chain, Element, Hook, Set, Table

ID_MASK = 0x00FFFFFF
MASQ = 0x40000000
CLUSTER = 0x20000000  # cluster-IP traffic: masquerade unless from the pod network
LOCAL_EXT = 0x10000000  # external traffic of an eTP Local service: short-circuit pods/node
REJECT = "goto reject_chain"
DROP = "drop"
PROTOCOLS = "{ tcp, udp, sctp }"
PICK_STATIC = 32  # pick_1_*..pick_32_* are part of the skeleton: endpoint changes add no chains
PICK_SHIFT = 24  # mark bits 24-27: a target's endpoint count, when 1..PICK_MARK_MAX
PICK_BITS = 0x0F000000
PICK_MARK_MAX = 15
SHARDS = 16  # endpoint maps: a set dump re-walks the set per 32 KB, so it is quadratic in size


def shard(tid: int) -> int:
    """The endpoints map (``endpoints_<shard>``) and ``pick_<N>_<shard>`` of a target."""
    return tid % SHARDS


@dataclass(frozen=True, slots=True)
class Config:
    family: int = 4
    table: str = "kpng"
    node: str = ""
    pod_cidrs: tuple[str, ...] = ()
    nodeport_cidrs: tuple[str, ...] = ()
    masquerade_all: bool = False

    @property
    def nft_family(self) -> str:
        return "ip" if self.family == 4 else "ip6"

    @property
    def addr_type(self) -> str:
        return "ipv4_addr" if self.family == 4 else "ipv6_addr"

    @property
    def nft_table(self) -> Table:
        return Table(self.nft_family, self.table)


def sets(c: Config) -> tuple[Set, ...]:
    a, key = c.addr_type, f"{c.addr_type} . inet_proto . inet_service"
    return (
        Set("service_ips", key, "mark"),
        Set("service_nodeports", "inet_proto . inet_service", "mark"),
        Set("shortcuts", "mark", "mark"),
        Set("pick", "mark", "verdict"),
        Set("pick_static", "mark", "verdict"),
        *(
            Set(
                f"endpoints_{i}",
                "typeof meta mark . numgen random mod 1",
                f"{c.nft_family} daddr . tcp dport",
            )
            for i in range(SHARDS)
        ),
        Set("no_endpoint_ips", key, "verdict"),
        Set("no_endpoint_nodeports", "inet_proto . inet_service", "verdict"),
        Set("cluster_ips", a),
        Set("pod_cidrs", a, flags=("interval",)),
        Set("nodeport_addrs", a, flags=("interval",)),
        Set("hairpin", f"{a} . {a}"),
        Set("firewall_ips", key),
        Set("firewall_allow", f"{key} . {a}", flags=("interval",)),
        Set("aff_update", "mark", "verdict"),
        Set("chain_digests", "mark"),
    )


def cidr_token(cidr: str) -> str:
    """A CIDR as nft lists it back: normalised, and a bare address for a single host."""
    net = ipaddress.ip_network(cidr.strip(), strict=False)
    return str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net)


def pick_mark(n: int, i: int) -> int:
    """The ``pick_static`` key of a target with ``n`` endpoints in shard ``i``."""
    return n << PICK_SHIFT | i


def config_elements(c: Config) -> tuple[Element, ...]:
    """Elements that follow from the configuration alone. ``pick_static`` is the only verdict
    map written for every target, and it never changes: adding a jump or goto element makes
    the kernel validate every verdict map of the table (~3.6 ms at 10k services)."""
    out = [
        Element("pick_static", (str(pick_mark(n, i)),), (f"goto pick_{n}_{i}",))
        for n in range(1, PICK_MARK_MAX + 1)
        for i in range(SHARDS)
    ]
    out += [Element("pod_cidrs", (cidr_token(cidr),)) for cidr in c.pod_cidrs]
    out += [Element("nodeport_addrs", (cidr_token(cidr),)) for cidr in c.nodeport_cidrs]
    return tuple(out)


def chains(c: Config) -> tuple[Chain, ...]:
    f = c.nft_family
    check = ("ct state new jump endpoints_check",)
    return (
        Chain("nat_prerouting", ("jump dispatch",), Hook("nat", "prerouting", -100)),
        Chain("nat_output", ("jump dispatch",), Hook("nat", "output", -100)),
        Chain("nat_postrouting", _postrouting(f), Hook("nat", "postrouting", 100)),
        Chain("dispatch", _dispatch(c)),
        Chain("local_ext", _local_ext(c)),
        Chain(
            "local_ext_node",
            (
                f"meta mark set meta mark & {ID_MASK:#x} map @shortcuts",
                f"meta mark set meta mark | {MASQ:#x}",
            ),
        ),
        Chain("filter_prerouting", _firewall(f), Hook("filter", "prerouting", -110)),
        Chain("filter_input", check, Hook("filter", "input", -10)),
        Chain("filter_forward", check, Hook("filter", "forward", -10)),
        Chain("filter_output", check, Hook("filter", "output", -10)),
        Chain("endpoints_check", _endpoints_check(f)),
        Chain("reject_chain", ("reject",)),
        *(pick_chain(c, n, i) for n in range(1, PICK_STATIC + 1) for i in range(SHARDS)),
    )


def _postrouting(f: str) -> tuple[str, ...]:
    return (
        f"meta mark & {ID_MASK:#x} vmap @aff_update",
        f"meta mark & {MASQ:#x} != 0x0 masquerade fully-random",
        f"ct status dnat {f} saddr . {f} daddr @hairpin masquerade fully-random",
    )


def _dispatch(c: Config) -> tuple[str, ...]:
    f = c.nft_family
    rules = [
        f"meta mark set {f} daddr . meta l4proto . th dport map @service_ips",
        f"meta mark & {ID_MASK:#x} == 0x0 fib daddr type local {f} daddr @nodeport_addrs"
        " meta mark set meta l4proto . th dport map @service_nodeports",
        f"meta mark & {LOCAL_EXT:#x} != 0x0 jump local_ext",
    ]
    if c.pod_cidrs:
        rules.append(
            f"meta mark & {CLUSTER:#x} != 0x0 {f} saddr != @pod_cidrs"
            f" meta mark set meta mark | {MASQ:#x}"
        )
    if c.masquerade_all:
        rules.append(f"meta mark & {ID_MASK:#x} != 0x0 meta mark set meta mark | {MASQ:#x}")
    picked = PICK_BITS | (SHARDS - 1)
    rules.append(f"meta mark & {PICK_BITS:#x} != 0x0 meta mark & {picked:#x} vmap @pick_static")
    rules.append(f"meta mark & {ID_MASK:#x} vmap @pick")
    return tuple(rules)


def _local_ext(c: Config) -> tuple[str, ...]:
    rules = ["fib saddr type local goto local_ext_node"]
    if c.pod_cidrs:
        rules.append(
            f"{c.nft_family} saddr @pod_cidrs meta mark set meta mark & {ID_MASK:#x} map @shortcuts"
        )
    return tuple(rules)


def _firewall(f: str) -> tuple[str, ...]:
    key = f"{f} daddr . meta l4proto . th dport"
    return (f"ct state new {key} @firewall_ips {key} . {f} saddr != @firewall_allow drop",)


def _endpoints_check(f: str) -> tuple[str, ...]:
    return (
        f"{f} daddr . meta l4proto . th dport vmap @no_endpoint_ips",
        f"fib daddr type local {f} daddr @nodeport_addrs"
        " meta l4proto . th dport vmap @no_endpoint_nodeports",
        f"{f} daddr @cluster_ips goto reject_chain",
    )


def pick_chain(c: Config, n: int, i: int) -> Chain:
    """DNAT to one of the ``n`` endpoints of a target of shard ``i``. One rule per protocol:
    nft 1.0.6 cannot add a rule with ``meta l4proto { ... }`` and a ``th`` typeof map to a
    loaded table."""
    f = c.nft_family
    return Chain(
        f"pick_{n}_{i}",
        tuple(
            f"meta l4proto {proto} dnat {f} to meta mark & {ID_MASK:#x}"
            f" . numgen random mod {n} map @endpoints_{i}"
            for proto in ("tcp", "udp", "sctp")
        ),
    )
