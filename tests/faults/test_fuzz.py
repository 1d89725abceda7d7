"""Bounded fuzz (issue 14) of every decoder of outside input: the bus messages (every kind,
both scopes, with and without an OpCache, compressed operations), the decoding bounds, the
zstd frames, the watcher's status, and the cluster-file parser. Only the declared error may
come out (:class:`MalformedMessage`; ``ValueError`` for the watcher status; ``YAMLError`` or
:class:`NoDocuments` for the file, then :class:`InvalidObject` per object), never another
exception; valid input round-trips.

Each test is bounded (``max_examples``, no deadline: the machine is shared); the whole
module runs in a few seconds, so it runs with the fast tier and in ``make test``.
tests/core/test_codec.py fuzzes the plain decoder further (every field missing or mistyped).
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import msgpack
import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from kpng.bus.bounds import array_items, unpack
from kpng.bus.codec import (
    MalformedMessage,
    OpCache,
    SnapshotChunk,
    decode,
    encode,
    encode_op,
    ops_array,
    pack_compressed_chunk,
)
from kpng.bus.compression import compress, decompress
from kpng.bus.watcher_status import WatcherStatus, decode_status, encode_status
from kpng.model import Object
from kpng.parse import InvalidObject, parse_object
from kpng_watcher.file_content import NoDocuments, load_documents, read_objects
from tests.core.strategies import messages, ops
from tests.integration.harness import node, service, slice_

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LIMIT = 1 << 20  # what an agent on a default server passes as max_inflated

scopes = st.sampled_from(("node", "global"))
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**64), 2**64 - 1),
    st.floats(allow_nan=True),
    st.text(max_size=20),
    st.binary(max_size=20),
)
structures = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.dictionaries(st.one_of(st.text(max_size=8), st.integers()), inner, max_size=5),
    ),
    max_leaves=12,
)


def _packable(raw: Any) -> bytes:
    try:
        return msgpack.packb(raw, use_bin_type=True)
    except (OverflowError, ValueError, TypeError):
        assume(False)
        raise


def _decodes_or_refuses(data: bytes, scope: Any) -> None:
    """decode with and without an OpCache: a message, or MalformedMessage, alike."""
    outcomes = []
    for cache in (None, OpCache()):
        try:
            outcomes.append(decode(data, scope, cache, LIMIT))
        except MalformedMessage:
            outcomes.append(None)
    assert outcomes[0] == outcomes[1]


def _mutate(data: bytes, draw: st.DrawFn) -> bytes:
    """``data`` with a few bytes overwritten, inserted, or cut off."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(("set", "insert", "truncate")))
        at = draw(st.integers(0, max(len(out) - 1, 0)))
        if kind == "set" and out:
            out[at] = draw(st.integers(0, 255))
        elif kind == "insert":
            out[at:at] = draw(st.binary(min_size=1, max_size=6))
        else:
            del out[at:]
    return bytes(out)


# -- bus messages --------------------------------------------------------------------------
@FUZZ
@given(st.binary(max_size=300), scopes)
def test_random_bytes_are_refused_as_malformed_only(data: bytes, scope: Any) -> None:
    _decodes_or_refuses(data, scope)


@FUZZ
@given(structures, scopes)
def test_random_msgpack_is_refused_as_malformed_only(raw: Any, scope: Any) -> None:
    _decodes_or_refuses(_packable(raw), scope)


kinds = st.sampled_from(("delta", "tick", "snapshot", "snapshot-request", "error", "status"))


@FUZZ
@given(kinds, st.dictionaries(st.text(max_size=12), structures, max_size=8), scopes)
def test_plausible_headers_with_random_fields(kind: str, fields: Any, scope: Any) -> None:
    raw = {**fields, "v": 1, "kind": kind}
    _decodes_or_refuses(_packable(raw), scope)


@FUZZ
@given(st.data())
def test_mutated_valid_messages_of_every_kind(data: st.DataObject) -> None:
    scope = data.draw(scopes)
    message = data.draw(messages(scope))
    _decodes_or_refuses(_mutate(encode(message), data.draw), scope)


@FUZZ
@given(st.data())
def test_valid_messages_round_trip(data: st.DataObject) -> None:
    scope = data.draw(scopes)
    message = data.draw(messages(scope))
    encoded = encode(message)
    assert decode(encoded, scope) == message
    assert decode(encoded, scope, OpCache()) == message


def _compressed(ops_: list[Any]) -> tuple[bytes, SnapshotChunk]:
    encoded = [encode_op(o) for o in ops_]
    chunk = SnapshotChunk("e", 7, 0, 1, tuple(ops_))
    return pack_compressed_chunk("e", 7, 0, 1, compress(ops_array(encoded))), chunk


@FUZZ
@given(st.data())
def test_compressed_operations_round_trip_and_mutated_are_refused(data: st.DataObject) -> None:
    scope = data.draw(scopes)
    chunk_ops = data.draw(st.lists(ops(scope), max_size=6))
    packed, chunk = _compressed(chunk_ops)
    assert decode(packed, scope) == chunk
    assert decode(packed, scope, OpCache()) == chunk
    _decodes_or_refuses(_mutate(packed, data.draw), scope)


