"""Values and operations of bus contract v1 as plain msgpack-able data, and back.

:mod:`kpng.bus.codec` wraps these in messages. Decoders ignore unknown fields and raise
:class:`MalformedMessage`, naming the field, for anything else.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeGuard, TypeVar

from kpng.diff import (
    DeleteEndpoint,
    DeleteNode,
    DeleteService,
    Op,
    SetEndpoint,
    SetNode,
    SetService,
)
from kpng.iptext import is_canonical_ipv6
from kpng.model import (
    Endpoint,
    EndpointPort,
    Node,
    PortMarks,
    Service,
    ServicePort,
    ServiceType,
    TrafficPolicy,
    TransportProtocol,
    ViewEndpoint,
    name_problem,
    second_of_a_family,
)

SCHEMA_VERSION = 1
Scope = Literal["node", "global"]
T = TypeVar("T")


class MalformedMessage(ValueError):
    """Bytes that are not a valid v1 message; ``field`` says where."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}" if field else reason)
        self.field = field
        self.reason = reason


# -- values -> plain data ------------------------------------------------------------------
def service_to_wire(s: Service) -> dict[str, Any]:
    d: dict[str, Any] = {
        "ns": s.namespace,
        "name": s.name,
        "type": s.type.value,
        "cluster_ips": list(s.cluster_ips),
        "ports": [
            {
                "name": p.name,
                "proto": p.protocol.value,
                "port": p.port,
                "target": p.target_port,
                "node_port": p.node_port,
            }
            for p in s.ports
        ],
    }
    optional: dict[str, Any] = {
        "external_ips": list(s.external_ips),
        "lb_ips": list(s.load_balancer_ips),
        "lb_source_ranges": list(s.load_balancer_source_ranges),
        "affinity_timeout": s.affinity_timeout,
        "itp": s.internal_traffic_policy.value if s.internal_traffic_policy != "Cluster" else "",
        "etp": s.external_traffic_policy.value if s.external_traffic_policy != "Cluster" else "",
        "hc_node_port": s.health_check_node_port,
        "traffic_distribution": s.traffic_distribution,
        "topology_mode": s.topology_mode,
        "labels": dict(s.labels),
    }
    d.update((k, v) for k, v in optional.items() if v)
    return d


def _ports_to_wire(ports: Sequence[EndpointPort]) -> list[list[Any]]:
    return [[p.name, p.protocol.value, p.port] for p in ports]


# flag bits of an endpoint in an "eps" operation
EP_READY, EP_SERVING, EP_TERMINATING, EP_INTERNAL, EP_EXTERNAL = 1, 2, 4, 8, 16
EP_SHORTCUT = 32  # ViewEndpoint.shortcut (an older consumer ignores the bit)
COMPACT_ENDPOINTS = "eps"  # the snapshot-request feature that allows "eps" operations
COMPRESSED_OPS = "zstd"  # the snapshot-request feature that allows "zops" (kpng.bus.compression)
# the snapshot-request feature that lets a node snapshot's zone part come as a cast: published
# once on a subject every consumer waiting for it hears (docs/bus.md, section 9a)
CAST = "cast"
# the snapshot-request feature that says the consumer holds port marks (kpng.model.PortMarks),
# so that its digests cover them: only such consumers of a node get digests in its ticks
# (an older one could never match a view with port marks: docs/bus.md, section 5.2)
PORT_MARKS = "marks"
# the snapshot-request feature that says the consumer holds shortcut marks (ViewEndpoint's
# ``shortcut``), so that its digests cover them (as PORT_MARKS: docs/bus.md, section 5.2)
SHORTCUT_MARKS = "shortcut"
# the snapshot-request feature that says the consumer holds a Node's ``pod_cidrs`` and
# ``deleting``, so that its digests cover them (as PORT_MARKS: docs/bus.md, section 5.3)
NODE_FIELDS = "nodefields"
# what a node's consumer must accept for the watcher to check its digests: one that lacks
# any holds a view the watcher's digest does not describe (docs/bus.md, section 7b)
DIGEST_FEATURES = frozenset((PORT_MARKS, SHORTCUT_MARKS, NODE_FIELDS))
_FLAGS: list[tuple[bool, bool, bool, bool, bool, bool]] = [  # (ready, serving, terminating,
    # internal, external, shortcut) of each flags value
    (
        bool(f & EP_READY),
        bool(f & EP_SERVING),
        bool(f & EP_TERMINATING),
        bool(f & EP_INTERNAL),
        bool(f & EP_EXTERNAL),
        bool(f & EP_SHORTCUT),
    )
    for f in range(64)
]


