"""A node view as JSON: the dump backend's file and the observer's node view share it."""

from __future__ import annotations

from typing import Any

from kpng.bus.codec import endpoint_to_wire, node_to_wire, service_to_wire
from kpng.diff import View
from kpng.model import ViewEndpoint


def view_to_json(node: str, epoch: str, seq: int, view: View[ViewEndpoint]) -> dict[str, Any]:
    """``{"node", "epoch", "seq", "nodeInfo", "services": {"<ns>/<name>": {..., "endpoints":
    [{"ip", ..., "internal", "external"}]}}}``, endpoints sorted by IP."""
    services: dict[str, Any] = {}
    for key in sorted(view.services):
        entry = service_to_wire(view.services[key])
        endpoints = view.endpoints_of(key)
        entry["endpoints"] = [endpoint_to_wire(endpoints[ip]) for ip in sorted(endpoints)]
        services[key] = entry
    known = view.nodes.get(node)
    return {
        "node": node,
        "epoch": epoch,
        "seq": seq,
        "nodeInfo": node_to_wire(known) if known is not None else None,
        "services": services,
    }
