"""The watcher's own status message (JSON): round trip, and anything else refused."""

from __future__ import annotations

import json

import pytest

from kpng.bus.watcher_status import WatcherStatus, decode_status, encode_status


def test_round_trip() -> None:
    status = WatcherStatus("e1", 5.0, True, 2, {"Service": 1}, {"Service": 3}, 1)
    assert decode_status(encode_status(status)) == status


@pytest.mark.parametrize(
    "raw",
    [
        b"x",
        b"[]",
        json.dumps({"v": 2, "kind": "watcher-status", "epoch": "e", "time": 1}).encode(),
        json.dumps({"v": 1, "kind": "status", "epoch": "e", "time": 1}).encode(),
        json.dumps({"v": 1, "kind": "watcher-status", "epoch": 5, "time": 1}).encode(),
        json.dumps(
            {"v": 1, "kind": "watcher-status", "epoch": "e", "time": 1, "heldReloads": True}
        ).encode(),
        json.dumps(
            {"v": 1, "kind": "watcher-status", "epoch": "e", "time": 1, "staleObjects": {"a": "b"}}
        ).encode(),
        b"{" + b" " * 70_000 + b"}",
    ],
)
def test_anything_else_is_a_value_error(raw: bytes) -> None:
    with pytest.raises(ValueError):
        decode_status(raw)
