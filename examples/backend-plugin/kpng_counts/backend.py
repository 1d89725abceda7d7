"""A backend that "programs" a JSON file of counts: services, endpoints, endpoints per service.

It keeps its own state and follows the contract of docs/backends.md: a full sync rebuilds
that state from ``event.view``; a delta changes only what its operations name.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from kpng.bus.consumer import Applied
from kpng.dataplane.claims import Conflict
from kpng.diff import DeleteEndpoint, DeleteService, SetEndpoint, SetService
from kpng.model import ViewEndpoint


def write_json(path: Path, document: dict[str, Any]) -> None:
    """Atomically: a reader sees the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        json.dump(document, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


class CountsBackend:
    name = "counts"
    conflicts: tuple[Conflict, ...] = ()  # it programs no IP:port

    def __init__(self, node: str, path: str | Path) -> None:
        self.node = node
        self.path = Path(path)
        self.endpoints: dict[str, set[str]] = {}  # service key -> endpoint IPs: "the dataplane"

    async def program(self, event: Applied[ViewEndpoint], full: bool) -> None:
        if full:  # a snapshot or a retry: become equal to the view
            self.endpoints = {key: set(event.view.endpoints_of(key)) for key in event.view.services}
        else:  # a delta: apply its operations only
            for op in event.ops:
                match op:
                    case SetService(service):
                        self.endpoints.setdefault(service.key, set())
                    case DeleteService(key):
                        self.endpoints.pop(key, None)
                    case SetEndpoint(key, endpoint):
                        self.endpoints.setdefault(key, set()).add(endpoint.ip)
                    case DeleteEndpoint(key, ip):
                        self.endpoints.get(key, set()).discard(ip)
        # the agent's event loop must never block: the file is written in a thread
        await asyncio.to_thread(write_json, self.path, self.document(event.seq, full))

    def document(self, seq: int, full: bool) -> dict[str, Any]:
        return {
            "node": self.node,
            "seq": seq,
            "full": full,
            "services": len(self.endpoints),
            "endpoints": sum(len(ips) for ips in self.endpoints.values()),
            "per_service": {key: len(ips) for key, ips in sorted(self.endpoints.items())},
        }

    async def close(self) -> None:
        return None
