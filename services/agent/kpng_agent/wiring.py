"""What an agent is made of, built in one place: the composition root's (``main``) and tests'.

The bus client, proxy health, metrics (and the collectors reading the client and the
backend), the clock: built first, since the sync hooks and HTTP servers share them, then
passed with the hooks into :class:`~kpng_agent.agent.Agent`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Gauge

from kpng.bus.casts import CastStats
from kpng.bus.client import NodeViewClient
from kpng.bus.protocol import Bus
from kpng.dataplane.backend import Backend
from kpng.dataplane.health import ProxyHealth, no_local_endpoints
from kpng.runtime.clock import SYSTEM, Clock
from kpng.runtime.metrics import LabelledGaugeCollector, PermissionViolations, StatsCollector
from kpng.runtime.proxymetrics import ProxyMetrics, family_label
from kpng_agent.agent import DEFAULT_SETTINGS, Agent, AgentSettings, SyncHook


@dataclass(frozen=True, slots=True)
class Parts:
    """An agent's collaborators besides its backend and hooks."""

    node: str
    client: NodeViewClient
    health: ProxyHealth
    metrics: ProxyMetrics
    registry: CollectorRegistry
    clock: Clock
    settings: AgentSettings


def build_parts(
    bus: Bus,
    node: str,
    backend: Backend,
    settings: AgentSettings = DEFAULT_SETTINGS,
    clock: Clock = SYSTEM,
    registry: CollectorRegistry | None = None,
) -> Parts:
    registry = registry if registry is not None else CollectorRegistry()
    client = NodeViewClient(bus, node, clock=clock)
    parts = Parts(
        node,
        client,
        ProxyHealth(timeout=2 * settings.sync_period),
        ProxyMetrics(registry),
        registry,
        clock,
        settings,
    )
    register_collectors(registry, node, client, backend)
    registry.register(PermissionViolations(lambda: bus.permission_violations))
    return parts


def register_collectors(
    registry: CollectorRegistry, node: str, client: NodeViewClient, backend: Backend
) -> None:
    """The agent's metrics read at scrape time from the view, the backend and the client."""
    registry.register(
        LabelledGaugeCollector(
            "kubeproxy_sync_proxy_rules_no_local_endpoints_total",
            "Service ports with a Local traffic policy and no endpoint on this node",
            ("ip_family", "traffic_policy"),
            lambda: {
                (family_label(f), policy): n
                for (f, policy), n in no_local_endpoints(client.view, node).items()
            },
        )
    )
    conflicts = Gauge(
        "kpng_agent_service_ip_conflicts",
        "IP:ports (and node ports) that several services claim, as last programmed: one "
        "service keeps each, the others lose only that IP:port",
        registry=registry,
    )
    conflicts.set_function(lambda: len(backend.conflicts))
    # kpng_agent_bus_*: the bus client's snapshots, deltas, resyncs, malformed messages
    registry.register(StatsCollector("kpng_agent_bus", lambda: client.stats))
    # kpng_agent_bus_cast_malformed_total: what came on a cast's subject and was not its chunk
    casts = client.casts
    registry.register(
        StatsCollector("kpng_agent_bus_cast", lambda: casts.stats if casts else CastStats())
    )


def build_agent(bus: Bus, backend: Backend, parts: Parts, hooks: Sequence[SyncHook] = ()) -> Agent:
    return Agent(
        bus,
        parts.client,
        backend,
        health=parts.health,
        metrics=parts.metrics,
        hooks=hooks,
        clock=parts.clock,
        settings=parts.settings,
    )
