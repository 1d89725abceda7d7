"""The digest of a view: 64 bits that two parties compare to know they hold the same view.

A view's digest is the XOR of one 64-bit hash per item it holds: each service, each
endpoint (with the key of its service) and each node. Applying an operation changes the
digest by the hashes of the items it replaces, adds or removes, so it is kept current at
the cost of the operations (:func:`kpng.diff.apply_in_place`), never of the view.

An item's hash is the first 8 bytes of BLAKE2b (digest size 8, no key) of its canonical
encoding, read as a big-endian unsigned integer. The encoding (docs/bus.md, "View
digest", defines it for consumers in other languages):

- a string: its UTF-8 length as 4 bytes big-endian, then its UTF-8 bytes;
- an integer: 8 bytes, big-endian two's complement; a boolean: one byte, 0 or 1;
- a list: its length as 4 bytes big-endian, then its items; lists keep the order the view
  holds (as on the wire), sets (endpoint hints) are sorted first;
- a record: one tag byte, then its fields in the order given below.

On the wire the digest is 16 lowercase hexadecimal digits.
"""

from __future__ import annotations

import hashlib
import struct
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache, partial
from typing import Any

from kpng.model import Endpoint, EndpointPort, Node, PortMarks, Service, ViewEndpoint

_I64 = struct.Struct(">q")
_U32 = struct.Struct(">I")


def _str(s: str) -> bytes:
    raw = s.encode()
    return _U32.pack(len(raw)) + raw


_FLAGS = (b"\x00", b"\x01")


@lru_cache(maxsize=4096)  # keys, nodes and zones recur in every endpoint
def _cached_str(s: str) -> bytes:
    return _str(s)


def _int(i: int) -> bytes:
    return _I64.pack(i)


def _bool(b: bool) -> bytes:
    return b"\x01" if b else b"\x00"


def _strs(items: Iterable[str]) -> bytes:
    items = list(items)
    return _U32.pack(len(items)) + b"".join(_str(s) for s in items)


@lru_cache(maxsize=4096)  # a few distinct port lists, shared by many endpoints
def _endpoint_ports(ports: tuple[EndpointPort, ...]) -> bytes:
    out = [_U32.pack(len(ports))]
    out += [_str(p.name) + _str(p.protocol.value) + _int(p.port) for p in ports]
    return b"".join(out)


def encode_service(s: Service) -> bytes:
    """``S``, then namespace, name, type, cluster IPs, ports (each: name, protocol, port,
    target port as ``i`` + integer or ``s`` + string, node port), external IPs, load
    balancer IPs, load balancer source ranges, affinity timeout, internal and external
    traffic policy, health check node port, traffic distribution, topology mode, labels
    (a list of [key, value] pairs sorted by key, each pair as two strings)."""
    ports = [_U32.pack(len(s.ports))]
    for p in s.ports:
        target = (
            b"s" + _str(p.target_port)
            if isinstance(p.target_port, str)
            else b"i" + _int(p.target_port)
        )
        ports.append(
            _str(p.name) + _str(p.protocol.value) + _int(p.port) + target + _int(p.node_port)
        )
    labels = sorted(s.labels)
    return b"".join(
        (
            b"S",
            _str(s.namespace),
            _str(s.name),
            _str(s.type.value),
            _strs(s.cluster_ips),
            *ports,
            _strs(s.external_ips),
            _strs(s.load_balancer_ips),
            _strs(s.load_balancer_source_ranges),
            _int(s.affinity_timeout),
            _str(s.internal_traffic_policy.value),
            _str(s.external_traffic_policy.value),
            _int(s.health_check_node_port),
            _str(s.traffic_distribution),
            _str(s.topology_mode),
            _U32.pack(len(labels)),
            *(_str(k) + _str(v) for k, v in labels),
        )
    )


def encode_endpoint(key: str, e: Endpoint | ViewEndpoint) -> bytes:
    """A node view's endpoint: ``E``, then the service key, IP, ports (each: name,
    protocol, port), node, zone, ready, serving, terminating, internal, external, then
    ``S`` only when it is marked ``shortcut``, and only when it has port marks: ``P`` and
    their list (each: name, protocol, internal, external), or ``Q`` and their list with
    shortcut too when one has it. A global view's: ``G``, then the same up to terminating,
    then zone hints and node hints (sorted)."""
    ip = e.ip.encode()
    flags = _FLAGS[e.ready] + _FLAGS[e.serving] + _FLAGS[e.terminating]
    common = b"".join(
        (
            _cached_str(key),
            _U32.pack(len(ip)),
            ip,
            _endpoint_ports(e.ports),
            _cached_str(e.node),
            _cached_str(e.zone),
            flags,
        )
    )
    if isinstance(e, ViewEndpoint):
        # port marks are absent from the common case, whose encoding is as before them
        marks = _port_marks(e.port_marks) if e.port_marks else b""
        shortcut = b"S" if e.shortcut else b""
        return b"E" + common + _FLAGS[e.internal] + _FLAGS[e.external] + shortcut + marks
    return b"G" + common + _strs(sorted(e.zone_hints)) + _strs(sorted(e.node_hints))


def _port_marks(marks: tuple[PortMarks, ...]) -> bytes:
    shortcut = any(m.shortcut for m in marks)  # (as before shortcut marks, when none has one)
    out = [b"Q" if shortcut else b"P", _U32.pack(len(marks))]
    out += [
        _str(m.name)
        + _str(m.protocol.value)
        + _FLAGS[m.internal]
        + _FLAGS[m.external]
        + (_FLAGS[m.shortcut] if shortcut else b"")
        for m in marks
    ]
    return b"".join(out)


