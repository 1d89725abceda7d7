"""Bounded decoding (issue 14): a hostile message of any shape is refused, or decoded, for
less than 50 MB and a bounded share of CPU, with and without an OpCache.

The time asserted is generous (process CPU, tracemalloc on, a shared 2-core machine); the
figures measured without tracemalloc are in docs/reliability.md."""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable

import msgpack
import pytest
import zstandard

from kpng.bus.bounds import CONTAINER_BYTES, MAX_MESSAGE, array_items, unpack
from kpng.bus.codec import (
    MalformedMessage,
    OpCache,
    decode,
    encode_op,
    ops_array,
    pack_compressed_chunk,
    pack_delta,
    packb,
)
from kpng.diff import DeleteEndpoint

MIB = 1 << 20
MAX_PAYLOAD = MIB  # what an agent on a default nats-server passes as max_inflated
MEMORY_LIMIT = 50 * MIB
# process CPU seconds, without tracemalloc, generous for a shared machine: a refused bomb
# measures < 50 ms; valid operations cost what the watcher's own messages cost (< 0.1 s at
# MAX_MESSAGE: kpng_bench.decoding)
CPU_LIMIT_REFUSED = 0.25
CPU_LIMIT_VALID = 1.0


def _frame(content: bytes) -> bytes:
    return zstandard.ZstdCompressor(level=3, write_content_size=True).compress(content)


def _sizeless_frame(content: bytes) -> bytes:
    return zstandard.ZstdCompressor(level=3, write_content_size=False).compress(content)


def _delta_header_with(ops_field: bytes) -> bytes:
    head = packb({"v": 1, "kind": "delta", "epoch": "e", "seq": 1, "time": 0.0})
    return bytes((head[0] + 1,)) + head[1:] + packb("ops") + ops_field


def _valid_ops(size: int) -> list[bytes]:
    ops, total, i = [], 0, 0
    while total < size:
        op = encode_op(DeleteEndpoint(f"default/s{i % 1000}", f"10.1.{i // 256 % 256}.{i % 256}"))
        ops.append(op)
        total += len(op)
        i += 1
    return ops


def _item_bomb(count: int) -> bytes:
    """An ops array of ``count`` nils (the reproduction's 64 MiB of tiny items)."""
    return b"\xdd" + count.to_bytes(4, "big") + b"\xc0" * count


