"""A service as nftables objects: the elements, and the few chains and maps, it needs.

Pure: a service and its node-view endpoints in, a tuple of objects out; the bulk (endpoints,
service and cluster IPs) comes out packed (see :mod:`kpng.dataplane.nft.packed`), the rest as
objects. Target ids come from ``id_of`` (see :class:`kpng.dataplane.nft.state.Ids`). Objects
shared by several services (the ``pick_<N>`` chains, hairpin pairs) come out of each, and
the caller counts references.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from operator import attrgetter

from kpng.dataplane.claims import CLUSTER_IP, EXTERNAL, NOTHING, Lost
from kpng.dataplane.nft.netlink import addresses
from kpng.dataplane.nft.netlink.codec import PROTOS, verdict_attr
from kpng.dataplane.nft.objects import Chain, Element, Object, Set
from kpng.dataplane.nft.packed import ELEM, Fast, Planned, packer, per_config
from kpng.dataplane.nft.picks import pick_objects
from kpng.dataplane.nft.skeleton import (
    CLUSTER,
    DROP,
    ID_MASK,
    LOCAL_EXT,
    MASQ,
    OWNED,
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
from kpng.model import (
    EXTERNAL_MARK,
    INTERNAL_MARK,
    SHORTCUT_MARK,
    Service,
    ServicePort,
    TrafficPolicy,
    ViewEndpoint,
    address_family,
    cidr_family,
)

IdOf = Callable[[str], int]


@dataclass(frozen=True, slots=True)
class TrafficTarget:
    """One endpoint set of a service port: where its internal or external traffic goes."""

    key: str  # "namespace/name|port|PROTO|i", "...|e" or "...|s" (short-circuit)
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
    r = _fasts(c)
    v6 = r.v6
    if not _reached(svc, v6):
        return ()  # nothing of this family reaches it (the other family's table serves it)
    eps = list(endpoints.values())
    if v6 or ":" in "".join(map(_IP, eps)):  # (an IPv4 address has no colon)
        eps = [e for e in eps if (":" in e.ip) is v6]  # as address_family, inlined
    whole = len(eps) == len(endpoints)  # every endpoint of the service is of this family
    eps_ = _Endpoints(sorted(eps, key=_IP) if len(eps) > 1 else eps, r.aton, whole)
    out: list[Planned] = []
    for sp in svc.ports:
        _render_port(out, svc, sp, eps_, r, id_of, lost)
    node = c.node
    if node:
        here = [e for e in eps if e.node == node]
        if here:
            pack = r.pk.pack
            out += [pack(Element("hairpin", (e.ip, e.ip))) for e in here]
    return tuple(out)


def _reached(svc: Service, v6: bool) -> bool:
    """Whether the service has an address of the family, or a node port."""
    for ips in (svc.cluster_ips, svc.external_ips, svc.load_balancer_ips):
        for ip in ips:
            if (":" in ip) is v6:
                return True
    return any(p.node_port for p in svc.ports)


class _Endpoints:
    """A service's endpoints of the family, sorted by address, with their addresses packed
    once for all its ports and targets.

    Port marks (:class:`ViewEndpoint`) are looked for only where a view can hold some: it
    gives a port marks only when some endpoint of the service does not list the port
    (:func:`kpng.fanout.views.port_marks`). :meth:`ports` notes such an endpoint in the
    branch it takes for it anyway, so when every endpoint of the service is of this family
    and lists every port, as nearly always, ``lacking`` stays False at no cost."""

    __slots__ = ("addrs", "eps", "ips", "lacking", "unique")

    def __init__(
        self, eps: list[ViewEndpoint], aton: Callable[[str], bytes], whole: bool = True
    ) -> None:
        """``whole``: False when the service has endpoints of the other family too: the
        view promises no marks for a port that *every* usable endpoint of the service lists
        (docs/bus.md), so where the other family's lack one, marks are looked for."""
        self.eps = eps
        self.lacking = not whole  # some endpoint lacked some port (see ports())
        self.ips = ips = list(map(_IP, eps))
        self.addrs: Sequence[bytes]
        try:
            self.addrs = list(map(aton, ips))
        except (OSError, ValueError):  # raised where such an address is used, as before
            self.addrs = _Addresses(ips, aton)
        # a view keys endpoints by address; if two share one, (ip, port) pairs are sorted
        self.unique = len(ips) < 2 or len(set(ips)) == len(ips)

    def ports(self, sp: ServicePort) -> list[int]:
        """:func:`kpng.model.endpoint_port` of each endpoint, in one loop."""
        proto, name = sp.protocol, sp.name
        out = []
        for e in self.eps:
            for p in e.ports:
                if p.protocol == proto and p.name == name:
                    out.append(p.port)
                    break
            else:
                out.append(0)
                self.lacking = True
        return out

    def marked(self) -> bool:
        """Whether some endpoint has port marks (looked for once ``lacking``)."""
        return any(map(_PORT_MARKS, self.eps))

    def select(self, ports: list[int], k: int) -> list[int]:
        """Indices of the endpoints flagged for a target's traffic (``k``: INTERNAL_MARK,
        EXTERNAL_MARK or SHORTCUT_MARK) that have the port: its backends, in the order of their (ip,
        port) pairs, each pair once."""
        eps = self.eps
        if k == EXTERNAL_MARK:
            sel = [j for j, port in enumerate(ports) if port and eps[j].external]
        elif k == SHORTCUT_MARK:
            sel = [j for j, port in enumerate(ports) if port and eps[j].shortcut]
        else:
            sel = [j for j, port in enumerate(ports) if port and eps[j].internal]
        return sel if self.unique or len(sel) < 2 else self._ordered(sel, ports)

    def select_marked(self, ports: list[int], k: int, sp: ServicePort) -> list[int]:
        """:meth:`select`, where an endpoint's marks for ``sp`` may be its own."""
        eps, name, proto = self.eps, sp.name, sp.protocol
        sel = [j for j, port in enumerate(ports) if port and eps[j].all_marks(name, proto)[k]]
        return sel if self.unique or len(sel) < 2 else self._ordered(sel, ports)

    def _ordered(self, sel: list[int], ports: list[int]) -> list[int]:
        ips = self.ips
        by = {(ips[j], ports[j]): j for j in sel}
        return [by[k] for k in sorted(by)]


