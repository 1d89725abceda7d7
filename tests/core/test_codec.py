"""kpng.bus.codec: wire format v1 round trips; decoding fails only with MalformedMessage."""

from __future__ import annotations

import contextlib
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kpng.bus.codec import (
    SCHEMA_VERSION,
    CastChunk,
    CastRef,
    CastRequest,
    Delta,
    ErrorReply,
    MalformedMessage,
    Scope,
    SnapshotChunk,
    SnapshotRequest,
    Status,
    Tick,
    decode,
    encode,
    encode_op,
    endpoints_to_wire,
    pack_delta,
    pack_snapshot_chunk,
)
from kpng.diff import DeleteEndpoint, DeleteNode, DeleteService, SetEndpoint, SetNode, SetService
from kpng.model import (
    Endpoint,
    EndpointPort,
    Node,
    Service,
    ServicePort,
    ServiceType,
    TrafficPolicy,
    ViewEndpoint,
)
from tests.objects import TCP, UDP

from .strategies import messages, ops, text, view_endpoints

PORTS = (
    EndpointPort("http", TCP, 8080),
    EndpointPort("dns", UDP, 53),
)
FULL_SERVICE = Service(
    namespace="shop",
    name="web",
    type=ServiceType.LOAD_BALANCER,
    cluster_ips=("10.96.0.10", "fd00::10"),
    ports=(
        ServicePort("http", TCP, 80, "http", 30080),
        ServicePort("dns", UDP, 53, 5353, 31053),
    ),
    external_ips=("203.0.113.7",),
    load_balancer_ips=("198.51.100.1",),
    load_balancer_source_ranges=("10.0.0.0/8",),
    affinity_timeout=10800,
    internal_traffic_policy=TrafficPolicy.LOCAL,
    external_traffic_policy=TrafficPolicy.LOCAL,
    health_check_node_port=32100,
    traffic_distribution="PreferClose",
    topology_mode="Auto",
)
MINIMAL_SERVICE = Service("shop", "api", ServiceType.CLUSTER_IP, ("10.96.0.11",), ())
VIEW_EP = ViewEndpoint(
    "10.244.1.5", PORTS, "node-a1", "zone-a", False, True, True, internal=True, external=False
)
GLOBAL_EP = Endpoint(
    "10.244.1.5",
    PORTS,
    "node-a1",
    "zone-a",
    zone_hints=frozenset({"zone-a", "zone-b"}),
    node_hints=frozenset({"node-a1"}),
)
NODE = Node("node-a1", ("192.168.1.11", "fd00:1::11"), "zone-a", "region-1")
NODE_OPS: tuple[Any, ...] = (
    SetService(FULL_SERVICE),
    SetService(MINIMAL_SERVICE),
    DeleteService("shop/old"),
    SetEndpoint("shop/web", VIEW_EP),
    DeleteEndpoint("shop/web", "10.244.1.6"),
    SetNode(NODE),
    DeleteNode("node-b1"),
)
GLOBAL_OPS: tuple[Any, ...] = (
    *NODE_OPS[:3],
    SetEndpoint("shop/web", GLOBAL_EP),
    *NODE_OPS[4:],
)

CAST_ID = "0123456789abcdef"
EXAMPLES: list[Any] = [
    Delta("epoch-1", 7, 1700000000.25, 1699999999.5, NODE_OPS),
    Delta("epoch-1", 8, 1700000001.0, None, ()),
    Tick("epoch-1", 8, 1700000002.0),
    SnapshotChunk("epoch-1", 8, 0, 2, NODE_OPS),
    SnapshotChunk("epoch-1", 8, 1, 2, ()),
    SnapshotRequest(),
    ErrorReply("no such node"),
    Status("node-a1", "epoch-1", 8, "nftables", True, 1700000003.0),
    Status(
        "node-a1",
        "epoch-1",
        8,
        "nftables",
        False,
        1700000003.0,
        version="0.1.0",
        last_sync=1700000002.5,
        sync_duration=0.012,
        counts={"services": 3, "endpoints": 7},
        errors=("nft: syntax error",),
    ),
    SnapshotRequest("epoch-1", 7, ("eps",)),
    # the digest fields (bus.md 7b)
    Tick("epoch-1", 8, 1700000002.0, "5e3d5d4f82e2c582"),
    SnapshotRequest("epoch-1", 7, ("eps",), "5e3d5d4f82e2c582"),
    SnapshotChunk("epoch-2", 0, 0, 1, (), base=7, base_epoch="epoch-1"),
    Status("node-a1", "epoch-1", 8, "nftables", True, 1700000003.0, digest="5e3d5d4f82e2c582"),
    # casts (bus.md 9a)
    SnapshotChunk("epoch-1", 8, 0, 1, NODE_OPS[5:6], cast=CastRef(CAST_ID, 3)),
    SnapshotRequest(accept=("eps", "zstd", "cast")),
    CastRequest(CAST_ID),
    CastChunk(CAST_ID, 1, 3, NODE_OPS),
]


