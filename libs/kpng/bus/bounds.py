"""Bounded decoding: a message's decoding work and memory grow with its bytes, never beyond.

msgpack lets a few bytes ask for much: an array header claims four billion items, a one-byte
empty array becomes a ~70-byte Python list, a zstd frame inflates a thousandfold. Every
decoder of bus messages goes through these functions, which refuse (as
:class:`MalformedMessage`) before allocating:

- a length header (str, bin, array, map, ext) beyond the bytes that could hold its items;
- more maps and arrays than one per :data:`CONTAINER_BYTES` bytes (kpng's operations hold
  one per ~30 bytes; a 1 MiB message then decodes to at most ~12 MB of containers);
- nesting beyond msgpack's own stack (:data:`MAX_NESTING` levels);
- an ``ops`` array claiming more items than one per :data:`MIN_OP_BYTES` bytes (the
  smallest valid operation), walked without keeping its items;
- a message (or the content of a ``zops`` frame) of more than :data:`MAX_MESSAGE` bytes,
  whatever the server's max_payload: the watcher never sends more in one message.

Valid operations are what cost most per byte (a Python object or two per 10-20 bytes):
1 MiB of them took an agent 100-300 ms to decode, depending on their shape (minimal
Services, endpoints with many ports, source ranges). :data:`MAX_MESSAGE` bounds that: the
costliest shape measured, at :data:`MAX_MESSAGE`, decodes and applies in under 100 ms, and
every bomb shape is refused in under 50 ms and 20 MB (tests/core/test_bounds.py,
``python -m kpng_bench --decode``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgpack

from kpng.bus.wire import MalformedMessage

CONTAINER_BYTES = 8
MIN_OP_BYTES = 16  # {"op": "-node", "name": "a"}: the smallest valid operation
MAX_NESTING = 1024  # msgpack's unpacker stack; deeper raises before allocating more
# the most bytes a message may have: the watcher splits at min(max_payload, MAX_MESSAGE)
MAX_MESSAGE = 256 << 10


def check_size(size: int, field: str) -> None:
    """Refuse ``size`` bytes (of a message, or of a frame's content) beyond MAX_MESSAGE."""
    if size > MAX_MESSAGE:
        raise MalformedMessage(field, f"{size} bytes, more than a message may hold ({MAX_MESSAGE})")


class _TooMany(Exception):
    pass


def unpack(data: bytes, field: str) -> Any:
    """One msgpack object from all of ``data``, bounded as the module says."""
    size = len(data)
    budget = size // CONTAINER_BYTES + 16
    count = 0

    def counted(obj: Any) -> Any:
        nonlocal count
        count += 1
        if count > budget:
            raise _TooMany
        return obj

    try:
        return msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=False,
            list_hook=counted,
            object_hook=counted,
            max_str_len=size,
            max_bin_len=size,
            max_ext_len=size,
            max_array_len=size,
            max_map_len=size // 2,
        )
    except _TooMany:
        raise MalformedMessage(
            field, f"more than {budget} maps and arrays in {size} bytes"
        ) from None
    except Exception as exc:  # msgpack raises several unrelated types for garbage
        raise MalformedMessage(field, f"not msgpack: {exc!r}"[:200]) from None


def array_items(array: bytes, field: str) -> Iterator[bytes]:
    """The encoded items of an encoded msgpack array, each still encoded, one at a time.

    The header may claim at most one item per :data:`MIN_OP_BYTES` bytes that follow it;
    items are skipped over by msgpack (no object is built) and nothing may follow."""
    unpacker = msgpack.Unpacker(max_buffer_size=len(array) + 1)
    unpacker.feed(array)
    try:
        count = unpacker.read_array_header()
    except Exception as exc:
        raise MalformedMessage(field, f"not an array of operations: {exc!r}"[:200]) from None
    room = (len(array) - unpacker.tell()) // MIN_OP_BYTES
    if count > room:
        raise MalformedMessage(field, f"{count} operations claimed in {len(array)} bytes")
    for _ in range(count):
        start = unpacker.tell()
        try:
            unpacker.skip()
        except Exception as exc:  # truncated, too deep, or garbage
            raise MalformedMessage(field, f"not an array of operations: {exc!r}"[:200]) from None
        yield array[start : unpacker.tell()]
    if unpacker.tell() != len(array):
        raise MalformedMessage(field, f"{len(array) - unpacker.tell()} bytes after the array")
