"""A service as nftables objects: the elements, and the few chains and maps, it needs.

Pure: a service and its node-view endpoints in, a tuple of objects out; the bulk (endpoints,
service and cluster IPs) comes out packed (see :mod:`kpng.dataplane.nft.packed`), the rest as
objects. Target ids come from ``id_of`` (see :class:`kpng.dataplane.nft.state.Ids`). Objects
shared by several services (the ``pick_<N>`` chains, hairpin pairs) come out of each, and
the caller counts references.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from kpng.dataplane.claims import CLUSTER_IP, EXTERNAL, NOTHING, Lost
from kpng.dataplane.nft.netlink import addresses
from kpng.dataplane.nft.netlink.codec import PROTOS
from kpng.dataplane.nft.objects import Chain, Element, Object, Set
from kpng.dataplane.nft.packed import ELEM, Planned, packer
from kpng.dataplane.nft.picks import pick_objects
from kpng.dataplane.nft.skeleton import (
    CLUSTER,
    DROP,
    ID_MASK,
    LOCAL_EXT,
    MASQ,
    OWNED,
    PICK_BITS,
    PICK_MARK_MAX,
    PICK_SHIFT,
    PROTOCOLS,
    REJECT,
    SHARDS,
    Config,
    cidr_token,
    shard,
)
from kpng.dataplane.nft.transaction import digest_element
from kpng.model import Service, ServicePort, TrafficPolicy, ViewEndpoint

IdOf = Callable[[str], int]


@dataclass(frozen=True, slots=True)
class TrafficTarget:
    """One endpoint set of a service port: where its internal or external traffic goes."""

    key: str  # "namespace/name|port|PROTO|i" or "...|e"
    id: int
    backends: tuple[tuple[str, int], ...]  # (ip, port), sorted
    affinity: bool = False

    @property
    def mark(self) -> int:
        """kpng's bit, the target id and, for ``pick_static``, its endpoint count."""
        n = len(self.backends)
        static = 0 < n <= PICK_MARK_MAX and not self.affinity
        return OWNED | self.id | (n << PICK_SHIFT if static else 0)


def render_service(
    svc: Service,
    endpoints: Mapping[str, ViewEndpoint],
    c: Config,
    id_of: IdOf,
    lost: AbstractSet[Lost] = NOTHING,
) -> tuple[Planned, ...]:
    """``lost``: the IP:ports another service won (see :mod:`kpng.dataplane.claims`), left out."""
    ips = (*svc.cluster_ips, *svc.external_ips, *svc.load_balancer_ips)
    if not any(_fam(ip) == c.family for ip in ips) and not any(p.node_port for p in svc.ports):
        return ()  # nothing of this family reaches it (the other family's table serves it)
    v6 = c.family == 6
    eps = [e for e in endpoints.values() if (":" in e.ip) is v6]  # as _fam, inlined
    out: list[Planned] = []
    for sp in svc.ports:
        out.extend(_render_port(svc, sp, eps, c, id_of, lost))
    if c.node:
        pack = packer(c).pack
        out.extend(pack(Element("hairpin", (e.ip, e.ip))) for e in eps if e.node == c.node)
    return tuple(out)


Ported = list[tuple[ViewEndpoint, int]]  # endpoints with their port for one service port


def backends(ported: Ported, use: str) -> tuple[tuple[str, int], ...]:
    """The (ip, port) pairs of endpoints flagged ``use`` ("internal"/"external") for a port."""
    if use == "internal":
        found = {(e.ip, port) for e, port in ported if port and e.internal}
    else:
        found = {(e.ip, port) for e, port in ported if port and e.external}
    return tuple(sorted(found))


def endpoint_port(sp: ServicePort, e: ViewEndpoint) -> int:
    """The endpoint's port of the same name and protocol (0: none, so not an endpoint of
    this service port, as kube-proxy reads EndpointSlices); with no ports at all, a numeric
    target port."""
    for p in e.ports:
        if p.protocol == sp.protocol and p.name == sp.name:
            return p.port
    return sp.target_port if not e.ports and isinstance(sp.target_port, int) else 0


