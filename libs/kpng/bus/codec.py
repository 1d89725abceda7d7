"""The wire format of bus contract v1: msgpack maps with a schema version.

Encoders are deterministic; operations are encoded once and reused in every message that
carries them (:func:`encode_op`, then :func:`pack_delta` around the bytes). Decoders ignore
unknown fields and raise :class:`MalformedMessage`, naming the field, for anything else.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgpack

from kpng.bus.bounds import MAX_MESSAGE, check_size, unpack
from kpng.bus.compression import MAX_INFLATED, decompress
from kpng.bus.opcache import OpCache, array_ops, op_of
from kpng.bus.subjects import is_cast_id
from kpng.bus.wire import (
    CAST,
    COMPACT_ENDPOINTS,
    COMPRESSED_OPS,
    DIGEST_FEATURES,
    NODE_FIELDS,
    PORT_MARKS,
    SCHEMA_VERSION,
    SHORTCUT_MARKS,
    MalformedMessage,
    Reader,
    Scope,
    endpoint_from_wire,
    endpoint_to_wire,
    endpoints_to_wire,
    node_from_wire,
    node_to_wire,
    op_from_wire,
    op_to_wire,
    ops_from_wire,
    service_from_wire,
    service_to_wire,
)
from kpng.diff import Op

__all__ = [
    "CAST",
    "COMPACT_ENDPOINTS",
    "COMPRESSED_OPS",
    "DIGEST_FEATURES",
    "MAX_SEQ",
    "NODE_FIELDS",
    "PORT_MARKS",
    "SCHEMA_VERSION",
    "SHORTCUT_MARKS",
    "CastChunk",
    "CastRef",
    "CastRequest",
    "Delta",
    "ErrorReply",
    "MalformedMessage",
    "Message",
    "OpCache",
    "Scope",
    "SnapshotChunk",
    "SnapshotRequest",
    "Status",
    "Tick",
    "decode",
    "delta_head",
    "encode",
    "encode_op",
    "endpoint_from_wire",
    "endpoint_to_wire",
    "endpoints_to_wire",
    "node_from_wire",
    "node_to_wire",
    "op_from_wire",
    "op_to_wire",
    "ops_array",
    "ops_from_wire",
    "pack_cast_chunk",
    "pack_compressed_cast_chunk",
    "pack_compressed_chunk",
    "pack_delta",
    "pack_snapshot_chunk",
    "packb",
    "service_from_wire",
    "service_to_wire",
]


# The largest seq of the contract (2^53 - 1): every seq fits a float64 exactly, so a decoder
# that reads numbers as doubles (JavaScript's) keeps it. Decoders refuse larger ones.
MAX_SEQ = 2**53 - 1
# the most chunks a cast may have: a zone's part of a node view is ~4 MB at 10k services x 10
# endpoints before compression (16 chunks of MAX_MESSAGE); room for 100x that
MAX_CAST_CHUNKS = 4096


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
    # the digest of the view at (epoch, seq) (kpng.digest, 16 hex digits); "" from older
    # watchers: nothing to check
    digest: str = ""


@dataclass(frozen=True, slots=True)
class CastRef:
    """In a node snapshot's chunks: the snapshot starts with the ``chunks`` chunks of the
    cast ``id``, published on ``<prefix>.v1.cast.<id>`` when asked for (a zone's part)."""

    id: str
    chunks: int


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
    # a rebase (``base`` >= 0 in another epoch): the view at (``base_epoch``, ``base``) is
    # the view at (``epoch``, ``seq``); "": ``base`` is in this chunk's epoch
    base_epoch: str = ""
    cast: CastRef | None = None  # a full snapshot whose first operations come as a cast


@dataclass(frozen=True, slots=True)
class SnapshotRequest:
    """``seq`` >= 0: the consumer holds a trusted view at (``epoch``, ``seq``) and may be
    answered with only what it missed (a catch-up); -1: a full snapshot."""

    epoch: str = ""
    seq: int = -1
    # optional features the consumer understands (``"eps"``: compact endpoint operations)
    accept: tuple[str, ...] = ()
    # the digest of the trusted view at (epoch, seq): a watcher of another epoch whose view
    # of the node has it answers with a rebase instead of a full snapshot
    digest: str = ""


@dataclass(frozen=True, slots=True)
class CastRequest:
    """Sent to a node's snapshot subject once subscribed to the cast ``id``'s subject: the
    watcher publishes the cast there soon (with the others who asked meanwhile)."""

    id: str


@dataclass(frozen=True, slots=True)
class CastChunk:
    """A chunk of a cast: operations shared by the snapshots that name it."""

    id: str
    chunk: int
    chunks: int
    ops: tuple[Op[Any], ...]


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
    # conditions found at start that may break traffic though programming succeeds
    warnings: tuple[str, ...] = ()
    digest: str = ""  # the digest of the agent's view at (epoch, seq); "" if none


Message = (
    Delta | Tick | SnapshotChunk | SnapshotRequest | CastRequest | CastChunk | ErrorReply | Status
)
_packer = msgpack.Packer(use_bin_type=True)


def packb(obj: Any) -> bytes:
    data: bytes = msgpack.packb(obj, use_bin_type=True)
    return data


def encode_op(op: Op[Any]) -> bytes:
    return packb(op_to_wire(op))


def _pack_with_ops(header: Mapping[str, Any], ops: Sequence[bytes], count: int | None) -> bytes:
    """The header map with an ``ops`` array around encoded operations. ``ops`` may hold runs
    of several operations joined together; ``count`` is then the number of operations."""
    return b"".join((_head_with_ops(header, len(ops) if count is None else count), *ops))


def _head_with_ops(header: Mapping[str, Any], count: int) -> bytes:
    """The bytes of a message that come before its ``count`` encoded operations."""
    packed = packb(header)
    if len(header) < 15:  # a fixmap: one more entry is one more in the first byte
        parts = [bytes((packed[0] + 1,)), packed[1:]]
    else:
        parts = [_packer.pack_map_header(len(header) + 1)]
        parts.extend(packb(key) + packb(value) for key, value in header.items())
    parts.append(_OPS_KEY)
    parts.append(_packer.pack_array_header(count))
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
    head = delta_head(epoch, seq, time, trigger_time, len(ops) if count is None else count)
    return b"".join((head, *ops))


def delta_head(epoch: str, seq: int, time: float, trigger_time: float | None, count: int) -> bytes:
    """A delta message up to its operations: ``delta_head(...) + run`` is
    ``pack_delta(..., (run,), count)``, without copying the run into a new message."""
    header = {"v": SCHEMA_VERSION, "kind": "delta", "epoch": epoch, "seq": seq, "time": time}
    if trigger_time is not None:
        header["trigger"] = trigger_time
    return _head_with_ops(header, count)


def pack_snapshot_chunk(
    epoch: str,
    seq: int,
    chunk: int,
    chunks: int,
    ops: Sequence[bytes],
    count: int | None = None,
    base: int = -1,
    base_epoch: str = "",
    cast: CastRef | None = None,
) -> bytes:
    """A snapshot chunk; ``base`` >= 0 makes it a chunk of a catch-up reply (of a rebase
    with ``base_epoch``); ``cast``: of a full snapshot that starts with that cast."""
    header = _snapshot_header(epoch, seq, chunk, chunks, base, cast)
    if base_epoch and base >= 0:
        header["base_epoch"] = base_epoch
    return _pack_with_ops(header, ops, count)


def pack_compressed_chunk(
    epoch: str,
    seq: int,
    chunk: int,
    chunks: int,
    frame: bytes,
    base: int = -1,
    cast: CastRef | None = None,
) -> bytes:
    """A snapshot chunk whose operations are a zstd ``frame`` of an encoded ``ops`` array
    (header included): the ``zops`` field, for consumers that accept ``"zstd"``."""
    header = _snapshot_header(epoch, seq, chunk, chunks, base, cast)
    header["zops"] = frame
    return packb(header)


def pack_cast_chunk(id: str, chunk: int, chunks: int, run: bytes, count: int) -> bytes:
    """A cast chunk around a run of ``count`` encoded operations."""
    return _pack_with_ops(_cast_header(id, chunk, chunks), (run,), count)


def pack_compressed_cast_chunk(id: str, chunk: int, chunks: int, frame: bytes) -> bytes:
    """A cast chunk whose operations are a zstd ``frame`` (``zops``, as in a snapshot)."""
    return packb({**_cast_header(id, chunk, chunks), "zops": frame})


def _cast_header(id: str, chunk: int, chunks: int) -> dict[str, Any]:
    return {"v": SCHEMA_VERSION, "kind": "cast", "id": id, "chunk": chunk, "chunks": chunks}


def _snapshot_header(
    epoch: str, seq: int, chunk: int, chunks: int, base: int, cast: CastRef | None = None
) -> dict[str, Any]:
    header: dict[str, Any] = {
        "v": SCHEMA_VERSION,
        "kind": "snapshot",
        "epoch": epoch,
        "seq": seq,
        "chunk": chunk,
        "chunks": chunks,
    }
    if base >= 0:
        header["base"] = base
    if cast is not None:
        header["cast"] = {"id": cast.id, "chunks": cast.chunks}
    return header


def ops_array(ops: Sequence[bytes], count: int | None = None) -> bytes:
    """An encoded ``ops`` array around encoded operations (or runs of ``count`` in all)."""
    return b"".join((_packer.pack_array_header(len(ops) if count is None else count), *ops))


def encode(message: Message) -> bytes:
    """Encode any message (deltas and snapshots by value; see :func:`pack_delta`)."""
    match message:
        case Delta(epoch, seq, time, trigger, ops):
            return pack_delta(epoch, seq, time, trigger, [encode_op(o) for o in ops])
        case SnapshotChunk(epoch, seq, chunk, chunks, ops, base, base_epoch, cast):
            encoded = [encode_op(o) for o in ops]
            return pack_snapshot_chunk(
                epoch, seq, chunk, chunks, encoded, None, base, base_epoch, cast
            )
        case CastRequest(id):
            return packb({"v": SCHEMA_VERSION, "kind": "cast-request", "id": id})
        case CastChunk(id, chunk, chunks, ops):
            run = b"".join(encode_op(o) for o in ops)
            return pack_cast_chunk(id, chunk, chunks, run, len(ops))
        case Tick(epoch, seq, time, digest):
            tick = {"v": SCHEMA_VERSION, "kind": "tick", "epoch": epoch, "seq": seq, "time": time}
            if digest:
                tick["digest"] = digest
            return packb(tick)
        case SnapshotRequest(epoch, seq, accept, digest):
            request: dict[str, Any] = {"v": SCHEMA_VERSION, "kind": "snapshot-request"}
            if seq >= 0:
                request.update(epoch=epoch, seq=seq)
                if digest:
                    request["digest"] = digest
            if accept:
                request["accept"] = list(accept)
            return packb(request)
        case ErrorReply(reason):
            return packb({"v": SCHEMA_VERSION, "kind": "error", "reason": reason})
        case Status():
            return packb(_status_to_wire(message))
    raise TypeError(f"not a message: {message!r}")


def _status_to_wire(s: Status) -> dict[str, Any]:
    wire = {
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
        **({"digest": s.digest} if s.digest else {}),
    }
    if s.warnings:  # optional: absent from older agents' and most statuses
        wire["warnings"] = list(s.warnings)
    return wire


def decode(
    data: bytes,
    scope: Scope = "node",
    op_cache: OpCache | None = None,
    max_inflated: int = MAX_INFLATED,
) -> Message:
    """Decode one message. Raises :class:`MalformedMessage` for anything but valid v1.

    With ``op_cache``, operations already seen are not decoded again. Work and memory are
    bounded by the message's bytes (:mod:`kpng.bus.bounds`) and, for ``zops``, by
    ``max_inflated`` (a consumer passes its bus's max_payload: the watcher never
    compresses more than one message's worth of operations into a frame). A message, or a
    frame's content, beyond :data:`kpng.bus.bounds.MAX_MESSAGE` is refused unread."""
    check_size(len(data), "")
    max_inflated = min(max_inflated, MAX_MESSAGE)
    raw: Any = None
    if op_cache is not None:
        raw = _split_ops(data, op_cache)
    if raw is None:
        op_cache = None
        raw = unpack(data, "")
    if not isinstance(raw, dict):
        raise MalformedMessage("", f"expected a map, got {type(raw).__name__}")
    r = Reader(raw, "")
    version = r.get("v", int)
    if version != SCHEMA_VERSION:
        raise MalformedMessage("v", f"unsupported schema version {version}")
    kind = r.get("kind", str)
    if kind == "delta":
        return Delta(
            r.get("epoch", str),
            _seq(r, "seq"),
            r.get("time", float),
            r.optional_float("trigger"),
            _ops(r, scope, op_cache),
        )
    if kind == "tick":
        digest = r.get("digest", str, "")
        return Tick(r.get("epoch", str), _seq(r, "seq"), r.get("time", float), digest)
    if kind == "snapshot":
        return _snapshot(r, scope, op_cache, max_inflated)
    if kind == "snapshot-request":
        accept = r.strings("accept")
        if r.data.get("seq") is None:
            return SnapshotRequest(accept=accept)
        digest = r.get("digest", str, "")
        seq = _seq(r, "seq", low=-1)  # -1: as absent, a full snapshot
        if seq < 0:
            return SnapshotRequest(accept=accept)
        return SnapshotRequest(r.get("epoch", str), seq, accept, digest)
    if kind == "cast-request":
        return CastRequest(_cast_id(r))
    if kind == "cast":
        chunk, chunks = _chunk(r)
        return CastChunk(_cast_id(r), chunk, chunks, _chunk_ops(r, scope, op_cache, max_inflated))
    if kind == "error":
        return ErrorReply(r.get("reason", str))
    if kind == "status":
        return _status(r)
    raise MalformedMessage("kind", f"unknown message kind {kind!r}")


def _split_ops(data: bytes, cache: OpCache) -> dict[Any, Any] | None:
    """The message map with ``ops`` still encoded (:class:`_EncodedOps`); None when the
    message is not that simple (the plain decoder then says what is wrong).

    ``ops`` last (as kpng's watcher sends it) and already in ``cache``: its bytes are known
    to be a valid array, so they are not walked again (a snapshot chunk is ~1 MB)."""
    size = len(data)
    unpacker = msgpack.Unpacker(  # reads from the message as needed, no up-front copy
        io.BytesIO(data),
        raw=False,
        strict_map_key=False,
        read_size=4096,
        max_str_len=size,
        max_bin_len=size,
        max_ext_len=size,
        max_array_len=size,
        max_map_len=size // 2,
    )
    try:
        out: dict[Any, Any] = {}
        entries = unpacker.read_map_header()
        for i in range(entries):
            start = unpacker.tell()
            unpacker.skip()
            key = unpack(data[start : unpacker.tell()], "")
            if key != "ops":
                start = unpacker.tell()
                unpacker.skip()
                out[key] = unpack(data[start : unpacker.tell()], str(key)[:40])
                continue
            start = unpacker.tell()
            first = data[start]
            if (first & 0xF0) != 0x90 and first not in (0xDC, 0xDD):  # fixarray, array16/32
                return None  # not an array: the plain decoder reports it
            if i == entries - 1 and cache.known(rest := data[start:]):
                out[key] = _EncodedOps(rest)
                return out
            unpacker.skip()
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


def _ops(r: Reader, scope: Scope, cache: OpCache | None = None) -> tuple[Op[Any], ...]:
    raw = r.data.get("ops")
    if cache is not None and isinstance(raw, _EncodedOps):
        return cache.ops(raw.data, scope)
    items = r.get("ops", list)
    return tuple(op for i, o in enumerate(items) for op in ops_from_wire(o, f"ops[{i}]", scope))


def _compressed_ops(
    r: Reader, scope: Scope, cache: OpCache | None, max_inflated: int
) -> tuple[Op[Any], ...]:
    """A chunk's operations from its ``zops`` frame (feature ``"zstd"``)."""
    if "ops" in r.data:
        raise MalformedMessage("zops", "a chunk carries ops or zops, not both")
    frame = r.get("zops", bytes)
    if cache is not None:
        return cache.compressed(frame, scope, max_inflated)
    return array_ops(decompress(frame, "zops", max_inflated), "zops", scope, op_of)


def _snapshot(r: Reader, scope: Scope, cache: OpCache | None, max_inflated: int) -> SnapshotChunk:
    chunk, chunks = _chunk(r)
    ops = _chunk_ops(r, scope, cache, max_inflated)
    base = -1 if r.data.get("base") is None else _seq(r, "base", low=-1)
    base_epoch = r.get("base_epoch", str, "")
    cast = None
    if r.data.get("cast") is not None:
        if base >= 0:
            raise MalformedMessage("cast", "only a full snapshot starts with a cast")
        c = r.child("cast")
        cast = CastRef(_cast_id(c), c.get("chunks", int))
        if not 1 <= cast.chunks <= MAX_CAST_CHUNKS:
            raise MalformedMessage(c.where("chunks"), f"{cast.chunks} (1..{MAX_CAST_CHUNKS})")
    epoch, seq = r.get("epoch", str), _seq(r, "seq")
    return SnapshotChunk(epoch, seq, chunk, chunks, ops, base, base_epoch, cast)


def _chunk(r: Reader) -> tuple[int, int]:
    chunk, chunks = r.get("chunk", int), r.get("chunks", int)
    if not 0 <= chunk < chunks:
        raise MalformedMessage(r.where("chunk"), f"chunk {chunk} of {chunks}")
    return chunk, chunks


def _chunk_ops(
    r: Reader, scope: Scope, cache: OpCache | None, max_inflated: int
) -> tuple[Op[Any], ...]:
    if "zops" in r.data:
        return _compressed_ops(r, scope, cache, max_inflated)
    return _ops(r, scope, cache)


def _cast_id(r: Reader) -> str:
    """A cast id: 16 lowercase hex digits (it becomes a subject token)."""
    value = r.get("id", str)
    if not is_cast_id(value):
        raise MalformedMessage(r.where("id"), "expected 16 lowercase hex digits")
    return value


def _seq(r: Reader, key: str, low: int = 0, default: int | None = None) -> int:
    """A seq field: an integer from ``low`` to :data:`MAX_SEQ`."""
    value = r.get(key, int, default)
    if not low <= value <= MAX_SEQ:
        raise MalformedMessage(r.where(key), f"seq {value} outside {low}..2^53-1")
    return value


def _status(r: Reader) -> Status:
    counts = r.get("counts", dict, {})
    if not all(isinstance(k, str) and isinstance(v, int) for k, v in counts.items()):
        raise MalformedMessage("counts", "expected a map of names to integers")
    return Status(
        node=r.get("node", str),
        epoch=r.get("epoch", str, ""),
        seq=_seq(r, "seq", low=-1, default=-1),
        backend=r.get("backend", str, ""),
        healthy=r.get("healthy", bool),
        time=r.get("time", float),
        version=r.get("version", str, ""),
        last_sync=r.optional_float("last_sync"),
        sync_duration=r.optional_float("sync_duration"),
        counts=dict(counts),
        errors=r.strings("errors"),
        latency=_latency(r),
        warnings=r.strings("warnings"),
        digest=r.get("digest", str, ""),
    )


def _latency(r: Reader) -> tuple[tuple[float, float], ...]:
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