# -- round trips ----------------------------------------------------------------------------
@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: type(m).__name__)
def test_round_trip_every_message_type(message: Any) -> None:
    assert decode(encode(message)) == message


def test_round_trip_global_scope_endpoints() -> None:
    message = Delta("e", 1, 1.0, None, GLOBAL_OPS)
    assert decode(encode(message), "global") == message


def test_scope_decides_the_endpoint_type() -> None:
    data = encode(Delta("e", 1, 1.0, None, (SetEndpoint("shop/web", GLOBAL_EP),)))
    # A global endpoint carries no internal/external marks: not a node-view endpoint.
    with pytest.raises(MalformedMessage, match="internal"):
        decode(data, "node")
    global_op = decode(encode(Delta("e", 1, 1.0, None, NODE_OPS[3:4])), "global")
    assert isinstance(global_op, Delta)
    (op,) = global_op.ops
    assert isinstance(op, SetEndpoint)
    assert isinstance(op.endpoint, Endpoint)


def test_encoding_is_deterministic_and_ops_are_reusable() -> None:
    message = Delta("epoch-1", 7, 1.5, 1.0, NODE_OPS)
    assert encode(message) == encode(message)
    packed = pack_delta("epoch-1", 7, 1.5, 1.0, [encode_op(op) for op in NODE_OPS])
    assert packed == encode(message)
    chunk = pack_snapshot_chunk("epoch-1", 7, 0, 1, [encode_op(op) for op in NODE_OPS])
    assert decode(chunk) == SnapshotChunk("epoch-1", 7, 0, 1, NODE_OPS)


def test_defaults_are_left_off_the_wire() -> None:
    raw = msgpack.unpackb(encode_op(SetService(MINIMAL_SERVICE)))
    assert set(raw["svc"]) == {"ns", "name", "type", "cluster_ips", "ports"}


def test_integer_times_decode_as_floats() -> None:
    data = msgpack.packb({"v": 1, "kind": "tick", "epoch": "e", "seq": 1, "time": 5})
    tick = decode(data)
    assert tick == Tick("e", 1, 5.0)
    assert isinstance(tick, Tick) and isinstance(tick.time, float)


@settings(max_examples=100, deadline=None)
@given(messages("node"))
def test_round_trip_random_node_messages(message: Any) -> None:
    assert decode(encode(message), "node") == message


@settings(max_examples=100, deadline=None)
@given(messages("global"))
def test_round_trip_random_global_messages(message: Any) -> None:
    assert decode(encode(message), "global") == message


@settings(max_examples=100, deadline=None)
@given(st.lists(ops("node"), max_size=6), st.lists(ops("global"), max_size=6))
def test_round_trip_random_ops(node_ops: list[Any], global_ops: list[Any]) -> None:
    for scope, op_list in (("node", node_ops), ("global", global_ops)):
        data = pack_delta("e", 1, 2.0, None, [encode_op(op) for op in op_list])
        assert decode(data, scope) == Delta("e", 1, 2.0, None, tuple(op_list))  # type: ignore[arg-type]


# -- unknown fields -------------------------------------------------------------------------
def _with_extras(value: Any) -> Any:
    """Every map of ``value`` with an unknown field added (recursively)."""
    if isinstance(value, dict):
        fields = {k: v if k == "counts" else _with_extras(v) for k, v in value.items()}
        return {**fields, "x-future": [1, {"a": None}]}
    if isinstance(value, list):
        return [_with_extras(v) for v in value]
    return value


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: type(m).__name__)
def test_unknown_fields_are_ignored(message: Any) -> None:
    raw = msgpack.unpackb(encode(message), strict_map_key=False)
    assert decode(msgpack.packb(_with_extras(raw))) == message


