"""Bus contract limits a consumer in another language relies on (docs/bus.md, sections 6 and 8):
seqs never pass 2^53 - 1, a request with ``seq: -1`` asks for a full snapshot, and a lost
last delta is noticed within two tick intervals (one on the global subject)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kpng.bus.codec import (
    MAX_SEQ,
    Delta,
    MalformedMessage,
    SnapshotChunk,
    SnapshotRequest,
    Status,
    Tick,
    decode,
    encode,
    packb,
)
from kpng.fanout.cluster import ClusterState
from kpng.fanout.fanout import Fanout
from kpng.fanout.nodes import NodeRegistry, SeqExhausted, next_seq
from kpng.model import Node, Service, ServiceType
from tests.objects import http_port


def test_the_largest_seq_is_exact_in_a_float64() -> None:
    assert MAX_SEQ == 2**53 - 1
    assert float(MAX_SEQ) == MAX_SEQ and float(MAX_SEQ + 1) == float(MAX_SEQ + 2)


@pytest.mark.parametrize(
    "message",
    [
        Delta("e", MAX_SEQ, 1.0, None, ()),
        Tick("e", MAX_SEQ, 1.0),
        SnapshotChunk("e", MAX_SEQ, 0, 1, (), base=MAX_SEQ - 1),
        SnapshotRequest("e", MAX_SEQ),
        Status("n1", "e", MAX_SEQ, "dump", True, 1.0),
    ],
)
def test_decoders_take_the_largest_seq(message: Any) -> None:
    assert decode(encode(message)) == message


def _wire(kind: str, **fields: Any) -> bytes:
    base: dict[str, Any] = {"v": 1, "kind": kind, "epoch": "e", "time": 1.0}
    if kind in ("delta", "snapshot"):
        base["ops"] = []
    if kind == "snapshot":
        base.update(chunk=0, chunks=1)
    if kind == "status":
        base.update(node="n1", healthy=True)
    return packb({**base, **fields})


@pytest.mark.parametrize(
    ("kind", "field", "value"),
    [
        ("delta", "seq", MAX_SEQ + 1),
        ("delta", "seq", -1),
        ("tick", "seq", MAX_SEQ + 1),
        ("tick", "seq", -1),
        ("snapshot", "seq", MAX_SEQ + 1),
        ("snapshot", "base", MAX_SEQ + 1),
        ("snapshot", "base", -2),
        ("snapshot-request", "seq", MAX_SEQ + 1),
        ("snapshot-request", "seq", -2),
        ("status", "seq", MAX_SEQ + 1),
        ("status", "seq", -2),
    ],
)
def test_decoders_refuse_a_seq_out_of_range_naming_the_field(
    kind: str, field: str, value: int
) -> None:
    data = _wire(kind, **{"seq": 3, field: value})
    with pytest.raises(MalformedMessage) as caught:
        decode(data)
    assert caught.value.field == field


def test_a_request_with_seq_minus_one_asks_for_a_full_snapshot() -> None:
    request = decode(_wire("snapshot-request", seq=-1, digest="00", accept=["eps"]))
    assert request == SnapshotRequest(accept=("eps",))  # as if seq were absent
    assert decode(_wire("snapshot-request", seq=None)) == SnapshotRequest()


def test_a_status_without_seq_is_at_minus_one() -> None:
    data = _wire("status")
    status = decode(data)
    assert isinstance(status, Status) and status.seq == -1


def test_the_publisher_never_hands_out_a_seq_beyond_the_largest() -> None:
    assert next_seq(MAX_SEQ - 1, "node n1") == MAX_SEQ
    with pytest.raises(SeqExhausted, match="node n1"):
        next_seq(MAX_SEQ, "node n1")
    registry = NodeRegistry()
    registry.serve("n1")
    registry.seq["n1"] = MAX_SEQ
    with pytest.raises(SeqExhausted):
        registry.next_seq("n1", 1.0)
    assert registry.seq["n1"] == MAX_SEQ


def test_the_global_view_stops_at_the_largest_seq() -> None:
    cluster = ClusterState()
    cluster.replace([Node("n1")])
    fanout = Fanout("e1")
    fanout.load(cluster)
    fanout.global_seq = MAX_SEQ
    service = Service("default", "web", ServiceType.CLUSTER_IP, ("10.96.0.1",), (http_port(),))
    with pytest.raises(SeqExhausted, match="global view"):
        fanout.publish(cluster, cluster.upsert(service), 1.0)


# -- loss detection: when a tick follows a delta ---------------------------------------------
INTERVAL = 1.0


def _first_tick_after(delta_at: float, passes: int = 5) -> tuple[float, float]:
    """The watcher's tick loop (a pass every tick interval, ``full=False`` between tick
    refreshes): when the first tick after a delta at ``delta_at`` reaches the node, and
    the global subject."""
    cluster = ClusterState()
    cluster.replace([Node("n1")])
    fanout = Fanout("e1")
    fanout.load(cluster)
    fanout.ticks(0.0, INTERVAL, full=True)
    service = Service("default", "web", ServiceType.CLUSTER_IP, ("10.96.0.1",), (http_port(),))
    fanout.publish(cluster, cluster.upsert(service), delta_at)
    node_at = global_at = None
    for k in range(1, passes + 1):
        now = k * INTERVAL
        if now < delta_at:
            continue
        targets = {o.node for o in fanout.ticks(now, INTERVAL, full=False)}
        if global_at is None and None in targets:
            global_at = now
        if node_at is None and "n1" in targets:
            node_at = now
    assert node_at is not None and global_at is not None
    return node_at, global_at


@given(st.floats(min_value=0.001, max_value=2.999))
def test_a_nodes_last_delta_is_ticked_within_two_intervals_the_global_within_one(
    delta_at: float,
) -> None:
    node_at, global_at = _first_tick_after(delta_at)
    assert INTERVAL <= node_at - delta_at < 2 * INTERVAL
    assert 0 <= global_at - delta_at <= INTERVAL


def test_a_delta_just_after_a_pass_waits_for_the_second_pass() -> None:
    """The bound of docs/bus.md section 8 is reached: "within one interval" would be wrong."""
    node_at, _ = _first_tick_after(1.001)
    assert node_at == 3.0


def test_a_request_with_a_seq_needs_its_epoch() -> None:
    data = packb({"v": 1, "kind": "snapshot-request", "seq": 3})
    with pytest.raises(MalformedMessage) as caught:
        decode(data)
    assert caught.value.field == "epoch"
    assert decode(packb({"v": 1, "kind": "snapshot-request", "seq": -1})) == SnapshotRequest()
