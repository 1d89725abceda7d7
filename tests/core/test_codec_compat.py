"""Forward compatibility of the v1 codec: what a later v1 producer may add."""

from __future__ import annotations

import msgpack
from kpng.codec import DeleteService, Delta, Status, decode


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