def endpoints_to_wire(key: str, endpoints: Sequence[ViewEndpoint]) -> dict[str, Any]:
    """A node view's endpoints of one service as one compact "eps" operation: a table of
    distinct port lists, then ``[ip, flags, ports index, node, zone]`` per endpoint (node
    and zone omitted from the end when empty). Sent only to consumers that ask for it."""
    tables: dict[tuple[EndpointPort, ...], int] = {}
    rows: list[list[Any]] = []
    marks: list[list[Any]] = []
    for e in endpoints:
        flags = (
            (EP_READY if e.ready else 0)
            | (EP_SERVING if e.serving else 0)
            | (EP_TERMINATING if e.terminating else 0)
            | (EP_INTERNAL if e.internal else 0)
            | (EP_EXTERNAL if e.external else 0)
            | (EP_SHORTCUT if e.shortcut else 0)
        )
        row: list[Any] = [e.ip, flags, tables.setdefault(e.ports, len(tables))]
        if e.zone:
            row += [e.node, e.zone]
        elif e.node:
            row.append(e.node)
        if e.port_marks:  # (rare: see ViewEndpoint)
            marks += ([len(rows), *m] for m in _port_marks_to_wire(e.port_marks))
        rows.append(row)
    op = {"op": "eps", "key": key, "ports": [_ports_to_wire(p) for p in tables], "eps": rows}
    if marks:
        op["port_marks"] = marks
    return op


def _port_marks_to_wire(marks: Sequence[PortMarks]) -> list[list[Any]]:
    """``[name, protocol, flags]`` per port mark; flags: EP_INTERNAL, EP_EXTERNAL and
    EP_SHORTCUT bits."""
    return [
        [
            m.name,
            m.protocol.value,
            (EP_INTERNAL if m.internal else 0)
            | (EP_EXTERNAL if m.external else 0)
            | (EP_SHORTCUT if m.shortcut else 0),
        ]
        for m in marks
    ]


def endpoint_to_wire(e: Endpoint | ViewEndpoint) -> dict[str, Any]:
    d: dict[str, Any] = {
        "ip": e.ip,
        "ports": _ports_to_wire(e.ports),
        "node": e.node,
        "zone": e.zone,
        "ready": e.ready,
        "serving": e.serving,
        "terminating": e.terminating,
    }
    if isinstance(e, ViewEndpoint):
        d["internal"] = e.internal
        d["external"] = e.external
        if e.shortcut:  # (only where both traffic policies are Local)
            d["shortcut"] = True
        if e.port_marks:
            d["port_marks"] = _port_marks_to_wire(e.port_marks)
    else:
        if e.zone_hints:
            d["zone_hints"] = sorted(e.zone_hints)
        if e.node_hints:
            d["node_hints"] = sorted(e.node_hints)
    return d


def node_to_wire(n: Node) -> dict[str, Any]:
    d: dict[str, Any] = {
        "name": n.name,
        "addresses": list(n.addresses),
        "zone": n.zone,
        "region": n.region,
    }
    if n.pod_cidrs:
        d["pod_cidrs"] = list(n.pod_cidrs)
    if n.deleting:
        d["deleting"] = True
    return d


