"""Port marks on the wire (docs/bus.md, section 5.2): carried by both endpoint forms,
absent from the common case, compatible both ways within v1."""

from __future__ import annotations

import dataclasses
from typing import Any

import msgpack

from kpng.bus.codec import Delta, decode, encode, pack_delta, packb
from kpng.bus.wire import Reader, endpoints_from_wire, endpoints_to_wire, op_to_wire
from kpng.diff import SetEndpoint
from kpng.model import EndpointPort, PortMarks, ViewEndpoint
from tests.objects import HTTP_ENDPOINT_PORT, TCP

METRICS = EndpointPort("metrics", TCP, 9090)
KEY = "shop/web"
NEW = ViewEndpoint("10.244.1.5", (HTTP_ENDPOINT_PORT,), "node-a1", internal=True, external=True)
OLD = ViewEndpoint(
    "10.244.1.6", (HTTP_ENDPOINT_PORT, METRICS), "node-a1", ready=False, terminating=True
).with_port_marks((PortMarks("metrics", TCP, True, True),))
OLDER = dataclasses.replace(OLD, ip="10.244.1.7")
ROLLOUT = (NEW, OLD, OLDER)


def delta(*endpoints: ViewEndpoint, compact: bool) -> bytes:
    if compact:
        return pack_delta("e1", 1, 0.0, None, [packb(endpoints_to_wire(KEY, endpoints))])
    return encode(Delta("e1", 1, 0.0, None, tuple(SetEndpoint(KEY, e) for e in endpoints)))


def decoded(data: bytes) -> tuple[ViewEndpoint, ...]:
    message = decode(data)
    assert isinstance(message, Delta)
    out = []
    for op in message.ops:
        assert isinstance(op, SetEndpoint)
        out.append(op.endpoint)
    return tuple(out)


def test_port_marks_round_trip_in_both_forms() -> None:
    for compact in (False, True):
        assert decoded(delta(*ROLLOUT, compact=compact)) == ROLLOUT, compact


def test_the_compact_form_shares_equal_marks() -> None:
    _, old, older = decoded(delta(*ROLLOUT, compact=True))
    assert old.port_marks[0] is older.port_marks[0]


def test_the_common_case_carries_no_new_field() -> None:
    """Without port marks the operations are the ones written before port marks existed."""
    plain = (NEW, OLD.with_port_marks(()))
    assert set(endpoints_to_wire(KEY, plain)) == {"op", "key", "ports", "eps"}
    for e in plain:
        assert "port_marks" not in op_to_wire(SetEndpoint(KEY, e))["ep"]


def test_a_message_without_port_marks_decodes_as_before() -> None:
    """What an older watcher sends: every endpoint's marks hold for every port."""
    plain = (NEW, OLD.with_port_marks(()))
    for compact in (False, True):
        for e in decoded(delta(*plain, compact=compact)):
            assert e.port_marks == ()


def _without_port_marks(op: dict[str, Any]) -> dict[str, Any]:
    op = {k: v for k, v in op.items() if k != "port_marks"}
    if "ep" in op:
        op["ep"] = {k: v for k, v in op["ep"].items() if k != "port_marks"}
    return op


def test_what_an_older_agent_reads() -> None:
    """An older agent ignores unknown fields: the marks are one more key of the operation
    (``eps``) or of the endpoint (``ep``), the rows keep their 3 to 5 elements, so it
    reads the endpoints with their service-wide marks and nothing else changes."""
    compact = endpoints_to_wire(KEY, ROLLOUT)
    assert compact["port_marks"] == [[1, "metrics", "TCP", 24], [2, "metrics", "TCP", 24]]
    assert all(3 <= len(row) <= 5 for row in compact["eps"])
    old_view = endpoints_from_wire(Reader(_without_port_marks(compact), ""), "node")
    assert [op.endpoint for op in old_view] == [e.with_port_marks(()) for e in ROLLOUT]
    single = op_to_wire(SetEndpoint(KEY, OLD))
    assert single["ep"]["port_marks"] == [["metrics", "TCP", 24]]
    data = msgpack.packb(
        {"v": 1, "kind": "delta", "epoch": "e", "seq": 1, "time": 0.0, "ops": [single]}
    )
    assert decoded(data) == (OLD,)
    stripped = msgpack.packb(
        {
            "v": 1,
            "kind": "delta",
            "epoch": "e",
            "seq": 1,
            "time": 0.0,
            "ops": [_without_port_marks(single)],
        }
    )
    assert decoded(stripped) == (OLD.with_port_marks(()),)


def test_unknown_flag_bits_of_a_port_mark_are_ignored() -> None:
    """As an ``eps`` row's: a later v1 producer may add bits."""
    op = endpoints_to_wire(KEY, (NEW,))
    op["port_marks"] = [[0, "http", "TCP", 8 | 64]]
    (got,) = endpoints_from_wire(Reader(op, ""), "node")
    assert got.endpoint.port_marks == (PortMarks("http", TCP, True, False),)