class _Addresses(Sequence[bytes]):
    """Addresses packed one at a time, when used."""

    def __init__(self, ips: list[str], aton: Callable[[str], bytes]) -> None:
        self.ips, self.aton = ips, aton

    def __getitem__(self, j: int) -> bytes:  # type: ignore[override]
        return self.aton(self.ips[j])

    def __len__(self) -> int:
        return len(self.ips)


_IP: Callable[[ViewEndpoint], str] = attrgetter("ip")
_PORT_MARKS: Callable[[ViewEndpoint], tuple[object, ...]] = attrgetter("port_marks")


class _Fasts:
    """What rendering takes from a configuration, looked up once (see :func:`_fasts`)."""

    __slots__ = ("aton", "c", "cluster", "endpoints", "nodeports", "pk", "shapes", "svc_ips", "v6")

    def __init__(self, c: Config) -> None:
        self.c = c
        self.pk = pk = packer(c)
        self.v6 = c.family == 6
        self.aton = pk.aton
        self.endpoints = tuple(_fields(pk.fast(name)) for name in _ENDPOINTS)
        self.cluster = pk.fast("cluster_ips")
        self.svc_ips = pk.fast("service_ips")
        self.nodeports = pk.fast("service_nodeports")
        # (endpoint count, shard, static) -> the shape's objects and the pick verdict
        self.shapes: dict[tuple[int, int, bool], tuple[tuple[Planned, ...], bytes]] = {}

    def shape(self, n: int, i: int, static: bool) -> tuple[tuple[Planned, ...], bytes]:
        """A target's shape: the objects it brings (:func:`pick_objects`), and the verdict
        of its pick element, encoded."""
        found = self.shapes.get((n, i, static))
        if found is None:
            objs = pick_objects(self.c, n, i, static) if n else ()
            # on the static path (the mark carries n) the pick element only records the key
            verdict = f"goto pick_{n}_{i}" if n and not static else "return"
            found = self.shapes[(n, i, static)] = (objs, verdict_attr(verdict))
        return found