@FUZZ
@given(st.lists(structures, max_size=4), st.data())
def test_compressed_random_items_are_refused_as_malformed_only(
    items: list[Any], data: st.DataObject
) -> None:
    content = b"".join([msgpack.packb(len(items)), *(_packable(i) for i in items)])
    frame = compress(content)
    if data.draw(st.booleans()):
        frame = _mutate(frame, data.draw)
    _decodes_or_refuses(pack_compressed_chunk("e", 1, 0, 1, frame), data.draw(scopes))


# -- the bounds and frames underneath ------------------------------------------------------
@FUZZ
@given(st.binary(max_size=300))
def test_bounded_unpack_and_array_walk_refuse_as_malformed_only(data: bytes) -> None:
    with contextlib.suppress(MalformedMessage):
        unpack(data, "x")
    try:
        for _ in array_items(data, "ops"):
            pass
    except MalformedMessage:
        pass


@FUZZ
@given(st.binary(max_size=200), st.integers(0, 4096))
def test_frames_are_inflated_or_refused_as_malformed_only(frame: bytes, limit: int) -> None:
    try:
        content = decompress(frame, "zops", limit)
    except MalformedMessage:
        return
    assert len(content) <= limit


# -- the watcher's status ------------------------------------------------------------------
statuses = st.builds(
    WatcherStatus,
    epoch=st.text(max_size=12),
    time=st.floats(0, 2e9),
    reload_held=st.booleans(),
    held_reloads=st.integers(0, 2**31),
    stale_objects=st.dictionaries(st.sampled_from(("Service", "Node")), st.integers(0, 99)),
    invalid_objects=st.dictionaries(st.sampled_from(("Service", "Node")), st.integers(0, 99)),
    load_errors=st.integers(0, 99),
)


@FUZZ
@given(statuses, st.data())
def test_watcher_status_round_trips_and_mutated_is_a_value_error(
    status: WatcherStatus, data: st.DataObject
) -> None:
    encoded = encode_status(status)
    assert decode_status(encoded) == status
    with contextlib.suppress(ValueError):
        decode_status(_mutate(encoded, data.draw))


@FUZZ
@given(structures)
def test_watcher_status_of_any_json_is_a_value_error_or_a_status(raw: Any) -> None:
    try:
        text = json.dumps(raw)
    except (TypeError, ValueError):
        assume(False)
    with contextlib.suppress(ValueError):
        decode_status(text.encode())


@pytest.mark.parametrize("depth", [100, 3000, 30_000])
def test_a_deeply_nested_watcher_status_is_a_value_error(depth: int) -> None:
    with pytest.raises(ValueError):
        decode_status(b"[" * depth + b"]" * depth)


# -- the cluster file ----------------------------------------------------------------------
VALID = [
    node("n1", "z1", "192.168.0.1"),
    service("web", "10.96.0.10", externalTrafficPolicy="Local", type="NodePort"),
    slice_("web", [("10.244.1.1", "n1"), ("10.244.1.2", "")]),
]


def _read_file(text: str) -> tuple[Object, ...] | None:
    """What the file source reads from ``text``: None where it keeps its last state."""
    try:
        documents = load_documents(text)
    except (yaml.YAMLError, NoDocuments):
        return None
    return read_objects(documents, {}).objects  # never raises: invalid objects are problems


def test_the_valid_file_parses_whole() -> None:
    objects = _read_file(yaml.safe_dump_all(VALID))
    assert objects is not None and len(objects) == 3


@FUZZ
@given(st.text(max_size=300))
def test_random_text_is_a_yaml_error_or_objects(text: str) -> None:
    _read_file(text)


@FUZZ
@given(st.data())
def test_mutated_cluster_files_are_a_yaml_error_or_objects(data: st.DataObject) -> None:
    text = yaml.safe_dump_all(VALID)
    out = list(text)
    for _ in range(data.draw(st.integers(1, 5))):
        at = data.draw(st.integers(0, len(out) - 1))
        out[at : at + data.draw(st.integers(0, 3))] = data.draw(st.text(max_size=4))
    _read_file("".join(out))


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, (*prefix, i))
    return out


def _replaced(obj: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    copy = dict(obj) if isinstance(obj, dict) else list(obj)
    copy[path[0]] = _replaced(obj[path[0]], path[1:], value)
    return copy


yaml_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(),
        st.text(max_size=30),
        st.sampled_from(("", "10.0.0.1", "::1", "300.1.1.1", "TCP", "http", "-", "a" * 300)),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


@FUZZ
@given(st.sampled_from(VALID), st.data())
def test_objects_with_a_field_replaced_parse_or_are_invalid(
    obj: dict[str, Any], data: st.DataObject
) -> None:
    path = data.draw(st.sampled_from(_paths(obj)))
    mutated = _replaced(obj, path, data.draw(yaml_values))
    with contextlib.suppress(InvalidObject):
        parse_object(mutated)
    assert read_objects([mutated], {}) is not None
