"""Decoded operations shared by the consumers of one process (:class:`OpCache`), and the
decoding of an encoded ``ops`` array item by item."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kpng.bus.bounds import array_items, unpack
from kpng.bus.compression import MAX_INFLATED, decompress
from kpng.bus.wire import Scope, ops_from_wire
from kpng.diff import Op
from kpng.sharedviews import SharedOps, SnapshotPrefixes


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
        self._ops: dict[tuple[bytes, Scope], tuple[Op[Any], ...]] = {}
        self._arrays: dict[tuple[bytes, Scope], tuple[Op[Any], ...]] = {}
        self._array_bytes = 0
        self.prefixes = SnapshotPrefixes()  # views of zone parts, for their consumers

    def known(self, array: bytes) -> bool:
        """Whether ``array`` was decoded already (for some scope)."""
        return (array, "node") in self._arrays or (array, "global") in self._arrays

    def ops(self, array: bytes, scope: Scope) -> tuple[Op[Any], ...]:
        """The operations of an encoded ``ops`` array (array header included)."""
        return self._cached(array, scope, lambda: array, "ops")

    def compressed(
        self, frame: bytes, scope: Scope, max_inflated: int = MAX_INFLATED
    ) -> tuple[Op[Any], ...]:
        """The operations of a ``zops`` frame (cached by the frame: a hit inflates nothing)."""
        return self._cached(frame, scope, lambda: decompress(frame, "zops", max_inflated), "zops")

    def _cached(
        self, key_bytes: bytes, scope: Scope, array_of: Callable[[], bytes], field: str
    ) -> tuple[Op[Any], ...]:
        key = (key_bytes, scope)
        cached = self._arrays.get(key)
        if cached is not None:
            self.array_hits += 1
            return cached
        array = array_of()
        ops = SharedOps(array_ops(array, field, scope, self.op))
        if self._array_bytes + len(array) > self.max_array_bytes:
            self._arrays.clear()
            self._array_bytes = 0
        self._arrays[key] = ops
        self._array_bytes += len(array)
        return ops

    def op(self, data: bytes, path: str, scope: Scope) -> tuple[Op[Any], ...]:
        """The operations of one encoded wire operation (several for ``eps``)."""
        key = (data, scope)
        try:
            ops = self._ops[key]
            self.hits += 1
            return ops
        except KeyError:
            pass
        ops = op_of(data, path, scope)
        if len(self._ops) >= self.max_items:
            self._ops.clear()
        self._ops[key] = ops
        return ops


def op_of(data: bytes, path: str, scope: Scope) -> tuple[Op[Any], ...]:
    """The operations of one encoded wire operation (walked, but not checked, before)."""
    return ops_from_wire(unpack(data, path), path, scope)


OpDecoder = Callable[[bytes, str, Scope], tuple[Op[Any], ...]]


def array_ops(array: bytes, field: str, scope: Scope, op_of: OpDecoder) -> tuple[Op[Any], ...]:
    """The operations of an encoded ``ops`` array, each item decoded by ``op_of`` (the
    array walked one item at a time, its length bounded by its bytes: kpng.bus.bounds)."""
    items = array_items(array, field)
    return tuple(op for i, o in enumerate(items) for op in op_of(o, f"{field}[{i}]", scope))