def _fields(f: Fast) -> tuple[Callable[..., bytes], bytes, int, bytes, bytes]:
    return f.pack, f.first, f.size, f.key, f.data


@per_config
def _fasts(c: Config) -> _Fasts:
    return _Fasts(c)


def _render_port(
    out: list[Planned],
    svc: Service,
    sp: ServicePort,
    eps: _Endpoints,
    r: _Fasts,
    id_of: IdOf,
    lost: AbstractSet[Lost],
) -> None:
    c = r.c
    proto = sp.protocol.lower()
    ports = eps.ports(sp)
    marked = eps.lacking and eps.marked()
    k = INTERNAL_MARK
    sel = eps.select_marked(ports, k, sp) if marked else eps.select(ports, k)
    base = f"{svc.key}|{sp.name}|{sp.protocol}"
    mark = _target_objects(out, r, svc, f"{base}|i", id_of, sel, eps, ports)
    has_any = any(ports)
    local = svc.internal_traffic_policy is TrafficPolicy.LOCAL
    none = DROP if local and has_any else REJECT
    cluster, aton = r.cluster, r.aton
    for ip in svc.cluster_ips:
        if (":" in ip) is not r.v6:
            continue
        addr = aton(ip)
        out.append(cluster.pack(cluster.first, cluster.size, ELEM, cluster.key, addr))
        if lost and (CLUSTER_IP, sp.name, (ip, sp.protocol, sp.port)) in lost:
            continue  # another port of this service took this IP:port
        if sel:
            out.append(_service_ip(r, addr, proto, sp.port, mark | CLUSTER))
        else:
            out.append(r.pk.pack(Element("no_endpoint_ips", (ip, proto, str(sp.port)), (none,))))
    if not svc.externally_accessible:
        return
    k = EXTERNAL_MARK
    if marked:
        ext = eps.select_marked(ports, k, sp)
    else:
        ext = sel if all(e.external is e.internal for e in eps.eps) else eps.select(ports, k)
    shortcut = (mark, bool(sel))  # eTP Local: pods and the node reach the internal target
    if svc.short_circuits:  # unless iTP is Local too: then the cluster-wide one, of its own
        k = SHORTCUT_MARK
        short = eps.select_marked(ports, k, sp) if marked else eps.select(ports, k)
        if short:  # (none: no usable endpoint of the port, or a view of before the marks)
            shortcut = (_target_objects(out, r, svc, f"{base}|s", id_of, short, eps, ports), True)
    out.extend(_render_external(svc, sp, c, r, id_of, shortcut, ext, eps, ports, lost))


