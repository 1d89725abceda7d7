"""The wire format of bus contract v1: msgpack maps with a schema version.

Encoders are deterministic; operations are encoded once and reused in every message that
carries them (:func:`encode_op`, then :func:`pack_delta` around the bytes). Decoders ignore
unknown fields and raise :class:`MalformedMessage`, naming the field, for anything else.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import msgpack

from kpng.diff import (
    DeleteEndpoint,
    DeleteNode,
    DeleteService,
    Op,
    SetEndpoint,
    SetNode,
    SetService,
)
from kpng.model import (
    Endpoint,
    EndpointPort,
    Node,
    Protocol,
    Service,
    ServicePort,
    ServiceType,
    TrafficPolicy,
    ViewEndpoint,
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
    else:
        if e.zone_hints:
            d["zone_hints"] = sorted(e.zone_hints)
        if e.node_hints:
            d["node_hints"] = sorted(e.node_hints)
    return d


def node_to_wire(n: Node) -> dict[str, Any]:
    return {"name": n.name, "addresses": list(n.addresses), "zone": n.zone, "region": n.region}


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
class _Reader:
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

    def child(self, key: str) -> _Reader:
        return _Reader(self.get(key, dict), self.where(key))

    def strings(self, key: str) -> tuple[str, ...]:
        items = self.get(key, list, [])
        if not all(isinstance(i, str) for i in items):
            raise MalformedMessage(self.where(key), "expected a list of strings")
        return tuple(items)

    def enum(self, key: str, cls: Callable[[str], T], default: str | None = None) -> T:
        raw = self.get(key, str, default)
        try:
            return cls(raw or (default or ""))
        except ValueError:
            raise MalformedMessage(self.where(key), f"unknown value {raw!r}") from None


def service_from_wire(r: _Reader) -> Service:
    ports = []
    for i, raw in enumerate(r.get("ports", list)):
        if not isinstance(raw, dict):
            raise MalformedMessage(f"{r.path}.ports[{i}]", "expected a map")
        p = _Reader(raw, f"{r.path}.ports[{i}]")
        target = raw.get("target")
        if not isinstance(target, int | str) or isinstance(target, bool):
            raise MalformedMessage(f"{p.path}.target", f"expected int or str, got {target!r}")
        ports.append(
            ServicePort(
                name=p.get("name", str, ""),
                protocol=p.enum("proto", Protocol),
                port=p.get("port", int),
                target_port=target,
                node_port=p.get("node_port", int, 0),
            )
        )
    return Service(
        namespace=r.get("ns", str),
        name=r.get("name", str),
        type=r.enum("type", ServiceType),
        cluster_ips=r.strings("cluster_ips"),
        ports=tuple(ports),
        external_ips=r.strings("external_ips"),
        load_balancer_ips=r.strings("lb_ips"),
        load_balancer_source_ranges=r.strings("lb_source_ranges"),
        affinity_timeout=r.get("affinity_timeout", int, 0),
        internal_traffic_policy=r.enum("itp", TrafficPolicy, "Cluster"),
        external_traffic_policy=r.enum("etp", TrafficPolicy, "Cluster"),
        health_check_node_port=r.get("hc_node_port", int, 0),
        traffic_distribution=r.get("traffic_distribution", str, ""),
        topology_mode=r.get("topology_mode", str, ""),
        labels=_labels_from_wire(r),
    )


def _labels_from_wire(r: _Reader) -> tuple[tuple[str, str], ...]:
    labels = r.get("labels", dict, {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
        raise MalformedMessage(f"{r.path}.labels", "expected a map of strings to strings")
    return tuple(sorted(labels.items()))


def _ports_from_wire(r: _Reader) -> tuple[EndpointPort, ...]:
    ports = []
    for i, raw in enumerate(r.get("ports", list, [])):
        if (
            not isinstance(raw, list)
            or len(raw) < 3
            or not isinstance(raw[0], str)
            or not isinstance(raw[2], int)
            or isinstance(raw[2], bool)
        ):
            raise MalformedMessage(f"{r.path}.ports[{i}]", "expected [name, protocol, port]")
        try:
            ports.append(EndpointPort(raw[0], Protocol(raw[1]), raw[2]))
        except ValueError:
            raise MalformedMessage(f"{r.path}.ports[{i}]", f"bad protocol {raw[1]!r}") from None
    return tuple(ports)


def endpoint_from_wire(r: _Reader, scope: Scope) -> Endpoint | ViewEndpoint:
    common: dict[str, Any] = {
        "ip": r.get("ip", str),
        "ports": _ports_from_wire(r),
        "node": r.get("node", str, ""),
        "zone": r.get("zone", str, ""),
        "ready": r.get("ready", bool),
        "serving": r.get("serving", bool),
        "terminating": r.get("terminating", bool),
    }
    if scope == "node":
        return ViewEndpoint(
            **common, internal=r.get("internal", bool), external=r.get("external", bool)
        )
    return Endpoint(
        **common,
        zone_hints=frozenset(r.strings("zone_hints")),
        node_hints=frozenset(r.strings("node_hints")),
    )


def node_from_wire(r: _Reader) -> Node:
    return Node(
        name=r.get("name", str),
        addresses=r.strings("addresses"),
        zone=r.get("zone", str, ""),
        region=r.get("region", str, ""),
    )


def op_from_wire(raw: Any, path: str, scope: Scope) -> Op[Any] | None:
    if not isinstance(raw, dict):
        raise MalformedMessage(path, "expected a map")
    r = _Reader(raw, path)
    kind = r.get("op", str)
    if kind == "svc":
        return SetService(service_from_wire(r.child("svc")))
    if kind == "-svc":
        return DeleteService(r.get("key", str))
    if kind == "ep":
        return SetEndpoint(r.get("key", str), endpoint_from_wire(r.child("ep"), scope))
    if kind == "-ep":
        return DeleteEndpoint(r.get("key", str), r.get("ip", str))
    if kind == "node":
        return SetNode(node_from_wire(r.child("node")))
    if kind == "-node":
        return DeleteNode(r.get("name", str))
    return None  # an operation kind from a later minor version: ignored, like unknown fields


# -- messages ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Delta:
    epoch: str
    seq: int
    time: float
    trigger_time: float | None
    ops: tuple[Op[Any], ...]


@dataclass(frozen=True, slots=True)
class Tick:
    epoch: str
    seq: int
    time: float


@dataclass(frozen=True, slots=True)
class SnapshotChunk:
    """A chunk of a full snapshot (``base`` -1), or of a catch-up reply: ``ops`` then move a
    view at seq ``base`` to ``seq``."""

    epoch: str
    seq: int
    chunk: int
    chunks: int
    ops: tuple[Op[Any], ...]
    base: int = -1


@dataclass(frozen=True, slots=True)
class SnapshotRequest:
    """``seq`` >= 0: the consumer holds a trusted view at (``epoch``, ``seq``) and may be
    answered with only what it missed (a catch-up); -1: a full snapshot."""

    epoch: str = ""
    seq: int = -1


@dataclass(frozen=True, slots=True)
class ErrorReply:
    reason: str


@dataclass(frozen=True, slots=True)
class Status:
    """What an agent reports on ``<prefix>.v1.node.<node>.status``."""

    node: str
    epoch: str
    seq: int
    backend: str
    healthy: bool
    time: float
    version: str = ""
    last_sync: float | None = None
    sync_duration: float | None = None
    counts: dict[str, int] = field(default_factory=dict)
    errors: tuple[str, ...] = ()
    # recent network programming latencies, newest last: (applied at, seconds since trigger)
    latency: tuple[tuple[float, float], ...] = ()


Message = Delta | Tick | SnapshotChunk | SnapshotRequest | ErrorReply | Status
_packer = msgpack.Packer(use_bin_type=True)


def packb(obj: Any) -> bytes:
    data: bytes = msgpack.packb(obj, use_bin_type=True)
    return data


def encode_op(op: Op[Any]) -> bytes:
    return packb(op_to_wire(op))


def _pack_with_ops(header: Mapping[str, Any], ops: Sequence[bytes], count: int | None) -> bytes:
    """The header map with an ``ops`` array around encoded operations. ``ops`` may hold runs
    of several operations joined together; ``count`` is then the number of operations."""
    packed = packb(header)
    if len(header) < 15:  # a fixmap: one more entry is one more in the first byte
        parts = [bytes((packed[0] + 1,)), packed[1:]]
    else:
        parts = [_packer.pack_map_header(len(header) + 1)]
        parts.extend(packb(key) + packb(value) for key, value in header.items())
    parts.append(_OPS_KEY)
    parts.append(_packer.pack_array_header(len(ops) if count is None else count))
    parts.extend(ops)
    return b"".join(parts)


_OPS_KEY = packb("ops")


def pack_delta(
    epoch: str,
    seq: int,
    time: float,
    trigger_time: float | None,
    ops: Sequence[bytes],
    count: int | None = None,
) -> bytes:
    """A delta message around operations already encoded by :func:`encode_op` (or runs of
    them joined, ``count`` operations in all)."""
    header = {"v": SCHEMA_VERSION, "kind": "delta", "epoch": epoch, "seq": seq, "time": time}
    if trigger_time is not None:
        header["trigger"] = trigger_time
    return _pack_with_ops(header, ops, count)


def pack_snapshot_chunk(
    epoch: str,
    seq: int,
    chunk: int,
    chunks: int,
    ops: Sequence[bytes],
    count: int | None = None,
    base: int = -1,
) -> bytes:
    """A snapshot chunk; ``base`` >= 0 makes it a chunk of a catch-up reply."""
    header = {
        "v": SCHEMA_VERSION,
        "kind": "snapshot",
        "epoch": epoch,
        "seq": seq,
        "chunk": chunk,
        "chunks": chunks,
    }
    if base >= 0:
        header["base"] = base
    return _pack_with_ops(header, ops, count)


def encode(message: Message) -> bytes:
    """Encode any message (deltas and snapshots by value; see :func:`pack_delta`)."""
    match message:
        case Delta(epoch, seq, time, trigger, ops):
            return pack_delta(epoch, seq, time, trigger, [encode_op(o) for o in ops])
        case SnapshotChunk(epoch, seq, chunk, chunks, ops, base):
            encoded = [encode_op(o) for o in ops]
            return pack_snapshot_chunk(epoch, seq, chunk, chunks, encoded, base=base)
        case Tick(epoch, seq, time):
            return packb(
                {"v": SCHEMA_VERSION, "kind": "tick", "epoch": epoch, "seq": seq, "time": time}
            )
        case SnapshotRequest(epoch, seq):
            request: dict[str, Any] = {"v": SCHEMA_VERSION, "kind": "snapshot-request"}
            if seq >= 0:
                request.update(epoch=epoch, seq=seq)
            return packb(request)
        case ErrorReply(reason):
            return packb({"v": SCHEMA_VERSION, "kind": "error", "reason": reason})
        case Status():
            return packb(_status_to_wire(message))
    raise TypeError(f"not a message: {message!r}")


def _status_to_wire(s: Status) -> dict[str, Any]:
    return {
        "v": SCHEMA_VERSION,
        "kind": "status",
        "node": s.node,
        "epoch": s.epoch,
        "seq": s.seq,
        "backend": s.backend,
        "healthy": s.healthy,
        "time": s.time,
        "version": s.version,
        "last_sync": s.last_sync,
        "sync_duration": s.sync_duration,
        "counts": dict(s.counts),
        "errors": list(s.errors),
        "latency": [[applied, seconds] for applied, seconds in s.latency],
    }


class OpCache:
    """Decoded operations by their encoded bytes, for many consumers in one process (a
    snapshot storm of simulated agents decodes each distinct operation once). Operations
    are immutable, so sharing them is safe; the cache empties itself when full.

    Whole ``ops`` arrays are cached too (by their bytes): the nodes of a zone are sent the
    same runs of operations, so a hit costs one hash of the array instead of a walk over
    its operations."""

    def __init__(self, max_items: int = 2_000_000, max_array_bytes: int = 256 << 20) -> None:
        self.max_items = max_items
        self.max_array_bytes = max_array_bytes
        self.hits = 0
        self.array_hits = 0
        self._ops: dict[tuple[bytes, Scope], Op[Any] | None] = {}
        self._arrays: dict[tuple[bytes, Scope], tuple[Op[Any], ...]] = {}
        self._array_bytes = 0

    def ops(self, array: bytes, scope: Scope) -> tuple[Op[Any], ...]:
        """The operations of an encoded ``ops`` array (array header included)."""
        key = (array, scope)
        cached = self._arrays.get(key)
        if cached is not None:
            self.array_hits += 1
            return cached
        unpacker = msgpack.Unpacker(max_buffer_size=len(array) + 1)
        unpacker.feed(array)
        items = []
        for _ in range(unpacker.read_array_header()):
            start = unpacker.tell()
            unpacker.skip()
            items.append(array[start : unpacker.tell()])
        decoded = (self.op(o, f"ops[{i}]", scope) for i, o in enumerate(items))
        ops = tuple(op for op in decoded if op is not None)
        if self._array_bytes + len(array) > self.max_array_bytes:
            self._arrays.clear()
            self._array_bytes = 0
        self._arrays[key] = ops
        self._array_bytes += len(array)
        return ops

    def op(self, data: bytes, path: str, scope: Scope) -> Op[Any] | None:
        key = (data, scope)
        try:
            op = self._ops[key]
            self.hits += 1
            return op
        except KeyError:
            pass
        op = op_from_wire(msgpack.unpackb(data, raw=False, strict_map_key=False), path, scope)
        if len(self._ops) >= self.max_items:
            self._ops.clear()
        self._ops[key] = op
        return op


def decode(data: bytes, scope: Scope = "node", op_cache: OpCache | None = None) -> Message:
    """Decode one message. Raises :class:`MalformedMessage` for anything but valid v1.

    With ``op_cache``, operations already seen are not decoded again."""
    raw: Any = None
    if op_cache is not None:
        raw = _split_ops(data)
    if raw is None:
        op_cache = None
        try:
            raw = msgpack.unpackb(data, raw=False, strict_map_key=False)
        except Exception as exc:  # msgpack raises several unrelated types for garbage
            raise MalformedMessage("", f"not msgpack: {exc}") from None
    if not isinstance(raw, dict):
        raise MalformedMessage("", f"expected a map, got {type(raw).__name__}")
    r = _Reader(raw, "")
    version = r.get("v", int)
    if version != SCHEMA_VERSION:
        raise MalformedMessage("v", f"unsupported schema version {version}")
    kind = r.get("kind", str)
    if kind == "delta":
        return Delta(
            r.get("epoch", str),
            r.get("seq", int),
            r.get("time", float),
            r.optional_float("trigger"),
            _ops(r, scope, op_cache),
        )
    if kind == "tick":
        return Tick(r.get("epoch", str), r.get("seq", int), r.get("time", float))
    if kind == "snapshot":
        return _snapshot(r, scope, op_cache)
    if kind == "snapshot-request":
        if r.data.get("seq") is None:
            return SnapshotRequest()
        return SnapshotRequest(r.get("epoch", str), r.get("seq", int))
    if kind == "error":
        return ErrorReply(r.get("reason", str))
    if kind == "status":
        return _status(r)
    raise MalformedMessage("kind", f"unknown message kind {kind!r}")


def _split_ops(data: bytes) -> dict[Any, Any] | None:
    """The message map with ``ops`` still encoded (:class:`_EncodedOps`); None when the
    message is not that simple (the plain decoder then says what is wrong)."""
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False, max_buffer_size=len(data) + 1)
    unpacker.feed(data)
    try:
        out: dict[Any, Any] = {}
        for _ in range(unpacker.read_map_header()):
            key = unpacker.unpack()
            if key != "ops":
                out[key] = unpacker.unpack()
                continue
            start = unpacker.tell()
            unpacker.skip()
            first = data[start]
            if (first & 0xF0) != 0x90 and first not in (0xDC, 0xDD):  # fixarray, array16/32
                return None  # not an array: the plain decoder reports it
            out[key] = _EncodedOps(data[start : unpacker.tell()])
        if unpacker.tell() != len(data):
            return None
    except Exception:  # anything odd: the plain decoder reports it
        return None
    return out


@dataclass(frozen=True, slots=True)
class _EncodedOps:
    """A message's ``ops`` array, still encoded (for :class:`OpCache`)."""

    data: bytes


