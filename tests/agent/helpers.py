"""Node views and events for agent tests, and agents built as the service builds them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prometheus_client import CollectorRegistry

from kpng.bus.consumer import Applied
from kpng.bus.protocol import Bus
from kpng.dataplane.backend import Backend
from kpng.diff import Op, View, diff
from kpng.model import Node, Service, ServiceType, TrafficPolicy, ViewEndpoint
from kpng.runtime.clock import SYSTEM, Clock
from kpng_agent.agent import DEFAULT_SETTINGS, Agent, AgentSettings, SyncHook
from kpng_agent.wiring import build_agent, build_parts
from tests import objects
from tests.objects import DNS_ENDPOINT_PORT, HTTP_ENDPOINT_PORT, dns_port, http_port

NODE = "node-a"


def lb(name: str = "shop", hc: int = 32100, **kw: Any) -> Service:
    return Service(
        "demo",
        name,
        ServiceType.LOAD_BALANCER,
        ("10.96.0.20",),
        (http_port(30080),),
        load_balancer_ips=("198.51.100.10",),
        external_traffic_policy=kw.pop("etp", TrafficPolicy.LOCAL),
        health_check_node_port=hc,
        **kw,
    )


def udp(name: str = "dns", ip: str = "10.96.0.10", np: int = 0, **kw: Any) -> Service:
    stype = ServiceType.NODE_PORT if np else ServiceType.CLUSTER_IP
    return Service("default", name, stype, (ip,), (dns_port(np),), **kw)


def ep(ip: str, node: str = NODE, ready: bool = True, **kw: Any) -> ViewEndpoint:
    return ViewEndpoint(
        ip,
        (DNS_ENDPOINT_PORT, HTTP_ENDPOINT_PORT),
        node=node,
        ready=ready,
        serving=True,
        terminating=not ready,
        internal=kw.pop("internal", True),
        external=kw.pop("external", True),
    )


def view(*pairs: tuple[Service, list[ViewEndpoint]], node: bool = True) -> View[ViewEndpoint]:
    v = objects.view(*pairs)
    if node:
        v.nodes[NODE] = Node(NODE, ("192.168.0.10",))
    return v


def event(
    new: View[ViewEndpoint], old: View[ViewEndpoint] | None = None, seq: int = 1
) -> Applied[ViewEndpoint]:
    """A snapshot of ``new`` (no ``old``), or the delta from ``old`` to ``new``."""
    if old is None:
        return Applied("snapshot", "e1", seq, new, ())
    ops: tuple[Op[ViewEndpoint], ...] = tuple(diff(old, new))
    return Applied("delta", "e1", seq, new, ops)


def make_agent(
    bus: Bus,
    backend: Backend,
    *,
    hooks: Sequence[SyncHook] = (),
    clock: Clock = SYSTEM,
    settings: AgentSettings = DEFAULT_SETTINGS,
    registry: CollectorRegistry | None = None,
) -> Agent:
    """An agent for ``NODE``, wired by :mod:`kpng_agent.wiring` as ``kpng-agent`` wires it."""
    parts = build_parts(bus, NODE, backend, settings, clock, registry)
    return build_agent(bus, backend, parts, hooks)