def encode_node(n: Node) -> bytes:
    """``N``, then name, addresses, zone, region; then, only when it has pod CIDRs, ``P``
    and their list; then ``D`` only when it is deleting (a node with neither encodes as
    before they were added)."""
    out = b"N" + _str(n.name) + _strs(n.addresses) + _str(n.zone) + _str(n.region)
    out += b"P" + _strs(n.pod_cidrs) if n.pod_cidrs else b""
    return out + b"D" if n.deleting else out


def _hash(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


# services and nodes are few, immutable and shared by many views: their hashes are cached.
# Endpoints are not: hashing a frozen endpoint for the cache costs more than its encoding.
@lru_cache(maxsize=1 << 14)
def service_hash(s: Service) -> int:
    return _hash(encode_service(s))


def endpoint_hash(key: str, e: Endpoint | ViewEndpoint) -> int:
    return _hash(encode_endpoint(key, e))


@lru_cache(maxsize=1 << 14)
def node_hash(n: Node) -> int:
    return _hash(encode_node(n))


def table_hash(key: str, table: Iterable[Endpoint | ViewEndpoint]) -> int:
    """The XOR of a service's endpoints' hashes."""
    d = 0
    for e in table:
        d ^= endpoint_hash(key, e)
    return d


class _ByIdentity:
    """Hashes of objects that never change, by identity: a process that follows many nodes
    (the observer, the scale bench's agents) shares one zone's Service objects and endpoint
    tables (copy-on-write: a view copies a table before writing) across its views, and
    hashes each once, not once per view: 1,000 views of 10^5 endpoints took minutes of
    hashing. Holds each object so that its id stays its own; bounded, oldest first out."""

    def __init__(self, size: int = 1 << 18) -> None:
        self.size = size
        self._hashes: OrderedDict[int, tuple[object, int]] = OrderedDict()

    def get(self, obj: object, compute: Callable[[], int]) -> int:
        found = self._hashes.get(id(obj))
        if found is not None and found[0] is obj:
            return found[1]
        d = compute()
        self._hashes[id(obj)] = (obj, d)
        if len(self._hashes) > self.size:
            self._hashes.popitem(last=False)
        return d

    def table_hash(self, key: str, table: Mapping[str, Endpoint | ViewEndpoint]) -> int:
        return self.get(table, lambda: table_hash(key, table.values()))


SHARED_TABLES = _ByIdentity()  # shared endpoint tables and Service objects
Shared = Callable[[str, Mapping[str, Any]], bool]


def view_digest(
    services: Mapping[str, Service],
    endpoints: Mapping[str, Mapping[str, Endpoint | ViewEndpoint]],
    nodes: Mapping[str, Node],
    shared: Shared | None = None,
) -> int:
    """The digest of a whole view, from scratch (a view keeps its own current). ``shared``
    says which endpoint tables other views share: their hashes are reused."""
    d = 0
    for service in services.values():
        d ^= SHARED_TABLES.get(service, partial(service_hash, service))
    for key, table in endpoints.items():
        if shared is not None and shared(key, table):
            d ^= SHARED_TABLES.table_hash(key, table)
        else:
            d ^= table_hash(key, table.values())
    for node in nodes.values():
        d ^= node_hash(node)
    return d


def key_hash(
    key: str,
    services: Mapping[str, Service],
    endpoints: Mapping[str, Mapping[str, Endpoint | ViewEndpoint]],
    shared: Shared | None = None,
) -> int:
    """The XOR of the hashes of a service and of its endpoints (as :func:`view_digest`)."""
    d = 0
    service = services.get(key)
    if service is not None:
        d ^= SHARED_TABLES.get(service, partial(service_hash, service))
    table = endpoints.get(key)
    if table is not None:
        if shared is not None and shared(key, table):
            d ^= SHARED_TABLES.table_hash(key, table)
        else:
            d ^= table_hash(key, table.values())
    return d


class PartialDigest:
    """A view's digest being computed a few services at a time (so that a process computes
    it while idle, in steps that do not hold its event loop): ``acc`` is the XOR of the
    hashes of the services (with their endpoints) in ``done``. The view may change between
    steps: :func:`kpng.diff.apply_in_place` corrects ``acc`` for a key already done; a key
    not done yet is hashed as it is when its turn comes, and nodes at the end."""

    __slots__ = ("acc", "done", "todo")

    def __init__(self, keys: Iterable[str]) -> None:
        self.acc = 0
        self.done: set[str] = set()
        self.todo = list(keys)

    def step(
        self,
        services: Mapping[str, Service],
        endpoints: Mapping[str, Mapping[str, Endpoint | ViewEndpoint]],
        shared: Shared | None,
        budget: int,
    ) -> bool:
        """Hashes the next services until about ``budget`` items; True when none is left."""
        spent = 0
        todo, done = self.todo, self.done
        while todo and spent < budget:
            key = todo.pop()
            if key not in done:
                done.add(key)
                self.acc ^= key_hash(key, services, endpoints, shared)
                spent += 1 + len(endpoints.get(key, ()))
        return not todo

    def finish(
        self,
        services: Mapping[str, Service],
        endpoints: Mapping[str, Mapping[str, Endpoint | ViewEndpoint]],
        nodes: Mapping[str, Node],
        shared: Shared | None,
    ) -> int:
        """The digest: the keys added since the start hashed too, then the nodes."""
        d = self.acc
        for key in (*services, *endpoints):
            if key not in self.done:
                self.done.add(key)
                d ^= key_hash(key, services, endpoints, shared)
        for node in nodes.values():
            d ^= node_hash(node)
        return d


def to_hex(digest: int) -> str:
    """The digest as the wire carries it."""
    return f"{digest:016x}"
