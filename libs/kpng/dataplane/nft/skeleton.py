"""The static part of a kpng table: its sets, maps and fixed chains, from the configuration.

Packet path (one family; ``A`` is the address type):

* nat prerouting/output jump to ``dispatch``: the *register*, the conntrack mark (``ct mark``)
  of the new connection, is set from ``service_ips``
  (daddr . proto . dport, for cluster, external and load-balancer IPs) or, for local
  addresses in ``nodeport_addrs``, from ``service_nodeports`` (proto . dport). It holds
  a *target* id (an endpoint set) and flags. eTP Local targets reached from a pod or from the
  node are swapped for the service's internal target, or its cluster-wide one when iTP is
  Local too (``shortcuts``). A pod is told by its source address (in ``pod_cidrs``) or, with
  ``Config.pod_interface``, by the interface the packet came in on (``iifname``). The masquerade bit
  (one bit of the packet mark, ``Config.masquerade_bit``: OR-ed in, every other bit of the
  packet mark left as it was) is set by the flags; then ``pick_static`` (by the endpoint
  count the register carries, for 1 to
  15 endpoints without affinity) or ``pick`` (by target id: more endpoints, affinity, none)
  sends the target to ``pick_<N>_<S>``, which DNATs through ``endpoints_<S>`` keyed by
  (target . ``numgen random mod N``), or to an affinity chain. ``S`` is the target id's
  shard (:func:`shard`). The ``pick_<N>_<S>`` chains and their ``pick_static`` elements are
  not part of the skeleton: the targets that use one bring it (:mod:`~kpng.dataplane.nft.picks`).
  Endpoint changes thus rewrite plain elements only, once their (N, S) is there.
* filter input/forward/output: new connections still addressed to a service (nothing was
  DNATed) hit ``no_endpoint_ips``/``no_endpoint_nodeports`` (reject, or drop for Local
  policies), and any other port of a cluster IP is rejected.
* filter prerouting (before DNAT): load-balancer source ranges.
* nat postrouting: affinity records, the register cleared, then masquerade for the
  masquerade bit (cleared first, as kube-proxy does) and for hairpin. nat input (DNAT to the
  node itself) clears the register too.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from kpng.dataplane.detectlocal import pattern_problem
from kpng.dataplane.nft.objects import Chain, Element, Hook, Set, Table

ID_MASK = 0x00FFFFFF
OWNED = 0x80000000  # in the register: kpng's own (what its clears and affinity read)
MASQ = 0x40000000  # in the register: set the masquerade bit of the packet mark
CLUSTER = 0x20000000  # cluster-IP traffic: masquerade unless from the pod network
LOCAL_EXT = 0x10000000  # external traffic of an eTP Local service: short-circuit pods/node
REJECT = "goto reject_chain"
DROP = "drop"
PROTOCOLS = "{ tcp, udp, sctp }"
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
    masquerade_bit: int = 14  # the one packet-mark bit kpng owns, as kube-proxy's default
    # an ``iifname`` pattern (``cbr0``, ``veth*``) that tells pod traffic instead of
    # ``pod_cidrs`` (:mod:`kpng.dataplane.detectlocal`); "": by source address
    pod_interface: str = ""

    def __post_init__(self) -> None:
        if not 0 <= self.masquerade_bit <= 31:
            raise ValueError(f"masquerade bit {self.masquerade_bit} is not in 0..31")
        if self.pod_interface and (problem := pattern_problem(self.pod_interface)):
            raise ValueError(problem)

    def from_pod(self, negated: bool = False) -> str:
        """The match of traffic from this node's pods (``negated``: of any other), as nft lists
        it: by input interface, or by source in ``pod_cidrs``; "" when there is neither."""
        op = "!= " if negated else ""
        if self.pod_interface:
            return f'iifname {op}"{self.pod_interface}"'
        return f"{self.nft_family} saddr {op}@pod_cidrs" if self.pod_cidrs else ""

    @property
    def masq_mark(self) -> int:
        """The masquerade bit as a packet-mark value (bit 14: 0x4000)."""
        return 1 << self.masquerade_bit

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
    """Elements that follow from the configuration alone."""
    out = [Element("pod_cidrs", (cidr_token(cidr),)) for cidr in c.pod_cidrs]
    out += [Element("nodeport_addrs", (cidr_token(cidr),)) for cidr in c.nodeport_cidrs]
    return tuple(out)


def chains(c: Config) -> tuple[Chain, ...]:
    f = c.nft_family
    check = ("ct state new jump endpoints_check",)
    return (
        Chain("nat_prerouting", ("jump dispatch",), Hook("nat", "prerouting", -100)),
        Chain("nat_output", ("jump dispatch",), Hook("nat", "output", -100)),
        Chain("nat_postrouting", _postrouting(c), Hook("nat", "postrouting", 100)),
        Chain("nat_input", (_CLEAR,), Hook("nat", "input", 100)),
        Chain("dispatch", _dispatch(c)),
        Chain("dispatch_service", _dispatch_service(c)),
        Chain("local_ext", _local_ext(c)),
        Chain(
            "local_ext_node",
            (
                f"ct mark set ct mark & {ID_MASK:#x} map @shortcuts",
                f"ct mark set ct mark | {MASQ:#x}",
            ),
        ),
        Chain("filter_prerouting", _firewall(f), Hook("filter", "prerouting", -110)),
        Chain("filter_input", check, Hook("filter", "input", -10)),
        Chain("filter_forward", check, Hook("filter", "forward", -10)),
        Chain("filter_output", check, Hook("filter", "output", -10)),
        Chain("endpoints_check", _endpoints_check(f)),
        Chain("reject_chain", ("reject",)),
    )


# a connection kpng gave its register gets its conntrack mark back as zero; any other
# connection's conntrack mark (another component's, DNATed by it or not) is left alone
_CLEAR = f"ct mark & {OWNED:#x} != 0x0 ct mark set 0x0"


def _postrouting(c: Config) -> tuple[str, ...]:
    f, bit = c.nft_family, c.masq_mark
    return (
        f"ct mark & {OWNED:#x} != 0x0 ct mark & {ID_MASK:#x} vmap @aff_update",
        _CLEAR,
        # only the masquerade bit is tested and cleared; the other bits stay as they were
        f"meta mark & {bit:#x} != 0x0 meta mark set meta mark & {~bit & 0xFFFFFFFF:#x}"
        " masquerade fully-random",
        f"ct status dnat {f} saddr . {f} daddr @hairpin masquerade fully-random",
    )


def _dispatch(c: Config) -> tuple[str, ...]:
    """Only a connection to a service gets past here, with kpng's register in its conntrack
    mark: any other keeps the conntrack mark it came with, never read as kpng's flags."""
    f = c.nft_family
    return (
        f"ct mark set {f} daddr . meta l4proto . th dport map @service_ips goto dispatch_service",
        f"fib daddr type local {f} daddr @nodeport_addrs"
        " ct mark set meta l4proto . th dport map @service_nodeports goto dispatch_service",
    )


