"""Bus contract v1: subjects, messages, the consumer algorithm, and the client SDK.

    from kpng.bus import connect, NodeViewClient

    async with await connect("nats://127.0.0.1:4222") as bus:
        async for event in NodeViewClient(bus, "node-a1"):
            print(event.kind, event.seq, len(event.view.services))

The pure part: :mod:`~kpng.bus.subjects`, :mod:`~kpng.bus.codec` (messages),
:mod:`~kpng.bus.wire` (values), :mod:`~kpng.bus.compression`, :mod:`~kpng.bus.consumer`
(the consumer state machine). The seam: :mod:`~kpng.bus.protocol` (``Bus``), with
:mod:`~kpng.bus.nats` (the only importer of nats-py) and :mod:`~kpng.bus.fake` (in memory)
behind it. The client: :mod:`~kpng.bus.client`. Names below are imported on first use, so
that importing a pure module does not load nats-py.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kpng.bus.client import GlobalViewClient, NodeViewClient, ViewClient, ViewEvent
    from kpng.bus.nats import connect
    from kpng.bus.protocol import Bus, BusError
    from kpng.bus.subjects import Subjects

_WHERE = {
    "Bus": "kpng.bus.protocol",
    "BusError": "kpng.bus.protocol",
    "GlobalViewClient": "kpng.bus.client",
    "NodeViewClient": "kpng.bus.client",
    "Subjects": "kpng.bus.subjects",
    "ViewClient": "kpng.bus.client",
    "ViewEvent": "kpng.bus.client",
    "connect": "kpng.bus.nats",
}
__all__ = [
    "Bus",
    "BusError",
    "GlobalViewClient",
    "NodeViewClient",
    "Subjects",
    "ViewClient",
    "ViewEvent",
    "connect",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'kpng.bus' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
