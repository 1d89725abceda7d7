"""Forward compatibility of the v1 codec: what a later v1 producer may add."""

from __future__ import annotations

import msgpack
import pytest

from kpng.bus.codec import Delta, MalformedMessage, Status, decode, encode, service_to_wire
from kpng.diff import DeleteService, SetService
from kpng.model import Service, ServiceType


def test_unknown_operation_kinds_are_skipped_and_the_rest_applies() -> None:
    data = msgpack.packb(
        {
            "v": 1,
            "kind": "delta",
            "epoch": "e",
            "seq": 3,
            "time": 1.0,
            "ops": [{"op": "weight", "key": "a/b", "w": 3}, {"op": "-svc", "key": "a/b"}],
            "future": {"x": 1},
        }
    )
    message = decode(data)
    assert isinstance(message, Delta)
    assert message.ops == (DeleteService("a/b"),)


def test_status_without_seq_means_nothing_programmed() -> None:
    data = msgpack.packb({"v": 1, "kind": "status", "node": "n1", "healthy": False, "time": 1.0})
    message = decode(data)
    assert isinstance(message, Status)
    assert (message.seq, message.epoch) == (-1, "")


def test_service_labels_round_trip_and_bad_labels_are_malformed() -> None:
    svc = Service("ns", "a", ServiceType.CLUSTER_IP, ("10.96.0.1",), (), labels=(("app", "x"),))
    message = decode(encode(Delta("e", 1, 1.0, None, (SetService(svc),))), "global")
    assert isinstance(message, Delta) and message.ops == (SetService(svc),)
    wire = service_to_wire(svc)
    wire["labels"] = {"app": 3}
    bad = msgpack.packb(
        {
            "v": 1,
            "kind": "delta",
            "epoch": "e",
            "seq": 1,
            "time": 1.0,
            "ops": [{"op": "svc", "svc": wire}],
        }
    )
    with pytest.raises(MalformedMessage, match="labels"):
        decode(bad, "global")
