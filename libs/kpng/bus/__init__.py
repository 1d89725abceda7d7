"""Bus contract v1: subjects, the consumer algorithm, and the client third parties use.

from kpng.bus import connect, NodeViewClient

async with await connect("nats://127.0.0.1:4222") as bus:
    async for event in NodeViewClient(bus, "node-a1"):
        print(event.kind, event.seq, len(event.view.services))
"""

from kpng.bus.client import GlobalViewClient, NodeViewClient, ViewClient, ViewEvent
from kpng.bus.connection import Bus, BusError, connect
from kpng.bus.subjects import Subjects

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
