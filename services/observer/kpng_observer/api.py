"""The observer's HTTP API (FastAPI; OpenAPI at /docs)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.responses import JSONResponse
from kpng import __version__
from kpng.diff import View
from kpng.model import ViewEndpoint
from kpng.viewjson import view_to_json

from kpng_observer.state import ObserverState

NodeViewFetcher = Callable[[str], Awaitable[tuple[str, int, View[ViewEndpoint]]]]


def create_app(
    state: ObserverState,
    fetch_node_view: NodeViewFetcher,
    connected: Callable[[], bool],
    silent_after: float = 15.0,
    clock: Callable[[], float] = time.time,
) -> FastAPI:
    app = FastAPI(title="kpng observer", version=__version__)

    @app.get("/livez", tags=["health"])
    def livez() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    def readyz() -> JSONResponse:
        ready = connected() and state.snapshot_received
        body = {"ready": ready, "connected": connected(), "snapshot": state.snapshot_received}
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/api/v1/services", tags=["services"])
    def services(namespace: str | None = None) -> list[dict[str, Any]]:
        return state.services_json(namespace)

    @app.get("/api/v1/services/{namespace}/{name}", tags=["services"])
    def service(namespace: str, name: str) -> dict[str, Any]:
        key = f"{namespace}/{name}"
        if key not in state.view.services:
            raise HTTPException(404, f"service {key} not found")
        return state.service_json(key)

    @app.get("/api/v1/nodes", tags=["nodes"])
    def nodes() -> list[dict[str, Any]]:
        return state.nodes_json(clock(), silent_after)

    @app.get("/api/v1/nodes/{node}/view", tags=["nodes"])
    async def node_view(node: str) -> dict[str, Any]:
        try:
            epoch, seq, view = await fetch_node_view(node)
        except LookupError as exc:
            raise HTTPException(503, f"view of node {node} unavailable: {exc}") from None
        return view_to_json(node, epoch, seq, view)

    return app