BOMBS: dict[str, Callable[[], bytes]] = {
    # issue 14 reproduction 2: a few KB of zops inflating to 64 MiB of tiny items
    "zops item bomb, 64 MiB": lambda: pack_compressed_chunk(
        "e", 1, 0, 1, _frame(_item_bomb(64 * MIB - 5))
    ),
    "zops item bomb, sizeless frame": lambda: pack_compressed_chunk(
        "e", 1, 0, 1, _sizeless_frame(_item_bomb(64 * MIB - 5))
    ),
    "zops item bomb within the limit": lambda: pack_compressed_chunk(
        "e", 1, 0, 1, _frame(_item_bomb(MIB - 64))
    ),
    "zops of empty maps": lambda: pack_compressed_chunk(
        "e", 1, 0, 1, _frame(b"\xdd" + (MIB // 16).to_bytes(4, "big") + b"\x80" * (MIB - 64))
    ),
    "zops of 16-byte non-operations": lambda: pack_compressed_chunk(
        "e", 1, 0, 1, _frame(ops_array([b"\x9f" + b"\xc0" * 15] * (MIB // 16 - 8)))
    ),
    "zops of valid operations": lambda: pack_compressed_chunk(
        "e", 1, 0, 1, _frame(ops_array(_valid_ops(MAX_MESSAGE - 64)))
    ),
    "zops of 1 MiB of operations, beyond MAX_MESSAGE": lambda: pack_compressed_chunk(
        "e", 1, 0, 1, _frame(ops_array(_valid_ops(MIB - 64)))
    ),
    "deep nesting": lambda: _delta_header_with(b"\x91" * (MIB - 64) + b"\xc0"),
    "deep nesting of maps": lambda: _delta_header_with(b"\x81\xa1k" * (MIB // 4) + b"\xc0"),
    "huge array header": lambda: _delta_header_with(b"\xdd\xff\xff\xff\xff"),
    "huge array header, bytes behind": lambda: _delta_header_with(
        b"\xdd\x00\x0f\xff\xff" + b"\xc0" * (MIB // 2)
    ),
    "huge map header": lambda: _delta_header_with(b"\xdf\xff\xff\xff\xff" + b"\xc0" * 1000),
    "huge str header": lambda: _delta_header_with(b"\xdb\xff\xff\xff\xff" + b"a" * 1000),
    "huge bin header": lambda: _delta_header_with(b"\xc6\xff\xff\xff\xff" + b"a" * 1000),
    "huge ext header": lambda: _delta_header_with(b"\xc9\xff\xff\xff\xff\x01" + b"a" * 1000),
    "array of empty arrays": lambda: _delta_header_with(
        b"\xdd" + (MIB - 64).to_bytes(4, "big") + b"\x90" * (MIB - 64)
    ),
    "empty maps in a header field": lambda: packb(
        {"v": 1, "kind": "tick", "epoch": "e", "seq": 1, "time": 0.0, "x": [{}] * (MIB - 64)}
    ),
    "many valid operations": lambda: pack_delta("e", 1, 0.0, None, _valid_ops(MAX_MESSAGE - 128)),
    "1 MiB of operations, beyond MAX_MESSAGE": lambda: pack_delta(
        "e", 1, 0.0, None, _valid_ops(MIB - 128)
    ),
}
VALID = {"zops of valid operations", "many valid operations"}


def _decode(data: bytes, cache: OpCache | None) -> bool:
    """Whether ``data`` is refused."""
    try:
        decode(data, "node", cache, MAX_PAYLOAD)
    except MalformedMessage:
        return True
    return False


def _cost(data: bytes, cached: bool) -> tuple[int, float, bool]:
    """Peak traced memory, process CPU time (a separate run without tracemalloc, which
    triples it), and whether refused."""
    tracemalloc.start()
    try:
        refused = _decode(data, OpCache() if cached else None)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    cache = OpCache() if cached else None
    started = time.process_time()
    _decode(data, cache)
    return peak, time.process_time() - started, refused


@pytest.mark.parametrize("shape", list(BOMBS))
@pytest.mark.parametrize("cached", [False, True], ids=["plain", "op-cache"])
def test_a_bomb_costs_less_than_50_mb(shape: str, cached: bool) -> None:
    data = BOMBS[shape]()
    assert len(data) <= MAX_PAYLOAD + 64  # every bomb fits in one message
    peak, cpu, refused = _cost(data, cached)
    assert peak < MEMORY_LIMIT, f"{shape}: {peak / MIB:.1f} MiB"
    assert refused == (shape not in VALID), shape
    assert cpu < (CPU_LIMIT_REFUSED if refused else CPU_LIMIT_VALID), f"{shape}: {cpu:.3f} s"


def test_the_reproduction_frame_is_small() -> None:
    assert len(BOMBS["zops item bomb, 64 MiB"]()) < 10_000


def test_containers_are_bounded_by_bytes() -> None:
    data = msgpack.packb([[]] * 1000)
    with pytest.raises(MalformedMessage, match="maps and arrays"):
        unpack(data, "x")
    fine = msgpack.packb([[1, 2, 3, 4, 5, 6, 7]] * 100)  # 8 bytes per list
    assert len(unpack(fine, "x")) == 100
    assert CONTAINER_BYTES == 8


def test_array_items_refuses_a_count_the_bytes_cannot_hold() -> None:
    with pytest.raises(MalformedMessage, match="claimed"):
        list(array_items(b"\x9f" + b"\xc0" * 15, "ops"))
    items = list(array_items(ops_array([packb({"op": "-node", "name": "n1"})] * 3), "ops"))
    assert len(items) == 3
    with pytest.raises(MalformedMessage, match="after the array"):
        list(array_items(ops_array([packb({"op": "-node", "name": "n1"})]) + b"\xc0", "ops"))
