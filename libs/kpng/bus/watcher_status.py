"""What the watcher says about itself on ``<prefix>.v1.watcher.status`` (pure).

JSON, one object, published every tick interval: the epoch, and the source's condition
(a reload held back, stale and invalid objects), so that the observer can show it. Unknown
fields are ignored; anything not an object of the expected types is :class:`ValueError`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

KIND = "watcher-status"
MAX_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class WatcherStatus:
    epoch: str
    time: float
    reload_held: bool = False  # a source reload held back (it removes too many services)
    held_reloads: int = 0
    stale_objects: dict[str, int] = field(default_factory=dict)  # by kind
    invalid_objects: dict[str, int] = field(default_factory=dict)
    load_errors: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "time": self.time,
            "reloadHeld": self.reload_held,
            "heldReloads": self.held_reloads,
            "staleObjects": dict(self.stale_objects),
            "invalidObjects": dict(self.invalid_objects),
            "loadErrors": self.load_errors,
        }


def encode_status(status: WatcherStatus) -> bytes:
    return json.dumps({"v": 1, "kind": KIND, **status.to_json()}).encode()


def decode_status(data: bytes) -> WatcherStatus:
    if len(data) > MAX_BYTES:
        raise ValueError(f"watcher status of {len(data)} bytes")
    try:
        raw = json.loads(data)
    except RecursionError:  # a few KB of "[[[[": json's declared errors are ValueErrors
        raise ValueError("watcher status nested too deeply") from None
    if not isinstance(raw, dict) or raw.get("v") != 1 or raw.get("kind") != KIND:
        raise ValueError("not a v1 watcher-status")
    return WatcherStatus(
        epoch=_typed(raw, "epoch", str, ""),
        time=float(_typed(raw, "time", (int, float), 0.0)),
        reload_held=_typed(raw, "reloadHeld", bool, False),
        held_reloads=_typed(raw, "heldReloads", int, 0),
        stale_objects=_counts(raw.get("staleObjects")),
        invalid_objects=_counts(raw.get("invalidObjects")),
        load_errors=_typed(raw, "loadErrors", int, 0),
    )


def _typed(raw: dict[str, Any], key: str, kind: Any, default: Any) -> Any:
    value = raw.get(key, default)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValueError(f"{key}: expected {kind}")
    return value


def _counts(value: Any) -> dict[str, int]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool)
        for k, v in value.items()
    ):
        raise ValueError("expected counts by kind")
    return dict(value)