def op_to_wire(op: Op[Any]) -> dict[str, Any]:
    match op:
        case SetService(service):
            return {"op": "svc", "svc": service_to_wire(service)}
        case DeleteService(key):
            return {"op": "-svc", "key": key}
        case SetEndpoint(key, endpoint):
            return {"op": "ep", "key": key, "ep": endpoint_to_wire(endpoint)}
        case DeleteEndpoint(key, ip):
            return {"op": "-ep", "key": key, "ip": ip}
        case SetNode(node):
            return {"op": "node", "node": node_to_wire(node)}
        case DeleteNode(name):
            return {"op": "-node", "name": name}
    raise TypeError(f"not an operation: {op!r}")


# -- plain data -> values ------------------------------------------------------------------
@dataclass(slots=True)
class Reader:
    """Typed field access on one decoded map; errors carry the path."""

    data: Mapping[Any, Any]
    path: str

    def get(self, key: str, kind: type[T], default: T | None = None) -> T:
        value = self.data.get(key, default)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if (
            value is None
            or not isinstance(value, kind)
            or (kind is int and isinstance(value, bool))
        ):
            got = "missing" if key not in self.data else f"expected {kind.__name__}, got {value!r}"
            raise MalformedMessage(self.where(key), got)
        return value

    def where(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def optional_float(self, key: str) -> float | None:
        if self.data.get(key) is None:
            return None
        return self.get(key, float)

    def child(self, key: str) -> Reader:
        return Reader(self.get(key, dict), self.where(key))

    def strings(self, key: str) -> tuple[str, ...]:
        items = self.get(key, list, [])
        if not all(isinstance(i, str) for i in items):
            raise MalformedMessage(self.where(key), "expected a list of strings")
        return tuple(items)

    def port(self, key: str, low: int = 1, default: int | None = None) -> int:
        """An integer field that must be a port number (``low`` to 65535)."""
        value = self.get(key, int, default)
        if not low <= value <= 65535:
            raise MalformedMessage(self.where(key), f"port {value} out of range")
        return value

    def ip(self, key: str) -> str:
        return checked_ip(self.get(key, str), self.where(key))

    def ips(self, key: str) -> tuple[str, ...]:
        items = self.strings(key)
        for i, ip in enumerate(items):
            checked_ip(ip, f"{self.where(key)}[{i}]")
        return items

    def cidrs(self, key: str) -> tuple[str, ...]:
        items = self.strings(key)
        for i, cidr in enumerate(items):
            if _IPV4_CIDR.fullmatch(cidr) is not None:  # 4x cheaper than ipaddress
                continue
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise MalformedMessage(f"{self.where(key)}[{i}]", "not a CIDR") from None
        return items

    def node_name(self, key: str, default: str | None = None) -> str:
        """A node name field ("" allowed only with a default of "": no node)."""
        name = self.get(key, str, default)
        return checked_node(name, self.where(key)) if name or default is None else name

    def enum(self, key: str, cls: Callable[[str], T], default: str | None = None) -> T:
        raw = self.get(key, str, default)
        try:
            return cls(raw or (default or ""))
        except ValueError:
            raise MalformedMessage(self.where(key), f"unknown value {raw!r}") from None


_IPV4 = re.compile(
    r"(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
)
_IPV4_CIDR = re.compile(_IPV4.pattern + r"/(?:3[0-2]|[12]?\d)")


def valid_ip(ip: Any) -> TypeGuard[str]:
    """``ip`` is an IP address as kpng writes it (canonical text)."""
    return type(ip) is str and (_IPV4.fullmatch(ip) is not None or _canonical_ipv6(ip))


def checked_ip(ip: Any, path: str) -> str:
    """``ip`` if it is an IP address as kpng writes it (canonical text), else malformed."""
    if valid_ip(ip):
        return ip
    raise MalformedMessage(path, f"not an IP address: {str(ip)[:64]!r}")


def _canonical_ipv6(ip: str) -> bool:
    return ":" in ip and len(ip) <= 45 and is_canonical_ipv6(ip)


@functools.lru_cache(maxsize=8192)
def _valid_node(name: str) -> bool:  # a view names the same few nodes thousands of times
    return not name_problem(name)


def checked_node(name: Any, path: str) -> str:
    """``name`` if it is a node name (a Kubernetes name), else malformed."""
    if type(name) is str and _valid_node(name):
        return name
    problem = name_problem(name)
    if problem:
        raise MalformedMessage(path, f"not a node name: {problem}")
    assert isinstance(name, str)
    return name


def service_from_wire(r: Reader) -> Service:
    ports = []
    for i, raw in enumerate(r.get("ports", list)):
        if not isinstance(raw, dict):
            raise MalformedMessage(f"{r.path}.ports[{i}]", "expected a map")
        p = Reader(raw, f"{r.path}.ports[{i}]")
        target = raw.get("target")
        if isinstance(target, int) and not isinstance(target, bool):
            target = p.port("target")
        elif not isinstance(target, str) or not 0 < len(target) <= 63:
            raise MalformedMessage(f"{p.path}.target", f"expected a port, got {target!r}"[:120])
        ports.append(
            ServicePort(
                name=p.get("name", str, ""),
                protocol=p.enum("proto", TransportProtocol),
                port=p.port("port"),
                target_port=target,
                node_port=p.port("node_port", 0, 0),
            )
        )
    return Service(
        namespace=r.get("ns", str),
        name=r.get("name", str),
        type=r.enum("type", ServiceType),
        cluster_ips=r.ips("cluster_ips"),
        ports=tuple(ports),
        external_ips=r.ips("external_ips"),
        load_balancer_ips=r.ips("lb_ips"),
        load_balancer_source_ranges=r.cidrs("lb_source_ranges"),
        affinity_timeout=r.get("affinity_timeout", int, 0),
        internal_traffic_policy=r.enum("itp", TrafficPolicy, "Cluster"),
        external_traffic_policy=r.enum("etp", TrafficPolicy, "Cluster"),
        health_check_node_port=r.port("hc_node_port", 0, 0),
        traffic_distribution=r.get("traffic_distribution", str, ""),
        topology_mode=r.get("topology_mode", str, ""),
        labels=_labels_from_wire(r),
    )


def _labels_from_wire(r: Reader) -> tuple[tuple[str, str], ...]:
    labels = r.get("labels", dict, {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
        raise MalformedMessage(f"{r.path}.labels", "expected a map of strings to strings")
    return tuple(sorted(labels.items()))


def _ports_from_wire(r: Reader) -> tuple[EndpointPort, ...]:
    return _port_list(r.get("ports", list, []), f"{r.path}.ports")


_PROTOCOLS: dict[Any, TransportProtocol] = {p.value: p for p in TransportProtocol}


def _port_list(items: list[Any], path: str) -> tuple[EndpointPort, ...]:
    ports = []
    protocols = _PROTOCOLS  # a dict lookup: a third of the cost of TransportProtocol(...)
    for i, raw in enumerate(items):
        if (
            type(raw) is not list
            or len(raw) < 3
            or type(raw[0]) is not str
            or type(raw[2]) is not int
            or not 0 <= raw[2] <= 65535
        ):
            raise MalformedMessage(f"{path}[{i}]", "expected [name, protocol, port]")
        protocol = protocols.get(raw[1]) if type(raw[1]) is str else None
        if protocol is None:
            raise MalformedMessage(f"{path}[{i}]", f"bad protocol {raw[1]!r}"[:120])
        ports.append(EndpointPort(raw[0], protocol, raw[2]))
    return tuple(ports)


def endpoints_from_wire(r: Reader, scope: Scope) -> tuple[SetEndpoint[ViewEndpoint], ...]:
    """The endpoints of an "eps" operation (node views only), as one SetEndpoint each."""
    if scope != "node":
        raise MalformedMessage(r.where("op"), "eps operations belong to node views only")
    key = r.get("key", str)
    tables = []
    for i, raw in enumerate(r.get("ports", list)):
        if not isinstance(raw, list):
            raise MalformedMessage(f"{r.where('ports')}[{i}]", "expected a list of ports")
        tables.append(_port_list(raw, f"{r.where('ports')}[{i}]"))
    out = []
    count = len(tables)
    for i, row in enumerate(r.get("eps", list)):
        n = len(row) if type(row) is list else 0
        if n == 5:
            ip, flags, index, node, zone = row
        elif n == 4:
            ip, flags, index, node = row
            zone = ""
        elif n == 3:
            ip, flags, index = row
            node = zone = ""
        if not (
            3 <= n <= 5
            and type(ip) is str
            and type(flags) is int
            and type(index) is int
            and 0 <= index < count
            and type(node) is str
            and type(zone) is str
        ):
            raise MalformedMessage(
                f"{r.where('eps')}[{i}]", "expected [ip, flags, ports index, node?, zone?]"
            )
        # the paths are spelt only for a bad row: a snapshot has 100k good ones
        if not valid_ip(ip):
            checked_ip(ip, f"{r.where('eps')}[{i}][0]")
        if node and not _valid_node(node):
            checked_node(node, f"{r.where('eps')}[{i}][3]")
        endpoint = ViewEndpoint(ip, tables[index], node, zone, *_FLAGS[flags & 63])
        out.append(SetEndpoint(key, endpoint))
    if "port_marks" in r.data:  # rare: the rows' own marks are patched after, not looked up
        for i, marks in _row_marks(r, len(out)).items():
            out[i] = SetEndpoint(key, out[i].endpoint.with_port_marks(marks))
    return tuple(out)


_MARKS = EP_INTERNAL | EP_EXTERNAL | EP_SHORTCUT


def _row_marks(r: Reader, rows: int) -> dict[int, tuple[PortMarks, ...]]:
    """An "eps" operation's ``port_marks``: ``[row, name, protocol, flags]`` each -> the
    marks of each row."""
    out: dict[int, _Marks] = {}
    interned: dict[tuple[Any, ...], PortMarks] = {}
    path = r.where("port_marks")
    for i, raw in enumerate(r.get("port_marks", list)):
        if type(raw) is not list or len(raw) < 4 or type(raw[0]) is not int:
            raise MalformedMessage(f"{path}[{i}]", "expected [row, name, protocol, flags]")
        row = raw[0]
        if not 0 <= row < rows:
            raise MalformedMessage(f"{path}[{i}][0]", f"row {row} out of range (0..{rows - 1})")
        marks = out.setdefault(row, {})
        _add_mark(marks, raw[1:], f"{path}[{i}]", interned)
    return {row: tuple(marks.values()) for row, marks in out.items()}


_Marks = dict[tuple[str, TransportProtocol], PortMarks]  # an endpoint's, by port, in order


def _add_mark(
    marks: _Marks, raw: list[Any], path: str, interned: dict[tuple[Any, ...], PortMarks]
) -> None:
    """One ``[name, protocol, flags]`` onto an endpoint's ``marks``; unknown flag bits are
    ignored (as an "eps" row's), a port marked twice is malformed."""
    name, protocol, flags = raw[0], raw[1], raw[2]
    if type(name) is not str or type(flags) is not int or flags < 0:
        raise MalformedMessage(path, "expected [name, protocol, flags] (flags >= 0)")
    proto = _PROTOCOLS.get(protocol) if type(protocol) is str else None
    if proto is None:
        raise MalformedMessage(path, f"bad protocol {protocol!r}"[:120])
    if (name, proto) in marks:
        raise MalformedMessage(path, f"port {name!r} {proto.value} marked twice"[:120])
    flags &= _MARKS
    mark = interned.get((name, proto, flags))
    if mark is None:
        mark = PortMarks(
            name,
            proto,
            bool(flags & EP_INTERNAL),
            bool(flags & EP_EXTERNAL),
            bool(flags & EP_SHORTCUT),
        )
        interned[(name, proto, flags)] = mark
    marks[(name, proto)] = mark


def _endpoint_marks(r: Reader) -> tuple[PortMarks, ...]:
    """An "ep" operation's endpoint's ``port_marks``: ``[name, protocol, flags]`` each."""
    marks: _Marks = {}
    interned: dict[tuple[Any, ...], PortMarks] = {}
    path = r.where("port_marks")
    for i, raw in enumerate(r.get("port_marks", list)):
        if type(raw) is not list or len(raw) < 3:
            raise MalformedMessage(f"{path}[{i}]", "expected [name, protocol, flags]")
        _add_mark(marks, raw, f"{path}[{i}]", interned)
    return tuple(marks.values())


def endpoint_from_wire(r: Reader, scope: Scope) -> Endpoint | ViewEndpoint:
    common: dict[str, Any] = {
        "ip": r.ip("ip"),
        "ports": _ports_from_wire(r),
        "node": r.node_name("node", ""),
        "zone": r.get("zone", str, ""),
        "ready": r.get("ready", bool),
        "serving": r.get("serving", bool),
        "terminating": r.get("terminating", bool),
    }
    if scope == "node":
        e = ViewEndpoint(
            **common,
            internal=r.get("internal", bool),
            external=r.get("external", bool),
            shortcut=r.get("shortcut", bool, False),
        )
        return e.with_port_marks(_endpoint_marks(r)) if "port_marks" in r.data else e
    return Endpoint(
        **common,
        zone_hints=frozenset(r.strings("zone_hints")),
        node_hints=frozenset(r.strings("node_hints")),
    )


def node_from_wire(r: Reader) -> Node:
    return Node(
        name=r.node_name("name"),
        addresses=r.ips("addresses"),
        zone=r.get("zone", str, ""),
        region=r.get("region", str, ""),
        pod_cidrs=_pod_cidrs(r),
        deleting=r.get("deleting", bool, False),
    )


def _pod_cidrs(r: Reader) -> tuple[str, ...]:
    """A Node's ``pod_cidrs``: CIDRs, at most one per family (as the API server allows)."""
    cidrs = r.cidrs("pod_cidrs")
    if second_of_a_family(cidrs) is not None:
        raise MalformedMessage(r.where("pod_cidrs"), "more than one CIDR of a family")
    return cidrs


def ops_from_wire(raw: Any, path: str, scope: Scope) -> tuple[Op[Any], ...]:
    """The operations of one wire operation: one, several (``eps``), or none (an operation
    kind of a later minor version, ignored like unknown fields)."""
    kind = raw.get("op") if isinstance(raw, dict) else None
    if kind == "eps":
        return endpoints_from_wire(Reader(raw, path), scope)
    op = op_from_wire(raw, path, scope)
    return () if op is None else (op,)


def op_from_wire(raw: Any, path: str, scope: Scope) -> Op[Any] | None:
    if not isinstance(raw, dict):
        raise MalformedMessage(path, "expected a map")
    r = Reader(raw, path)
    kind = r.get("op", str)
    if kind == "svc":
        return SetService(service_from_wire(r.child("svc")))
    if kind == "-svc":
        return DeleteService(r.get("key", str))
    if kind == "ep":
        return SetEndpoint(r.get("key", str), endpoint_from_wire(r.child("ep"), scope))
    if kind == "-ep":
        return DeleteEndpoint(r.get("key", str), r.ip("ip"))
    if kind == "node":
        return SetNode(node_from_wire(r.child("node")))
    if kind == "-node":
        return DeleteNode(r.node_name("name"))
    return None  # an operation kind from a later minor version: ignored, like unknown fields
