"""The observer's HTTP API (FastAPI; OpenAPI at /openapi.json, browsable at /docs), its
event stream, its metrics and the dashboard's static files."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Query
from fastapi.responses import (
    FileResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)
from fastapi.staticfiles import StaticFiles
from prometheus_client import CollectorRegistry

from kpng import __version__
from kpng.dataplane.detectlocal import (
    BRIDGE_INTERFACE,
    CLUSTER_CIDR,
    INTERFACE_NAME_PREFIX,
    NODE_CIDR,
)
from kpng.diff import View
from kpng.labels import InvalidSelector, parse_label_selector
from kpng.model import ServiceType, TransportProtocol, ViewEndpoint, name_problem, shown_name
from kpng.observe.explain import Explanation, Network, PacketQuery, explain, parse_cidrs
from kpng.observe.viewjson import view_to_json
from kpng.runtime.metrics import render
from kpng_observer import schemas
from kpng_observer.auth import require_token
from kpng_observer.events import parse_last_event_id, sse_stream
from kpng_observer.schemas import ERROR_MEANINGS, errors
from kpng_observer.state import ObserverState

ERROR_BODY = "#/components/schemas/ErrorBody"

NodeViewFetcher = Callable[[str], Awaitable[tuple[str, int, View[ViewEndpoint]]]]
STATIC = Path(__file__).parent / "static"
JSON = dict[str, Any]


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    token: str | None = None
    cluster_cidrs: tuple[Network, ...] = ()
    latency_window: float = 300.0
    sse_keepalive: float = 15.0
    # the agents' --detect-local-mode, for explain: pods by --cluster-cidr, by a node's
    # podCIDRs (NodeCIDR), or by their interface (the query's fromPod)
    detect_local: str = CLUSTER_CIDR


def create_app(
    state: ObserverState,
    fetch_node_view: NodeViewFetcher,
    connected: Callable[[], bool],
    registry: CollectorRegistry | None = None,
    settings: Settings = Settings(),
    clock: Callable[[], float] = time.time,
) -> FastAPI:
    app = FastAPI(
        title="kpng observer",
        version=__version__,
        description="Cluster-wide programming status, network-programming latency, "
        "packet explanations and an event stream for kpng. See docs/observer.md.",
    )
    _health(app, state, connected, clock)
    protected = [Depends(require_token(settings.token))]
    api = APIRouter(prefix="/api/v1", dependencies=protected, responses=errors(401))
    _services(api, state)
    _nodes(api, state, fetch_node_view, clock)
    _explain(api, state, fetch_node_view, settings, clock)
    _stream(api, state, settings, clock)
    app.include_router(api)
    if registry is not None:
        _metrics(app, registry, protected)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def dashboard() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    return app


def _health(
    app: FastAPI, state: ObserverState, connected: Callable[[], bool], clock: Callable[[], float]
) -> None:
    @app.get("/livez", tags=["health"], summary="The process is up")
    def livez() -> schemas.Liveness:
        return schemas.Liveness(status="ok")

    @app.get(
        "/readyz",
        tags=["health"],
        summary="Connected, holding the global view, watcher alive",
        response_model=schemas.Readiness,
        response_model_exclude_unset=True,
        responses={503: {"model": schemas.Readiness, "description": "not ready (see reason)"}},
    )
    def readyz() -> JSONResponse:
        watcher = state.watcher_state(clock())
        ready = connected() and state.snapshot_received and watcher != "gone"
        body: JSON = {
            "ready": ready,
            "connected": connected(),
            "snapshot": state.snapshot_received,
            "watcher": watcher,
        }
        if watcher == "gone":
            body["reason"] = f"watcher gone: no tick for over {state.watcher_gone_after:g}s"
        checked = schemas.Readiness.model_validate(body).model_dump(exclude_unset=True)
        return JSONResponse(checked, status_code=200 if ready else 503)


def _metrics(app: FastAPI, registry: CollectorRegistry, protected: list[Any]) -> None:
    @app.get(
        "/metrics",
        tags=["metrics"],
        dependencies=protected,
        summary="Prometheus text",
        response_class=PlainTextResponse,
        responses={
            200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
            401: {
                "description": ERROR_MEANINGS[401],
                "content": {"application/json": {"schema": {"$ref": ERROR_BODY}}},
            },
        },
    )
    def metrics() -> Response:
        body, content_type = render(registry)
        return Response(body, media_type=content_type)


def _services(api: APIRouter, state: ObserverState) -> None:
    @api.get(
        "/services",
        tags=["services"],
        summary="Services of the global view",
        response_model=list[schemas.Service],
        responses=errors(400, 422),
    )
    def services(
        namespace: str | None = None,
        type: Annotated[ServiceType | None, Query(description="ClusterIP, NodePort...")] = None,
        name: Annotated[str | None, Query(description="substring of the name")] = None,
        label: Annotated[
            str | None, Query(description="label selector, as kubectl's -l: app=web,tier!=db")
        ] = None,
    ) -> JSONResponse:
        """Services with their endpoints and endpoint counts. Filters: namespace, type, name
        and a Kubernetes label selector."""
        try:
            selector = parse_label_selector(label)
        except InvalidSelector as exc:
            raise HTTPException(400, f"label: {exc}") from None
        return large(state.services_json(namespace, type.value if type else None, name, selector))

    def known(namespace: str, name: str) -> str:
        key = f"{namespace}/{name}"
        if key not in state.view.services:
            raise HTTPException(404, f"service {key} not found")
        return key

    @api.get(
        "/services/{namespace}/{name}",
        tags=["services"],
        summary="One service",
        response_model=schemas.Service,
        responses=errors(404, 422),
    )
    def service(namespace: str, name: str) -> JSONResponse:
        return large(state.service_json(known(namespace, name)))

    @api.get(
        "/services/{namespace}/{name}/programming",
        tags=["services"],
        summary="Which nodes have programmed the service's latest version",
        response_model=schemas.Programming,
        responses=errors(404, 422),
    )
    def programming(namespace: str, name: str) -> JSON:
        """Per node: ``requiredSeq``, the seq of the node delta that last changed this service
        (or, if none since the observer started, the first seq it saw), the agent's applied
        position, and ``programmed`` (null when the observer cannot tell yet)."""
        key = known(namespace, name)
        nodes = state.programming.service_state(key, state.applied_positions())
        done = [n["node"] for n in nodes if n["programmed"]]
        return {"service": key, "programmedOn": done, "nodes": nodes}


def _nodes(
    api: APIRouter,
    state: ObserverState,
    fetch_node_view: NodeViewFetcher,
    clock: Callable[[], float],
) -> None:
    @api.get(
        "/nodes",
        tags=["nodes"],
        summary="Every node: state, lag, applied status",
        response_model=list[schemas.NodeStatus],
    )
    def nodes() -> JSONResponse:
        """``state`` is ok, lagging (behind what was published for longer than the lag
        threshold), failed (errors or unhealthy), silent (no status within --silent-after) or
        unknown. ``lag`` says since when and by how many seqs a node is behind."""
        return large(state.nodes_json(clock()))

    @api.get(
        "/nodes/{node}",
        tags=["nodes"],
        summary="One node",
        response_model=schemas.NodeStatus,
        responses=errors(404, 422),
    )
    def one_node(node: str) -> JSON:
        if node not in state.nodes and node not in state.view.nodes:
            raise HTTPException(404, f"node {node} not known")
        return state.node_json(node, clock())

    @api.get(
        "/nodes/{node}/view",
        tags=["nodes"],
        summary="The node's view, from the watcher",
        response_model=schemas.NodeView,
        responses=errors(404, 422, 503),
    )
    async def node_view(node: str) -> JSONResponse:
        epoch, seq, view = await _view_of(fetch_node_view, node)
        return large(view_to_json(node, epoch, seq, view))


def _explain(
    api: APIRouter,
    state: ObserverState,
    fetch_node_view: NodeViewFetcher,
    settings: Settings,
    clock: Callable[[], float],
) -> None:
    @api.get(
        "/nodes/{node}/explain",
        tags=["nodes"],
        summary="Where a packet would go",
        response_model=schemas.PacketExplanation,
        responses=errors(404, 422, 503),
    )
    async def explain_packet(
        node: str,
        destination: Annotated[str, Query(description="destination IP address")],
        port: Annotated[int, Query(ge=1, le=65535)],
        protocol: TransportProtocol = TransportProtocol.TCP,
        source: Annotated[str | None, Query(description="source IP address")] = None,
        cluster_cidr: Annotated[
            str | None,
            Query(alias="clusterCIDR", description="pod network CIDRs, comma-separated"),
        ] = None,
        from_pod: Annotated[
            bool | None,
            Query(
                alias="fromPod",
                description="whether it comes in on a pod's interface (only where the agents "
                "tell pods by their interface: --detect-local-mode BridgeInterface or "
                "InterfaceNamePrefix)",
            ),
        ] = None,
    ) -> JSON:
        """Which endpoints a packet to ``destination:port/protocol`` arriving on ``node``
        could reach, whether it is masqueraded, or whether it is rejected or dropped, and why.
        Pods are told as the agents tell them (the observer's ``--detect-local-mode``): by
        ``clusterCIDR``, else the observer's ``--cluster-cidr``; with NodeCIDR by the node's
        own pod CIDRs; with BridgeInterface or InterfaceNamePrefix by ``fromPod``."""
        by_interface = settings.detect_local in (BRIDGE_INTERFACE, INTERFACE_NAME_PREFIX)
        if from_pod is not None and not by_interface:
            raise HTTPException(
                422,
                f"fromPod: pods are told by their source address here (--detect-local-mode "
                f"{settings.detect_local}); give source, or clusterCIDR",
            )
        if from_pod is not None and cluster_cidr:
            raise HTTPException(
                422, "fromPod and clusterCIDR: give one (a pod by its interface, or by address)"
            )
        try:
            packet = PacketQuery(destination, protocol, port, source, from_pod)
            epoch, seq, view = await _view_of(fetch_node_view, node)
            if cluster_cidr:
                cidrs = parse_cidrs(cluster_cidr)
            elif settings.detect_local == NODE_CIDR:
                known = view.nodes.get(node)
                cidrs = parse_cidrs(known.pod_cidrs) if known is not None else ()
            else:
                cidrs = settings.cluster_cidrs
            result = explain(view, node, packet, cidrs, by_interface and not cluster_cidr)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        return {"node": node, "epoch": epoch, "seq": seq, **explanation_json(result)}

    @api.get(
        "/watcher",
        tags=["nodes"],
        summary="The watcher: alive or gone, its source",
        response_model=schemas.Watcher,
    )
    def watcher() -> JSON:
        """``state``: ok, gone (three ticks missed) or unknown; ``status``: what the watcher
        last said of itself, such as a source reload held back (``reloadHeld``)."""
        return state.watcher_json(clock())

    @api.get(
        "/latency",
        tags=["latency"],
        summary="Network-programming latency percentiles",
        response_model=schemas.Latency,
        responses=errors(422),
    )
    def latency(
        window: Annotated[float | None, Query(gt=0, description="seconds")] = None,
    ) -> JSON:
        """p50, p90, p99 and max of (agent applied - Kubernetes change) over the last
        ``window`` seconds (default: --latency-window), cluster-wide and per node."""
        return state.latency.summary(clock(), window or settings.latency_window)

    @api.get(
        "/latency/history",
        tags=["latency"],
        summary="Cluster-wide p50 and p99 latency per 10 s over the last 15 minutes",
        response_model=schemas.LatencyHistory,
    )
    def latency_history() -> JSON:
        """One point per step (``step`` seconds), oldest first, covering ``span`` seconds up
        to now; a step without samples has ``count`` 0 and null percentiles. Percentiles come
        from a log-scale histogram per step: within 5 % of the exact value."""
        return state.latency.history.to_json(clock())


def _stream(
    api: APIRouter, state: ObserverState, settings: Settings, clock: Callable[[], float]
) -> None:
    @api.get(
        "/events",
        tags=["events"],
        summary="Server-Sent Events: global deltas, status changes, node state changes",
        response_class=StreamingResponse,
        responses={
            200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}},
            **errors(422),
        },
    )
    async def events(
        last_event_id: Annotated[str | None, Header()] = None,
        after: Annotated[int | None, Query(description="like Last-Event-ID")] = None,
    ) -> StreamingResponse:
        """Event types: ``snapshot``, ``delta`` (global view), ``status`` (a node's applied
        position, health or errors changed), ``node`` (a node's state changed), ``reset``
        (events were missed: refetch). Resume with the ``Last-Event-ID`` header."""
        last = parse_last_event_id(last_event_id)
        stream = sse_stream(
            state.events, last if last is not None else after, settings.sse_keepalive
        )
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(stream, media_type="text/event-stream", headers=headers)


async def _view_of(
    fetch_node_view: NodeViewFetcher, node: str
) -> tuple[str, int, View[ViewEndpoint]]:
    problem = name_problem(node)
    if problem:  # before any subject is built from it: the bus may refuse and drop us
        raise HTTPException(404, f"no node {shown_name(node)}: {problem}")
    try:
        return await fetch_node_view(node)
    except LookupError as exc:
        raise HTTPException(503, f"view of node {node} unavailable: {exc}") from None


def large(body: JSON | list[JSON]) -> JSONResponse:
    """A body that grows with the cluster (services, nodes, a node's view), sent as it is:
    its route's model documents it and the tests check it (tests/observer/test_openapi.py),
    but validating 100,000 endpoints on every request would triple its cost."""
    return JSONResponse(body)


def explanation_json(result: Explanation) -> JSON:
    out = dataclasses.asdict(result)
    out["targets"] = [dataclasses.asdict(t) for t in result.targets]
    out["reasons"] = list(result.reasons)
    out["affinityTimeout"] = out.pop("affinity_timeout")
    return out