def _render_port(
    svc: Service,
    sp: ServicePort,
    eps: list[ViewEndpoint],
    c: Config,
    id_of: IdOf,
    lost: AbstractSet[Lost],
) -> list[Planned]:
    proto, port = sp.protocol.lower(), str(sp.port)
    base = f"{svc.key}|{sp.name}|{sp.protocol}"
    ported = [(e, endpoint_port(sp, e)) for e in eps]
    internal = _target(f"{base}|i", backends(ported, "internal"), id_of, svc)
    has_any = any(port for _, port in ported)
    out = _target_objects(svc, internal, c)
    local = svc.internal_traffic_policy is TrafficPolicy.LOCAL
    none = DROP if local and has_any else REJECT
    pk = packer(c)
    cluster = pk.fast("cluster_ips")
    for ip in _family(svc.cluster_ips, c):
        addr = pk.aton(ip)
        out.append(cluster.pack(cluster.first, cluster.size, ELEM, cluster.key, addr))
        if lost and (CLUSTER_IP, sp.name, (ip, sp.protocol, sp.port)) in lost:
            continue  # another port of this service took this IP:port
        if internal.backends:
            out.append(_service_ip(c, addr, proto, sp.port, internal.mark | CLUSTER))
        else:
            out.append(pk.pack(Element("no_endpoint_ips", (ip, proto, port), (none,))))
    if svc.externally_accessible:
        out.extend(_render_external(svc, sp, ported, c, id_of, internal, has_any, lost))
    return out


def _render_external(
    svc: Service,
    sp: ServicePort,
    ported: Ported,
    c: Config,
    id_of: IdOf,
    internal: TrafficTarget,
    has_any: bool,
    lost: AbstractSet[Lost],
) -> list[Planned]:
    proto, port = sp.protocol.lower(), str(sp.port)
    ext_key = f"{svc.key}|{sp.name}|{sp.protocol}|e"
    same = all(e.external is e.internal for e, _ in ported)  # the usual case
    ext = _target(ext_key, internal.backends if same else backends(ported, "external"), id_of, svc)
    out = _target_objects(svc, ext, c)
    local = svc.external_traffic_policy is TrafficPolicy.LOCAL
    mark = ext.mark | (LOCAL_EXT if local else MASQ)
    none = DROP if local and has_any else REJECT
    pack = packer(c).pack
    if local:
        out.append(pack(Element("shortcuts", (str(ext.id),), (str(internal.mark | CLUSTER),))))
    # an eTP Local target without local endpoints still dispatches, for the short-circuit
    dispatch = bool(ext.backends) or (local and bool(internal.backends))
    key: tuple[str, ...]
    won = _won(lost, sp)
    for ip in won(_family(svc.external_ips + svc.load_balancer_ips, c)):
        key = (ip, proto, port)
        if dispatch:
            out.append(_service_ip(c, packer(c).aton(ip), proto, sp.port, mark))
        if not ext.backends:
            out.append(pack(Element("no_endpoint_ips", key, (none,))))
    for lb in won(_family(svc.load_balancer_ips, c)):
        out.extend(map(pack, _firewall(svc, (lb, proto, port), c)))
    if sp.node_port and won([""]):
        key = (proto, str(sp.node_port))
        if dispatch:
            f = packer(c).fast("service_nodeports")
            np = _htons(sp.node_port)
            out.append(f.pack(f.first, f.size, ELEM, f.key, PROTOS[proto], np, f.data, mark))
        if not ext.backends:
            out.append(pack(Element("no_endpoint_nodeports", key, (none,))))
    return out


def _won(lost: AbstractSet[Lost], sp: ServicePort) -> Callable[[list[str]], list[str]]:
    """Of a port's external addresses ("" for its node port), those no other service won."""
    if not lost:
        return _all
    mine = {
        ip
        for kind, name, (ip, proto, port) in lost
        if kind == EXTERNAL
        and name == sp.name
        and proto == sp.protocol
        and port == (sp.port if ip else sp.node_port)
    }
    return lambda ips: [ip for ip in ips if ip not in mine]


def _all(ips: list[str]) -> list[str]:
    return ips


def _service_ip(c: Config, addr: bytes, proto: str, port: int, mark: int) -> bytes:
    """A ``service_ips`` element, packed: address . protocol . port : mark."""
    f = packer(c).fast("service_ips")
    return f.pack(f.first, f.size, ELEM, f.key, addr, PROTOS[proto], _htons(port), f.data, mark)