def _render_external(
    svc: Service,
    sp: ServicePort,
    c: Config,
    r: _Fasts,
    id_of: IdOf,
    shortcut: tuple[int, bool],
    sel: list[int],
    eps: _Endpoints,
    ports: list[int],
    lost: AbstractSet[Lost],
) -> list[Planned]:
    """``shortcut``: the mark of the target that pods' and the node's traffic to an eTP
    Local port takes (the internal one, or with iTP Local too the cluster-wide one), and
    whether it has backends."""
    proto, port = sp.protocol.lower(), str(sp.port)
    ext_key = f"{svc.key}|{sp.name}|{sp.protocol}|e"
    has_any = any(ports)
    out: list[Planned] = []
    ext_mark = _target_objects(out, r, svc, ext_key, id_of, sel, eps, ports)
    short_mark, short_backends = shortcut
    local = svc.external_traffic_policy is TrafficPolicy.LOCAL
    mark = ext_mark | (LOCAL_EXT if local else MASQ)
    none = DROP if local and has_any else REJECT
    pack = r.pk.pack
    if local:
        ext_id = ext_mark & ID_MASK
        out.append(pack(Element("shortcuts", (str(ext_id),), (str(short_mark | CLUSTER),))))
    # an eTP Local target without local endpoints still dispatches, for the short-circuit
    dispatch = bool(sel) or (local and short_backends)
    key: tuple[str, ...]
    won = _won(lost, sp)
    for ip in won(_family(svc.external_ips + svc.load_balancer_ips, c)):
        key = (ip, proto, port)
        if dispatch:
            out.append(_service_ip(r, r.aton(ip), proto, sp.port, mark))
        if not sel:
            out.append(pack(Element("no_endpoint_ips", key, (none,))))
    for lb in won(_family(svc.load_balancer_ips, c)):
        out.extend(map(pack, _firewall(svc, (lb, proto, port), c)))
    if sp.node_port and won([""]):
        key = (proto, str(sp.node_port))
        if dispatch:
            f = r.nodeports
            np = _htons(sp.node_port)
            out.append(f.pack(f.first, f.size, ELEM, f.key, PROTOS[proto], np, f.data, mark))
        if not sel:
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


def _service_ip(r: _Fasts, addr: bytes, proto: str, port: int, mark: int) -> bytes:
    """A ``service_ips`` element, packed: address . protocol . port : mark."""
    f = r.svc_ips
    return f.pack(f.first, f.size, ELEM, f.key, addr, PROTOS[proto], _htons(port), f.data, mark)


def _target_objects(
    out: list[Planned],
    r: _Fasts,
    svc: Service,
    key: str,
    id_of: IdOf,
    sel: list[int],
    eps: _Endpoints,
    ports: list[int],
) -> int:
    """A target's objects (its endpoints ``sel`` of ``eps``) onto ``out``; returns its mark
    (:attr:`TrafficTarget.mark`)."""
    tid = id_of(key)
    if not 0 < tid <= ID_MASK:
        raise ValueError(f"target id {tid} out of range for {key}")
    n = len(sel)
    i = tid % SHARDS  # shard(), inlined
    pack, first, size, fkey, data = r.endpoints[i]
    addrs = eps.addrs
    out += [
        pack(first, size, ELEM, fkey, tid, k, data, addrs[j], _htons(ports[j]))
        for k, j in enumerate(sel)
    ]
    affinity = svc.affinity_timeout
    static = 0 < n <= PICK_MARK_MAX and not affinity
    shape = r.shapes.get((n, i, static)) or r.shape(n, i, static)
    out += shape[0]
    verdict = shape[1]
    if n and affinity:
        bk = tuple((eps.ips[j], ports[j]) for j in sel)
        out += map(r.pk.pack, _affinity(TrafficTarget(key, tid, bk, True), r.c, affinity))
        verdict = verdict_attr(f"goto aff_{tid}")
    comment = key if len(key) <= 128 and '"' not in key else key[-128:]
    out.append(r.pk.pick(tid, verdict, comment))
    return OWNED | tid | (n << PICK_SHIFT if static else 0)


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


def _family(ips: Iterable[str], c: Config) -> list[str]:
    return [ip for ip in ips if address_family(ip) == c.family]


def _firewall(svc: Service, key: tuple[str, ...], c: Config) -> list[Object]:
    if not svc.load_balancer_source_ranges:
        return []
    out: list[Object] = [Element("firewall_ips", key)]
    for cidr in svc.load_balancer_source_ranges:
        if cidr_family(cidr.strip()) == c.family:
            out.append(Element("firewall_allow", (*key, cidr_token(cidr))))
    return out
