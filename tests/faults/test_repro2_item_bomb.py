"""Issue 14, reproduction 2: a 5.7 KB snapshot chunk whose ``zops`` inflate to 64 MiB of tiny
items drove an agent and the observer to ~2 GB and ~8.5 s of CPU before it was refused (the
inflate limit capped bytes, not items). Now it is refused for a few MB, whatever the limit
on inflated bytes, through the same decoder the agents and the observer use."""

from __future__ import annotations

import time
import tracemalloc

import pytest
import zstandard

from kpng.bus.bounds import MAX_MESSAGE
from kpng.bus.codec import MalformedMessage, OpCache, decode, pack_compressed_chunk

MIB = 1 << 20


def bomb(items: int) -> bytes:
    content = b"\xdd" + items.to_bytes(4, "big") + b"\xc0" * items
    frame = zstandard.ZstdCompressor(level=19, write_content_size=True).compress(content)
    return pack_compressed_chunk("e1", 1, 0, 1, frame)


@pytest.mark.parametrize("cache", [None, OpCache()], ids=["plain", "op-cache"])
def test_repro2_a_zops_item_bomb_is_refused_in_bounded_memory(cache: OpCache | None) -> None:
    data = bomb(64 * MIB - 5)
    assert len(data) < 10_000
    tracemalloc.start()
    started = time.process_time()
    try:
        with pytest.raises(MalformedMessage, match="zops"):
            decode(data, "node", cache)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 * MIB, peak
    assert time.process_time() - started < 1.0


def test_repro2_the_same_items_within_the_inflate_limit_are_refused_unread() -> None:
    data = bomb(MAX_MESSAGE - 5)  # within the inflate limit: counted against the bytes instead
    tracemalloc.start()
    try:
        with pytest.raises(MalformedMessage, match="operations claimed"):
            decode(data, "node")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 * MIB, peak