# -- malformed input ------------------------------------------------------------------------
def _raw(message: Any) -> dict[str, Any]:
    data: dict[str, Any] = msgpack.unpackb(encode(message), strict_map_key=False)
    return data


def malformed(raw: Any, scope: Any = "node") -> MalformedMessage:
    with pytest.raises(MalformedMessage) as info:
        decode(msgpack.packb(raw), scope)
    return info.value


@pytest.mark.parametrize(
    "data",
    [b"", b"\xc1", b"\x92\x01", b"\x81\xa1v\x01trailing", b"not msgpack at all", b"\xff" * 8],
)
def test_garbage_bytes(data: bytes) -> None:
    with pytest.raises(MalformedMessage):
        decode(data)


@pytest.mark.parametrize("raw", [1, "delta", [1, 2], None, True, b"bytes"])
def test_not_a_map(raw: Any) -> None:
    malformed(raw)


@pytest.mark.parametrize("version", [0, 2, 99, -1])
def test_wrong_schema_version(version: int) -> None:
    raw = _raw(EXAMPLES[2])
    raw["v"] = version
    error = malformed(raw)
    assert error.field == "v"
    assert str(version) in error.reason


@pytest.mark.parametrize("version", [None, "1", 1.0, True])
def test_version_of_the_wrong_type(version: Any) -> None:
    raw = _raw(EXAMPLES[2])
    raw["v"] = version
    assert malformed(raw).field == "v"


