"""Compressed snapshot chunks (``zops``, feature ``"zstd"``): round trips with and without an
OpCache, and damaged or hostile frames rejected as MalformedMessage naming ``zops``."""

from __future__ import annotations

import contextlib
from typing import Any

import msgpack
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from kpng.bus import compression
from kpng.bus.codec import (
    MalformedMessage,
    OpCache,
    SnapshotChunk,
    decode,
    encode_op,
    ops_array,
    pack_compressed_chunk,
    pack_snapshot_chunk,
)
from kpng.diff import SetEndpoint
from kpng.model import EndpointPort, TransportProtocol, ViewEndpoint

from .strategies import ops

EP = ViewEndpoint("10.244.1.5", (EndpointPort("http", TransportProtocol.TCP, 8080),), "n1", "z1")


def _chunk(frame: bytes, base: int = -1) -> bytes:
    return pack_compressed_chunk("e1", 7, 0, 1, frame, base)


@settings(max_examples=100, deadline=None)
@given(st.lists(ops("node"), max_size=8), st.lists(ops("global"), max_size=8))
def test_round_trip_with_and_without_an_op_cache(
    node_ops: list[Any], global_ops: list[Any]
) -> None:
    for scope, op_list in (("node", node_ops), ("global", global_ops)):
        encoded = [encode_op(op) for op in op_list]
        frame = compression.compress(ops_array(encoded))
        for base in (-1, 3):
            want = SnapshotChunk("e1", 7, 0, 1, tuple(op_list), base)
            plain = decode(pack_snapshot_chunk("e1", 7, 0, 1, encoded, base=base), scope)  # type: ignore[arg-type]
            assert plain == want
            for cache in (None, OpCache()):
                assert decode(_chunk(frame, base), scope, cache) == want  # type: ignore[arg-type]


def test_an_op_cache_inflates_a_frame_once() -> None:
    frame = compression.compress(ops_array([encode_op(SetEndpoint("shop/web", EP))] * 50))
    cache = OpCache()
    first = decode(_chunk(frame), "node", cache)
    second = decode(pack_compressed_chunk("e1", 8, 1, 2, frame), "node", cache)
    assert isinstance(first, SnapshotChunk) and isinstance(second, SnapshotChunk)
    assert first.ops is second.ops and cache.array_hits == 1


def _malformed(data: bytes, max_inflated: int = compression.MAX_INFLATED) -> MalformedMessage:
    errors = []
    for cache in (None, OpCache()):
        with pytest.raises(MalformedMessage) as info:
            decode(data, "node", cache, max_inflated)
        errors.append(info.value)
    assert errors[0].field == errors[1].field
    return errors[0]


def _raw_chunk(**fields: Any) -> bytes:
    header = {"v": 1, "kind": "snapshot", "epoch": "e1", "seq": 7, "chunk": 0, "chunks": 1}
    return msgpack.packb({**header, **fields})


OP = encode_op(SetEndpoint("shop/web", EP))


@pytest.mark.parametrize(
    ("zops", "reason"),
    [
        ("text", "expected bytes"),
        (b"not a frame at all", "not a zstd frame"),
        (compression.compress(ops_array([OP]))[:-4], "damaged zstd frame"),
        (compression.compress(ops_array([OP])) + b"junk", "damaged zstd frame"),
        (compression.compress(b"\xc1garbage"), "not an array of operations"),
        (compression.compress(msgpack.packb({"op": "svc"})), "not an array of operations"),
        (compression.compress(ops_array([OP]) + b"\x01"), "bytes after the array"),
        (compression.compress(ops_array([OP], count=2)), "not an array of operations"),
    ],
    ids=["str", "garbage", "truncated", "trailing", "not-msgpack", "a-map", "extra", "short"],
)
def test_damaged_frames_are_named(zops: Any, reason: str) -> None:
    error = _malformed(_raw_chunk(zops=zops))
    assert error.field == "zops" or error.field.startswith("zops")
    assert reason in str(error) or reason == "expected bytes"


def test_a_bad_operation_inside_a_frame_is_named_by_its_index() -> None:
    bad = msgpack.packb({"op": "ep", "svc": "shop/web", "ep": {"ip": 5}})
    error = _malformed(_raw_chunk(zops=compression.compress(ops_array([OP, bad]))))
    assert error.field.startswith("zops[1]")


def test_ops_and_zops_together_are_refused() -> None:
    frame = compression.compress(ops_array([OP]))
    error = _malformed(_raw_chunk(ops=[], zops=frame))
    assert error.field == "zops" and "not both" in error.reason


def test_a_frame_that_would_inflate_beyond_the_limit_is_refused_unread() -> None:
    frame = compression.compress(ops_array([OP] * 1000))  # ~60 KB inflated
    assert "limit 10000" in str(_malformed(_raw_chunk(zops=frame), 10_000))
    # a frame that does not declare its size is cut off at the limit instead
    sizeless = zstandard.ZstdCompressor(write_content_size=False).compress(ops_array([OP] * 1000))
    assert zstandard.frame_content_size(sizeless) == -1
    assert "damaged zstd frame" in str(_malformed(_raw_chunk(zops=sizeless), 10_000))


def test_a_frame_without_its_size_in_the_header_is_read() -> None:
    sizeless = zstandard.ZstdCompressor(write_content_size=False).compress(ops_array([OP] * 3))
    chunk = decode(_raw_chunk(zops=sizeless), "node")
    assert isinstance(chunk, SnapshotChunk) and len(chunk.ops) == 3


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=64), st.integers(0, 200), st.data())
def test_fuzz_damaged_frames_fail_only_as_malformed(
    junk: bytes, cut: int, data: st.DataObject
) -> None:
    frame = bytearray(compression.compress(ops_array([OP] * 5)))
    at = data.draw(st.integers(0, len(frame) - 1))
    frame[at] ^= data.draw(st.integers(1, 255))
    for zops in (bytes(frame), bytes(frame[:cut]) + junk):
        for cache in (None, OpCache()):
            with contextlib.suppress(MalformedMessage):
                decode(_raw_chunk(zops=zops), "node", cache)


def test_a_string_that_is_not_utf8_is_malformed_with_an_op_cache_too() -> None:
    bad_op = b"\x82\xa2op\xa2ep\xa3svc\xa2\xff\xfe"  # {"op": "ep", "svc": <not UTF-8>}
    for data in (
        pack_snapshot_chunk("e1", 7, 0, 1, [OP, bad_op]),
        _raw_chunk(zops=compression.compress(ops_array([OP, bad_op]))),
    ):
        for cache in (None, OpCache()):
            with pytest.raises(MalformedMessage, match="not msgpack"):
                decode(data, "node", cache)
