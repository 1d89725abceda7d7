"""Node snapshots assembled from encoded blocks that a zone's nodes share.

A node's snapshot is its zone's part, the same bytes for every node of the zone (every
service as a node special to none of them sees it), then the node's own part: for each
service the node is special to (Local policy with endpoints there, or named by a node
hint), the operations that turn the zone's view of it into the node's, and the node
itself. Consumers apply a snapshot's operations in order, so the result is the node's view.

The zone part is built from per-bucket blocks of services, each encoded once per (zone,
encoding) and kept until a service of its bucket changes; its chunks are packed the same
way for every node, so a process that follows many nodes decodes them once. For consumers
that accept ``"zstd"``, the zone part's chunks are compressed once too (kpng.bus.compression).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass

from kpng.bus.codec import (
    CastRef,
    encode_op,
    endpoints_to_wire,
    ops_array,
    pack_cast_chunk,
    pack_compressed_cast_chunk,
    pack_compressed_chunk,
    pack_snapshot_chunk,
    packb,
)
from kpng.bus.compression import MIN_SIZE, compress
from kpng.diff import Op, SetEndpoint, SetNode, SetService, diff_service
from kpng.fanout.casts import CastStore
from kpng.fanout.cluster import ServiceState
from kpng.fanout.stats import FanoutStats
from kpng.fanout.views import service_view, special_nodes, view_variant
from kpng.model import Endpoint, Node, Service, ViewEndpoint

ENVELOPE = 160  # bytes reserved for a message's header fields around its operations
_BUCKETS = 1024  # a few services per block at 10k services


@dataclass(frozen=True, slots=True)
class Block:
    """Encoded operations of some services, also joined."""

    ops: list[bytes]
    blob: bytes

    @classmethod
    def of(cls, ops: list[bytes]) -> Block:
        return cls(ops, b"".join(ops))


Run = tuple[int, bytes]  # (operations, their encodings joined)


@dataclass(frozen=True, slots=True)
class Compressed:
    """A run as one zstd frame of its ``ops`` array (a chunk's ``zops``)."""

    frame: bytes


Part = Run | Compressed  # what one chunk carries


class Snapshots:
    """The encoded state of every published service, for snapshots; ``published`` is the
    fan-out's own map of services as last published (read, never changed here)."""

    def __init__(
        self, published: dict[str, ServiceState], stats: FanoutStats, min_size: int = MIN_SIZE
    ) -> None:
        self._published = published
        self.stats = stats
        self.min_size = min_size  # runs smaller than this are not worth a zstd frame
        self._encoded: dict[str, dict[Hashable, list[bytes]]] = {}  # key: variant: ops
        self._buckets: dict[int, dict[str, None]] = {}
        self._blocks: dict[int, dict[tuple[str, bool], Block]] = {}
        self._zone_runs: dict[tuple[str, bool, int], list[Run]] = {}
        self._zone_frames: dict[tuple[str, bool, int], list[Part]] = {}
        self._specials: dict[str, set[str]] = {}  # node: services it is special to
        self._special_of: dict[str, set[str]] = {}
        # moves with every change: with the epoch, it names the zone parts' bytes (casts)
        self.generation = 0

    def track(self, key: str, state: ServiceState) -> None:
        """Forget the encodings of a changed service; note its bucket and special nodes."""
        bucket = _bucket(key)
        self.generation += 1
        self._encoded.pop(key, None)
        self._blocks.pop(bucket, None)
        self._zone_runs.clear()
        self._zone_frames.clear()
        for node in self._special_of.pop(key, ()):
            keys = self._specials[node]
            keys.discard(key)
            if not keys:
                del self._specials[node]
        if state.service is None:
            self._buckets.get(bucket, {}).pop(key, None)
            return
        self._buckets.setdefault(bucket, {})[key] = None
        nodes = special_nodes(state.service, state.endpoints)
        if nodes:
            self._special_of[key] = nodes
            for node in nodes:
                self._specials.setdefault(node, set()).add(key)

    def special_to(self, key: str) -> set[str]:
        """The nodes the service ``key`` is special to."""
        return self._special_of.get(key, set())

    def specials(self, node: str) -> set[str]:
        """The services ``node`` is special to (its view of them is its own)."""
        return self._specials.get(node, set())

    def node_chunks(
        self,
        epoch: str,
        seq: int,
        name: str,
        zone: str,
        node: Node | None,
        compact: bool,
        limit: int,
        zstd: bool = False,
        casts: CastStore | None = None,
    ) -> list[bytes]:
        """``name``'s whole view at ``seq`` as chunks of at most ``limit`` bytes of
        operations; ``compact``: endpoints as one ``eps`` operation per service; ``zstd``:
        chunks of more than a few KB compressed (the zone's part once per zone); ``casts``
        (for consumers that accept them): a zone's part of at least ``casts.min_size``
        bytes as a cast that the chunks name, which then carry only the node's own part."""
        zone_runs = self._zone_part(zone, compact, limit)
        own: list[Run] = []
        for key in sorted(self._specials.get(name, ())):
            own.extend((1, op) for op in self._override(key, name, zone))
        if node is not None:
            own.append((1, encode_op(SetNode(node))))
        if casts is not None and sum(len(r[1]) for r in zone_runs) >= casts.min_size:
            zone_parts: list[Part] = (
                self._zone_compressed(zone, compact, limit) if zstd else list(zone_runs)
            )
            version = (epoch, zone, compact, limit, zstd, self.generation)
            ref = casts.offer(version, lambda id: cast_chunk_messages(id, zone_parts))
            return chunk_messages(epoch, seq, self.parts(pack(own, limit), zstd), cast=ref)
        parts: list[Part]
        small = len(zone_runs) <= 1
        if zstd and not (small and sum(len(r[1]) for r in zone_runs) < self.min_size):
            # the zone's frames (compressed once per zone), then the node's own
            own_parts = self.parts(pack(own, limit), True)
            parts = [*self._zone_compressed(zone, compact, limit), *own_parts]
        elif small:  # a small view: one message if it fits
            parts = self.parts(pack([*zone_runs, *own], limit), False)
        else:  # a part other nodes share: the node's own after it
            parts = [*zone_runs, *pack(own, limit)]
        return chunk_messages(epoch, seq, parts)

    def global_chunks(
        self, epoch: str, seq: int, nodes: Iterable[Node], limit: int, zstd: bool = False
    ) -> list[bytes]:
        ops: list[bytes] = []
        for state in self._published.values():
            ops.extend(encode_service(state.spec, state.endpoints))
        ops.extend(encode_op(SetNode(n)) for n in nodes)
        runs = pack(((1, op) for op in ops), limit)
        return chunk_messages(epoch, seq, self.parts(runs, zstd))

    def parts(self, runs: Iterable[Run], zstd: bool) -> list[Part]:
        """What the chunks carry: the runs; with ``zstd``, those of at least ``min_size``
        bytes as zstd frames (unless a frame is no smaller)."""
        out: list[Part] = []
        for count, blob in runs:
            if not zstd or len(blob) < self.min_size:
                out.append((count, blob))
                continue
            frame = compress(ops_array((blob,), count))
            self.stats.compressions += 1
            self.stats.compressed_in += len(blob)
            self.stats.compressed_out += len(frame)
            out.append(Compressed(frame) if len(frame) < len(blob) else (count, blob))
        return out

    def _zone_compressed(self, zone: str, compact: bool, limit: int) -> list[Part]:
        """The zone's part compressed, once until a service changes."""
        key = (zone, compact, limit)
        cached = self._zone_frames.get(key)
        if cached is None:
            cached = self._zone_frames[key] = self.parts(self._zone_part(*key), True)
        return cached

    def _zone_part(self, zone: str, compact: bool, limit: int) -> list[Run]:
        """The zone's part, packed once until a service changes (a block whole if it fits
        in a message, else operation by operation)."""
        cached = self._zone_runs.get((zone, compact, limit))
        if cached is not None:
            self.stats.snapshot_cache_hits += 1
            return cached
        items: list[Run] = []
        for bucket, keys in self._buckets.items():
            block = self._zone_block(bucket, keys, zone, compact, limit)
            if len(block.blob) <= limit:
                items.append((len(block.ops), block.blob))
            else:
                items.extend((1, op) for op in block.ops)
        runs = pack(items, limit)
        self._zone_runs[(zone, compact, limit)] = runs
        return runs

    def _zone_block(
        self, bucket: int, keys: dict[str, None], zone: str, compact: bool, limit: int
    ) -> Block:
        cached = self._blocks.setdefault(bucket, {})
        block = cached.get((zone, compact))
        if block is None:
            ops: list[bytes] = []
            for key in keys:
                ops.extend(self._service(key, zone, compact, limit))
            block = cached[(zone, compact)] = Block.of(ops)
        return block

    def _service(self, key: str, zone: str, compact: bool, limit: int) -> list[bytes]:
        """A service as a node of ``zone`` special to it not sees it, encoded once per
        variant (most services look the same from every zone: encoded once)."""
        state = self._published[key]
        assert state.service is not None
        variant = (view_variant(state.service, state.endpoints, "", zone), compact)
        cached = self._encoded.setdefault(key, {})
        encoded = cached.get(variant)
        if encoded is None:
            view = service_view(state.service, state.endpoints, "", zone)
            encoded = cached[variant] = encode_service(state.service, view, compact, limit)
            self.stats.encodings += len(encoded)
        return encoded

    def _override(self, key: str, name: str, zone: str) -> list[bytes]:
        """What turns the zone's view of a service into the view of ``name``, special to it
        (kept, like the zone's encodings, until the service changes)."""
        state = self._published[key]
        assert state.service is not None
        cached = self._encoded.setdefault(key, {})
        variant = ("own", name, zone)
        encoded = cached.get(variant)
        if encoded is None:
            encoded = cached[variant] = self._own_ops(key, state, name, zone)
        return encoded

    def _own_ops(self, key: str, state: ServiceState, name: str, zone: str) -> list[bytes]:
        assert state.service is not None
        generic = service_view(state.service, state.endpoints, "", zone)
        own = service_view(state.service, state.endpoints, name, zone)
        ops: list[Op[ViewEndpoint]] = diff_service(
            key,
            state.service,
            {e.ip: e for e in generic},
            state.service,
            {e.ip: e for e in own},
        )
        return [encode_op(op) for op in ops]


def encode_service(
    spec: Service | None,
    endpoints: Iterable[Endpoint | ViewEndpoint],
    compact: bool = False,
    max_op: int = 1 << 20,
) -> list[bytes]:
    """The operations that add one service and its endpoints; ``compact``: the endpoints of
    a node view as ``eps`` operations, one unless it would exceed ``max_op`` bytes (a
    service of tens of thousands of endpoints: then as many as keep each under it)."""
    assert spec is not None
    out = [encode_op(SetService(spec))]
    if not compact:
        out.extend(encode_op(SetEndpoint(spec.key, e)) for e in endpoints)
        return out
    node_endpoints = [e for e in endpoints if isinstance(e, ViewEndpoint)]
    if node_endpoints:
        out.extend(_eps_ops(spec.key, node_endpoints, max_op))
    return out


def _eps_ops(key: str, endpoints: list[ViewEndpoint], max_op: int) -> list[bytes]:
    op = packb(endpoints_to_wire(key, endpoints))
    if len(op) <= max_op or len(endpoints) == 1:
        return [op]
    half = len(endpoints) // 2
    return _eps_ops(key, endpoints[:half], max_op) + _eps_ops(key, endpoints[half:], max_op)


def pack(items: Iterable[Run], limit: int) -> list[Run]:
    """Runs of encoded operations (count, bytes) joined greedily into runs of at most
    ``limit`` bytes (a larger one alone), in order; none for none."""
    out: list[Run] = []
    parts: list[bytes] = []
    count = size = 0
    for n, data in items:
        if parts and size + len(data) > limit:
            out.append((count, b"".join(parts)))
            parts, count, size = [], 0, 0
        parts.append(data)
        count, size = count + n, size + len(data)
    if parts:
        out.append((count, b"".join(parts)))
    return out


def chunk_messages(
    epoch: str, seq: int, parts: list[Part], base: int = -1, cast: CastRef | None = None
) -> list[bytes]:
    """Snapshot (or catch-up, ``base`` >= 0) chunks around runs or frames; one empty chunk
    for none. ``cast``: a full snapshot's chunks that start with that cast."""
    return _chunks(
        parts,
        lambda i, n, run: pack_snapshot_chunk(epoch, seq, i, n, (run[1],), run[0], base, cast=cast),
        lambda i, n, frame: pack_compressed_chunk(epoch, seq, i, n, frame, base, cast),
    )


def cast_chunk_messages(id: str, parts: list[Part]) -> list[bytes]:
    """The chunks of the cast ``id`` around runs or frames (at least one)."""
    return _chunks(
        parts,
        lambda i, n, run: pack_cast_chunk(id, i, n, run[1], run[0]),
        lambda i, n, frame: pack_compressed_cast_chunk(id, i, n, frame),
    )


def _chunks(
    parts: list[Part],
    plain: Callable[[int, int, Run], bytes],
    compressed: Callable[[int, int, bytes], bytes],
) -> list[bytes]:
    """One message per part (chunk i of n): a run plain, a frame compressed; one empty
    chunk for no part."""
    parts = parts or [(0, b"")]
    n = len(parts)
    return [
        compressed(i, n, p.frame) if isinstance(p, Compressed) else plain(i, n, p)
        for i, p in enumerate(parts)
    ]


def _bucket(key: str) -> int:
    return zlib.crc32(key.encode()) % _BUCKETS