def test_missing_version_and_kind() -> None:
    assert malformed({"kind": "tick"}).field == "v"
    assert malformed({"v": SCHEMA_VERSION}).field == "kind"
    assert malformed({"v": SCHEMA_VERSION, "kind": "gossip"}).field == "kind"


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a field or list item inside ``value``."""
    found: list[tuple[Any, ...]] = []
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return found
    for key, child in items:
        found.append((*prefix, key))
        found.extend(_paths(child, (*prefix, key)))
    return found


def _replaced(raw: Any, path: tuple[Any, ...], value: Any, delete: bool = False) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(raw, dict):
        copy = dict(raw)
        if delete and not rest:
            del copy[head]
        else:
            copy[head] = _replaced(raw[head], rest, value, delete)
        return copy
    copy_list = list(raw)
    copy_list[head] = _replaced(raw[head], rest, value, delete)
    return copy_list


WRONG_TYPES: list[Any] = [None, True, -1, 2**40, 1.5, "x", b"\x00", [], [None], {}, {"a": 1}]


@pytest.mark.parametrize("scope", ["node", "global"])
@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: type(m).__name__)
def test_every_field_missing_or_mistyped(message: Any, scope: str) -> None:
    """Drop or retype any field: the decoder answers with a message or MalformedMessage,
    and a required field that is missing or mistyped is always MalformedMessage."""
    if scope == "global":
        message = _globalised(message)
    raw = _raw(message)
    for path in _paths(raw):
        variants = [_replaced(raw, path, None, delete=isinstance(path[-1], str))]
        variants += [_replaced(raw, path, wrong) for wrong in WRONG_TYPES]
        for variant in variants:
            with contextlib.suppress(MalformedMessage):
                decode(msgpack.packb(variant), scope)  # type: ignore[arg-type]


def _globalised(message: Any) -> Any:
    if isinstance(message, Delta | SnapshotChunk):
        ops_ = tuple(
            SetEndpoint(op.service, GLOBAL_EP) if isinstance(op, SetEndpoint) else op
            for op in message.ops
        )
        if isinstance(message, Delta):
            return Delta(message.epoch, message.seq, message.time, message.trigger_time, ops_)
        return SnapshotChunk(message.epoch, message.seq, message.chunk, message.chunks, ops_)
    return message


REQUIRED = [
    (EXAMPLES[0], ("epoch",)),
    (EXAMPLES[0], ("seq",)),
    (EXAMPLES[0], ("time",)),
    (EXAMPLES[0], ("ops",)),
    (EXAMPLES[0], ("ops", 0, "op")),
    (EXAMPLES[0], ("ops", 0, "svc")),
    (EXAMPLES[0], ("ops", 0, "svc", "ns")),
    (EXAMPLES[0], ("ops", 0, "svc", "name")),
    (EXAMPLES[0], ("ops", 0, "svc", "type")),
    (EXAMPLES[0], ("ops", 0, "svc", "ports")),
    (EXAMPLES[0], ("ops", 0, "svc", "ports", 0, "proto")),
    (EXAMPLES[0], ("ops", 0, "svc", "ports", 0, "port")),
    (EXAMPLES[0], ("ops", 0, "svc", "ports", 0, "target")),
    (EXAMPLES[0], ("ops", 2, "key")),
    (EXAMPLES[0], ("ops", 3, "key")),
    (EXAMPLES[0], ("ops", 3, "ep")),
    (EXAMPLES[0], ("ops", 3, "ep", "ip")),
    (EXAMPLES[0], ("ops", 3, "ep", "ready")),
    (EXAMPLES[0], ("ops", 3, "ep", "serving")),
    (EXAMPLES[0], ("ops", 3, "ep", "terminating")),
    (EXAMPLES[0], ("ops", 3, "ep", "internal")),
    (EXAMPLES[0], ("ops", 3, "ep", "external")),
    (EXAMPLES[0], ("ops", 4, "ip")),
    (EXAMPLES[0], ("ops", 5, "node")),
    (EXAMPLES[0], ("ops", 5, "node", "name")),
    (EXAMPLES[0], ("ops", 6, "name")),
    (EXAMPLES[2], ("epoch",)),
    (EXAMPLES[2], ("seq",)),
    (EXAMPLES[2], ("time",)),
    (EXAMPLES[3], ("chunk",)),
    (EXAMPLES[3], ("chunks",)),
    (EXAMPLES[6], ("reason",)),
    (EXAMPLES[7], ("node",)),
    (EXAMPLES[7], ("healthy",)),
    (EXAMPLES[7], ("time",)),
]


@pytest.mark.parametrize(("message", "path"), REQUIRED)
def test_required_field_missing(message: Any, path: tuple[Any, ...]) -> None:
    error = malformed(_replaced(_raw(message), path, None, delete=True))
    assert path[-1] in error.field


MISTYPED = [
    (("seq",), "7"),
    (("seq",), True),
    (("time",), "now"),
    (("trigger",), "then"),
    (("epoch",), 1),
    (("ops",), {"op": "svc"}),
    (("ops", 0), "svc"),
    (("ops", 0, "op"), 7),
    (("ops", 0, "svc", "type"), "Magic"),
    (("ops", 0, "svc", "cluster_ips"), "10.96.0.10"),
    (("ops", 0, "svc", "cluster_ips"), [1]),
    (("ops", 0, "svc", "itp"), "Nearby"),
    (("ops", 0, "svc", "ports", 0), [80]),
    (("ops", 0, "svc", "ports", 0, "proto"), "ICMP"),
    (("ops", 0, "svc", "ports", 0, "target"), 1.5),
    (("ops", 0, "svc", "ports", 0, "target"), True),
    (("ops", 0, "svc", "affinity_timeout"), "long"),
    (("ops", 3, "ep", "ports"), [["http", "TCP"]]),
    (("ops", 3, "ep", "ports", 0), ["http", "GRE", 80]),
    (("ops", 3, "ep", "ports", 0), ["http", "TCP", "80"]),
    (("ops", 3, "ep", "ports", 0), ["http", "TCP", True]),
    (("ops", 3, "ep", "ports", 0), ["http", ["TCP"], 80]),
    (("ops", 3, "ep", "ready"), 1),
    (("ops", 3, "ep", "internal"), "yes"),
    (("ops", 5, "node", "addresses"), [None]),
]


@pytest.mark.parametrize(("path", "value"), MISTYPED)
def test_field_of_the_wrong_type(path: tuple[Any, ...], value: Any) -> None:
    error = malformed(_replaced(_raw(EXAMPLES[0]), path, value))
    assert error.field
    assert str(path[0]) in error.field


@pytest.mark.parametrize(
    ("message", "field"),
    [
        ({"kind": "cast-request", "id": "0123456789ABCDEF"}, "id"),  # upper case
        ({"kind": "cast-request", "id": "0123456789abcde"}, "id"),  # 15 digits
        ({"kind": "cast-request", "id": "kpng.v1.node.n1x"}, "id"),  # a subject's worth
        ({"kind": "cast", "id": CAST_ID, "chunk": 3, "chunks": 3, "ops": []}, "chunk"),
        (
            {"kind": "snapshot", "epoch": "e", "seq": 1, "chunk": 0, "chunks": 1, "ops": []}
            | {"cast": {"id": CAST_ID, "chunks": 0}},
            "cast.chunks",
        ),
        (
            {"kind": "snapshot", "epoch": "e", "seq": 1, "chunk": 0, "chunks": 1, "ops": []}
            | {"cast": {"id": CAST_ID, "chunks": 4097}},
            "cast.chunks",
        ),
        (
            {"kind": "snapshot", "epoch": "e", "seq": 1, "chunk": 0, "chunks": 1, "ops": []}
            | {"base": 0, "cast": {"id": CAST_ID, "chunks": 1}},
            "cast",
        ),
    ],
)
def test_casts_are_checked(message: dict[str, Any], field: str) -> None:
    """A cast id becomes a subject token: only 16 lowercase hex digits pass; a cast is
    bounded and only starts a full snapshot."""
    with pytest.raises(MalformedMessage) as err:
        decode(msgpack.packb({"v": 1, **message}))
    assert err.value.field == field


def test_snapshot_chunk_out_of_range() -> None:
    raw = _raw(EXAMPLES[3])
    for chunk, chunks in ((2, 2), (-1, 2), (0, 0)):
        assert malformed({**raw, "chunk": chunk, "chunks": chunks}).field == "chunk"


def test_status_counts_must_map_names_to_integers() -> None:
    raw = _raw(EXAMPLES[8])
    assert malformed({**raw, "counts": {"services": "3"}}).field == "counts"
    assert malformed({**raw, "counts": {1: 3}}).field == "counts"
    assert malformed({**raw, "errors": [1]}).field == "errors"


def test_global_endpoint_hints_must_be_strings() -> None:
    raw = _raw(Delta("e", 1, 1.0, None, (SetEndpoint("shop/web", GLOBAL_EP),)))
    bad = _replaced(raw, ("ops", 0, "ep", "zone_hints"), [1])
    with pytest.raises(MalformedMessage, match="zone_hints"):
        decode(msgpack.packb(bad), "global")


def test_malformed_message_is_a_value_error_naming_the_field() -> None:
    error = MalformedMessage("ops[0].op", "unknown operation 'x'")
    assert isinstance(error, ValueError)
    assert str(error) == "ops[0].op: unknown operation 'x'"
    assert str(MalformedMessage("", "not msgpack")) == "not msgpack"


# -- fuzzing --------------------------------------------------------------------------------
def _decode_or_malformed(data: bytes) -> None:
    scopes: tuple[Scope, ...] = ("node", "global")
    for scope in scopes:
        with contextlib.suppress(MalformedMessage):
            decode(data, scope)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_garbage_bytes(data: bytes) -> None:
    _decode_or_malformed(data)


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(),
    text,
    st.binary(max_size=8),
    st.sampled_from(["v", "kind", "delta", "svc", "ep", "node", "TCP", "Local", "ClusterIP"]),
)
structures = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(text, st.integers(-5, 5)), children, max_size=4),
    ),
    max_leaves=12,
)
FIELDS = ["v", "kind", "epoch", "seq", "time", "trigger", "ops", "chunk", "chunks", "reason"]
FIELDS += ["node", "healthy", "counts", "errors", "last_sync", "op", "svc", "ep", "key", "ip"]
KINDS = ["delta", "tick", "snapshot", "snapshot-request", "error", "status"]


@settings(max_examples=150, deadline=None)
@given(structures)
def test_fuzz_random_msgpack_structures(raw: Any) -> None:
    _decode_or_malformed(msgpack.packb(raw))


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(KINDS),
    st.dictionaries(st.sampled_from(FIELDS), structures, max_size=6),
)
def test_fuzz_plausible_messages(kind: str, fields: dict[str, Any]) -> None:
    """Maps that look like v1 messages (right version and kind), with random fields."""
    _decode_or_malformed(msgpack.packb({**fields, "v": SCHEMA_VERSION, "kind": kind}))


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from(EXAMPLES),
    st.data(),
)
def test_fuzz_mutated_real_messages(message: Any, data: st.DataObject) -> None:
    """Real messages with one field (at any depth) replaced by a random structure."""
    raw = _raw(message)
    path = data.draw(st.sampled_from(_paths(raw)))
    _decode_or_malformed(msgpack.packb(_replaced(raw, path, data.draw(structures))))


# -- compact endpoints ("eps", only to consumers that ask for them) -------------------------
def _compact_chunk(key: str, endpoints: list[ViewEndpoint]) -> bytes:
    op = msgpack.packb(endpoints_to_wire(key, endpoints))
    return pack_snapshot_chunk("epoch-1", 3, 0, 1, [encode_op(SetService(FULL_SERVICE)), op])


@settings(max_examples=100, deadline=None)
@given(st.lists(view_endpoints(), max_size=6, unique_by=lambda e: e.ip))
def test_compact_endpoints_round_trip(endpoints: list[ViewEndpoint]) -> None:
    chunk = decode(_compact_chunk("shop/web", endpoints), "node")
    assert isinstance(chunk, SnapshotChunk)
    assert chunk.ops == (
        SetService(FULL_SERVICE),
        *(SetEndpoint("shop/web", e) for e in endpoints),
    )


def test_compact_endpoints_are_a_fraction_of_the_size() -> None:
    endpoints = [ViewEndpoint(f"10.244.1.{i}", PORTS, f"node-{i}", "zone-a") for i in range(10)]
    plain = sum(len(encode_op(SetEndpoint("shop/web", e))) for e in endpoints)
    assert len(msgpack.packb(endpoints_to_wire("shop/web", endpoints))) < plain / 3


def test_compact_endpoints_belong_to_node_views_only() -> None:
    error = malformed(_raw_compact([VIEW_EP]), "global")
    assert error.field == "ops[1].op"


def _raw_compact(endpoints: list[ViewEndpoint]) -> dict[str, Any]:
    raw: dict[str, Any] = msgpack.unpackb(_compact_chunk("shop/web", endpoints))
    return raw


@pytest.mark.parametrize(
    "row",
    [
        ["10.244.1.5", 3],  # too short
        ["10.244.1.5", 3, 0, "n", "z", "extra"],
        ["10.244.1.5", 3, 1, "n"],  # no such ports list
        ["10.244.1.5", "3", 0],
        [5, 3, 0],
        ["10.244.1.5", 3, 0, 7],
        "10.244.1.5",
    ],
)
def test_malformed_compact_endpoint_rows_are_named(row: Any) -> None:
    raw = _raw_compact([VIEW_EP, VIEW_EP])
    raw["ops"][1]["eps"][1] = row
    assert malformed(raw).field == "ops[1].eps[1]"


def test_malformed_compact_port_lists_are_named() -> None:
    raw = _raw_compact([VIEW_EP])
    raw["ops"][1]["ports"] = [[["http", "QUIC", 80]]]
    assert malformed(raw).field == "ops[1].ports[0][0]"
    raw["ops"][1]["ports"] = ["http"]
    assert malformed(raw).field == "ops[1].ports[0]"


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_fuzz_mutated_compact_snapshots(data: st.DataObject) -> None:
    raw = _raw_compact([VIEW_EP, ViewEndpoint("10.244.1.6", ())])
    path = data.draw(st.sampled_from(_paths(raw)))
    _decode_or_malformed(msgpack.packb(_replaced(raw, path, data.draw(structures))))


def test_digest_fields_are_optional_on_the_wire() -> None:
    """Old consumers and watchers neither send nor need them."""
    for message in (Tick("e", 1, 2.0), SnapshotRequest("e", 1), Status("n", "e", 1, "", True, 2.0)):
        assert "digest" not in msgpack.unpackb(encode(message))
    assert "base_epoch" not in msgpack.unpackb(encode(SnapshotChunk("e", 2, 0, 1, (), base=1)))