def _target(key: str, bk: tuple[tuple[str, int], ...], id_of: IdOf, svc: Service) -> TrafficTarget:
    tid = id_of(key)
    if not 0 < tid <= ID_MASK:
        raise ValueError(f"target id {tid} out of range for {key}")
    return TrafficTarget(key, tid, bk, bool(svc.affinity_timeout))


def _target_objects(svc: Service, t: TrafficTarget, c: Config) -> list[Planned]:
    n = len(t.backends)
    comment = t.key if len(t.key) <= 128 and '"' not in t.key else t.key[-128:]
    i = shard(t.id)
    pk = packer(c)
    f, aton, ident = pk.fast(_ENDPOINTS[i]), pk.aton, t.id
    pack, first, size, key, data = f.pack, f.first, f.size, f.key, f.data
    out: list[Planned] = [
        pack(first, size, ELEM, key, ident, k, data, aton(ip), _htons(port))
        for k, (ip, port) in enumerate(t.backends)
    ]
    # on the static path (the mark carries n) the pick element only records the target key
    verdict = f"goto pick_{n}_{i}" if n and not t.mark & PICK_BITS else "return"
    if n:
        out += pick_objects(c, n, i, static=bool(t.mark & PICK_BITS))
        if svc.affinity_timeout:
            out += map(pk.pack, _affinity(t, c, svc.affinity_timeout))
            verdict = f"goto aff_{t.id}"
    out.append(pk.pick(t.id, verdict, comment))
    return out


_ENDPOINTS = tuple(f"endpoints_{i}" for i in range(SHARDS))
_htons = addresses.htons


def _affinity(t: TrafficTarget, c: Config, timeout: int) -> list[Object]:
    """A dynamic map client -> endpoint per target; renamed (so emptied) when endpoints change.

    IPv6 keeps the endpoint's address and port in two maps (``<name>`` and ``<name>p``):
    ``nft`` (1.0.6, Debian 12's) aborts on an update whose key and data take nine registers
    (``ip6 saddr : ip6 daddr . th dport``; ``netlink_gen_expr: Assertion `dreg <
    ctx->reg_low'``), and one such rule failed the whole ``ip6`` batch."""
    f, n = c.nft_family, len(t.backends)
    tag = hashlib.sha1(repr((t.backends, timeout)).encode()).hexdigest()[:8]
    name = f"affmap_{t.id}_{tag}"
    flags = ("dynamic", "timeout")
    maps: list[Set]
    if c.family == 6:
        ports = f"{name}p"
        maps = [
            Set(name, c.addr_type, c.addr_type, flags, timeout),
            Set(ports, c.addr_type, "inet_service", flags, timeout),
        ]
        dnat = f"dnat {f} to {f} saddr map @{name} : {f} saddr map @{ports}"
        update = (
            f"update @{name} {{ {f} saddr : {f} daddr }} update @{ports} {{ {f} saddr : th dport }}"
        )
    else:
        maps = [Set(name, c.addr_type, f"{c.addr_type} . inet_service", flags, timeout)]
        dnat = f"dnat {f} to {f} saddr map @{name}"
        update = f"update @{name} {{ {f} saddr : {f} daddr . th dport }}"
    lookup = Chain(
        f"aff_{t.id}", (f"meta l4proto {PROTOCOLS} {dnat}", f"goto pick_{n}_{shard(t.id)}")
    )
    record = Chain(f"affupd_{t.id}", (update,))
    return [
        *[o for m in maps for o in (m, digest_element(m))],
        lookup,
        record,
        digest_element(lookup),
        digest_element(record),
        Element("aff_update", (str(t.id),), (f"jump affupd_{t.id}",)),
    ]


def _fam(ip: str) -> int:
    """The family of a valid address, cheaply (``ipaddress`` dominated large syncs)."""
    return 6 if ":" in ip else 4


def _family(ips: Iterable[str], c: Config) -> list[str]:
    return [ip for ip in ips if _fam(ip) == c.family]


def _firewall(svc: Service, key: tuple[str, ...], c: Config) -> list[Object]:
    if not svc.load_balancer_source_ranges:
        return []
    out: list[Object] = [Element("firewall_ips", key)]
    for cidr in svc.load_balancer_source_ranges:
        if ipaddress.ip_network(cidr.strip(), strict=False).version == c.family:
            out.append(Element("firewall_allow", (*key, cidr_token(cidr))))
    return out
