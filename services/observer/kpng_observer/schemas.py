"""The observer API's response bodies, as pydantic models: what /openapi.json promises.
FastAPI checks the small bodies against them on every answer; the ones that grow with the
cluster (services, nodes, node views) are checked by tests/observer/test_openapi.py.

Field names are the JSON keys (the bus's wire names inside services and endpoints,
docs/bus.md section 5). Models forbid unknown fields (``additionalProperties: false``), so a
key added to a body without its model fails the API tests instead of reaching clients
undocumented. Fields that the wire omits when empty have defaults.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

NodeStateName = Literal["ok", "syncing", "lagging", "diverged", "failed", "silent", "unknown"]
WatcherStateName = Literal["ok", "gone", "unknown"]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- errors --------------------------------------------------------------------------------
class ErrorBody(Body):
    """Every 4xx/5xx the API raises (FastAPI's ``HTTPException`` body)."""

    detail: str = Field(description="what was wrong, and where")


class ValidationIssue(BaseModel):
    """One parameter FastAPI refused (its own validation error item)."""

    loc: list[str | int] = Field(description="where: query, path or header, then the name")
    msg: str
    type: str


class InvalidRequest(BaseModel):
    """422: a parameter FastAPI refused (a list of issues), or one the route refused after
    parsing (a message)."""

    detail: str | list[ValidationIssue]


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route that may answer with these error codes."""
    return {
        code: {
            "model": InvalidRequest if code == 422 else ErrorBody,
            "description": ERROR_MEANINGS[code],
        }
        for code in codes
    }


ERROR_MEANINGS = {
    400: "a parameter does not parse (such as a label selector)",
    401: "missing or wrong bearer token (the observer's --token)",
    404: "no such service or node, or a node path that is no Kubernetes node name",
    422: "a parameter is not valid for the query (such as an address that is no IP)",
    503: "the node's view is unavailable from the watcher",
}


# -- health --------------------------------------------------------------------------------
class Liveness(Body):
    status: Literal["ok"]


class Readiness(Body):
    ready: bool
    connected: bool = Field(description="connected to NATS")
    snapshot: bool = Field(description="holding the global view")
    watcher: WatcherStateName
    reason: str | None = Field(None, description="why not ready, when the watcher is gone")


# -- services ------------------------------------------------------------------------------
class ServicePort(Body):
    name: str
    proto: Literal["TCP", "UDP", "SCTP"]
    port: int
    target: int | str = Field(description="target port number or endpoint port name")
    node_port: int


class Endpoint(Body):
    """A global-view endpoint (hints) or, in a node view, one with internal/external."""

    ip: str
    ports: list[tuple[str, str, int]] = Field(description="[name, protocol, port] each")
    node: str
    zone: str
    ready: bool
    serving: bool
    terminating: bool
    internal: bool | None = Field(None, description="node views only")
    external: bool | None = Field(None, description="node views only")
    shortcut: bool | None = Field(
        None,
        description="node views only, present when true: a service with both traffic policies"
        " Local sends pods' and the node's traffic to its external addresses to this endpoint"
        " (one of its cluster-wide endpoints)",
    )
    port_marks: list[tuple[str, str, int]] | None = Field(
        None,
        description="node views only, rare: [port name, protocol, flags] for the service"
        " ports whose own endpoint selection marks this endpoint otherwise (flags: 8"
        " internal, 16 external, 32 shortcut)",
    )
    zone_hints: list[str] = Field(default_factory=list, description="global view only")
    node_hints: list[str] = Field(default_factory=list, description="global view only")


class EndpointCounts(Body):
    total: int
    ready: int
    usable: int


class Service(Body):
    """A service as on the bus (docs/bus.md 5.1), with its endpoints."""

    ns: str
    name: str
    type: Literal["ClusterIP", "NodePort", "LoadBalancer"]
    cluster_ips: list[str]
    ports: list[ServicePort]
    external_ips: list[str] = Field(default_factory=list)
    lb_ips: list[str] = Field(default_factory=list)
    lb_source_ranges: list[str] = Field(default_factory=list)
    affinity_timeout: int = 0
    itp: str = Field("Cluster", description="internal traffic policy (omitted: Cluster)")
    etp: str = Field("Cluster", description="external traffic policy (omitted: Cluster)")
    hc_node_port: int = 0
    traffic_distribution: str = ""
    topology_mode: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    endpoints: list[Endpoint]
    endpointCounts: EndpointCounts | None = Field(None, description="global view only")


class NodeProgramming(Body):
    node: str
    epoch: str | None
    requiredSeq: int | None = Field(description="the seq that carries the latest version")
    appliedEpoch: str | None
    appliedSeq: int | None
    programmed: bool | None = Field(description="null: the observer cannot tell yet")


class Programming(Body):
    service: str
    programmedOn: list[str]
    nodes: list[NodeProgramming]


# -- nodes ---------------------------------------------------------------------------------
class Position(Body):
    epoch: str
    seq: int


class Applied(Body):
    """What the node's agent last reported (its status, docs/bus.md 3.6)."""

    epoch: str
    seq: int
    backend: str
    healthy: bool
    lastSync: float | None
    syncDuration: float | None
    counts: dict[str, int]
    errors: list[str]
    warnings: list[str]
    version: str


class Lag(Body):
    seqs: int | None = Field(description="how many seqs behind (null across epochs)")
    since: float
    seconds: float


class NodeStatus(Body):
    name: str
    state: NodeStateName
    published: Position
    applied: Applied | None
    inSync: bool
    diverged: bool
    ahead: bool
    lag: Lag | None
    silent: bool
    lastStatusAge: float | None
    zone: str
    addresses: list[str]
    inCluster: bool
    podCIDRs: list[str] = Field(description="the Node's spec.podCIDRs (bus.md 5.3)")
    deleting: bool = Field(
        description="the Node is going away (a deletionTimestamp or the cluster autoscaler's"
        " taint): its agent's /healthz fails so that load balancers drain it"
    )


class NodeInfo(Body):
    name: str
    addresses: list[str]
    zone: str
    region: str
    pod_cidrs: list[str] | None = Field(
        None, description="the Node's spec.podCIDRs (bus.md 5.3); absent when it has none"
    )
    deleting: bool | None = Field(
        None,
        description="present and true when the Node is going away (a deletionTimestamp or the"
        " ToBeDeletedByClusterAutoscaler taint; bus.md 5.3)",
    )


class NodeView(Body):
    node: str
    epoch: str
    seq: int
    nodeInfo: NodeInfo | None
    services: dict[str, Service]


class Target(Body):
    ip: str
    port: int
    node: str
    local: bool
    terminating: bool


class PacketExplanation(Body):
    node: str
    epoch: str
    seq: int
    verdict: Literal["forward", "reject", "drop", "pass"]
    match: Literal["clusterIP", "nodePort", "externalIP", "loadBalancerIP"] | None
    service: str | None
    port: str | None
    targets: list[Target]
    masquerade: bool | None = Field(description="null: depends on a source not given")
    affinityTimeout: int | None
    reasons: list[str]


class WatcherSelf(Body):
    """What the watcher last said of itself (docs/bus.md 3.7)."""

    epoch: str
    time: float
    reloadHeld: bool
    heldReloads: int
    staleObjects: dict[str, int]
    invalidObjects: dict[str, int]
    loadErrors: int


class Watcher(Body):
    state: WatcherStateName
    status: WatcherSelf | None


# -- latency -------------------------------------------------------------------------------
class Percentiles(Body):
    count: int
    p50: float | None
    p90: float | None
    p99: float | None
    max: float | None


class Latency(Body):
    window: float
    cluster: Percentiles
    nodes: dict[str, Percentiles]


class LatencyPoint(Body):
    """One step of the history: the samples applied in ``[start, start + step)``."""

    start: float
    count: int
    p50: float | None
    p99: float | None


class LatencyHistory(Body):
    step: float = Field(description="seconds per point")
    span: float = Field(description="seconds covered, ending now")
    points: list[LatencyPoint]