def _ops(r: _Reader, scope: Scope, cache: OpCache | None = None) -> tuple[Op[Any], ...]:
    raw = r.data.get("ops")
    if cache is not None and isinstance(raw, _EncodedOps):
        return cache.ops(raw.data, scope)
    items = r.get("ops", list)
    ops = (op_from_wire(o, f"ops[{i}]", scope) for i, o in enumerate(items))
    return tuple(op for op in ops if op is not None)


def _snapshot(r: _Reader, scope: Scope, cache: OpCache | None) -> SnapshotChunk:
    chunk, chunks = r.get("chunk", int), r.get("chunks", int)
    if not 0 <= chunk < chunks:
        raise MalformedMessage("chunk", f"chunk {chunk} of {chunks}")
    ops = _ops(r, scope, cache)
    base = -1 if r.data.get("base") is None else r.get("base", int)
    return SnapshotChunk(r.get("epoch", str), r.get("seq", int), chunk, chunks, ops, base)


def _status(r: _Reader) -> Status:
    counts = r.get("counts", dict, {})
    if not all(isinstance(k, str) and isinstance(v, int) for k, v in counts.items()):
        raise MalformedMessage("counts", "expected a map of names to integers")
    return Status(
        node=r.get("node", str),
        epoch=r.get("epoch", str, ""),
        seq=r.get("seq", int, -1),
        backend=r.get("backend", str, ""),
        healthy=r.get("healthy", bool),
        time=r.get("time", float),
        version=r.get("version", str, ""),
        last_sync=r.optional_float("last_sync"),
        sync_duration=r.optional_float("sync_duration"),
        counts=dict(counts),
        errors=r.strings("errors"),
        latency=_latency(r),
    )


def _latency(r: _Reader) -> tuple[tuple[float, float], ...]:
    """Optional ``latency``: ``[[applied_at, seconds], ...]`` (absent in older agents)."""
    samples = []
    for i, raw in enumerate(r.get("latency", list, [])):
        if (
            not isinstance(raw, list)
            or len(raw) < 2
            or not all(isinstance(x, int | float) and not isinstance(x, bool) for x in raw[:2])
        ):
            raise MalformedMessage(f"latency[{i}]", "expected [applied_at, seconds]")
        samples.append((float(raw[0]), float(raw[1])))
    return tuple(samples)