def _dispatch_service(c: Config) -> tuple[str, ...]:
    mark_masq = f"meta mark set meta mark | {c.masq_mark:#x}"
    rules = [
        f"ct mark & {LOCAL_EXT:#x} != 0x0 jump local_ext",
        f"ct mark & {MASQ:#x} != 0x0 {mark_masq}",
    ]
    if not_pod := c.from_pod(negated=True):
        rules.append(f"ct mark & {CLUSTER:#x} != 0x0 {not_pod} {mark_masq}")
    if c.masquerade_all:
        rules.append(f"ct mark & {ID_MASK:#x} != 0x0 {mark_masq}")
    picked = PICK_BITS | (SHARDS - 1)
    rules.append(f"ct mark & {PICK_BITS:#x} != 0x0 ct mark & {picked:#x} vmap @pick_static")
    rules.append(f"ct mark & {ID_MASK:#x} vmap @pick")
    return tuple(rules)


def _local_ext(c: Config) -> tuple[str, ...]:
    rules = ["fib saddr type local goto local_ext_node"]
    if pod := c.from_pod():
        rules.append(f"{pod} ct mark set ct mark & {ID_MASK:#x} map @shortcuts")
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


def pick_static(n: int, i: int) -> Element:
    """The ``pick_static`` element of the targets with ``n`` (1..15) endpoints in shard ``i``
    and no affinity: made with their ``pick_<n>_<i>`` chain, when a first target needs it."""
    return Element("pick_static", (str(pick_mark(n, i)),), (f"goto pick_{n}_{i}",))


def pick_chain(c: Config, n: int, i: int) -> Chain:
    """DNAT to one of the ``n`` endpoints of a target of shard ``i``. One rule per protocol:
    nft 1.0.6 cannot add a rule with ``meta l4proto { ... }`` and a ``th`` typeof map to a
    loaded table."""
    f = c.nft_family
    return Chain(
        f"pick_{n}_{i}",
        tuple(
            f"meta l4proto {proto} dnat {f} to ct mark & {ID_MASK:#x}"
            f" . numgen random mod {n} map @endpoints_{i}"
            for proto in ("tcp", "udp", "sctp")
        ),
    )
