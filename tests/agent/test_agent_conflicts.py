"""An IP:port two services claim shows in the agent's metrics and status, and clears."""

from __future__ import annotations

import gc

from prometheus_client import CollectorRegistry

from kpng.bus.consumer import Applied
from kpng.bus.fake import FakeServer
from kpng.dataplane.nft.fake import FakeNftables
from kpng.model import Service, ServicePort, ServiceType, TransportProtocol
from kpng.runtime.metrics import render
from kpng_agent.backends.nftables import NftablesBackend, Settings
from tests.agent.helpers import NODE, ep, make_agent, view

EXT = "203.0.113.10"


def web(name: str, cluster_ip: str) -> Service:
    port = (ServicePort("http", TransportProtocol.TCP, 80, 8080),)
    return Service("default", name, ServiceType.CLUSTER_IP, (cluster_ip,), port, (EXT,))


def gauge(registry: CollectorRegistry) -> str:
    body, _ = render(registry)
    [line] = [x for x in body.decode().splitlines() if x.startswith("kpng_agent_service_ip_")]
    return line


async def test_a_conflict_is_counted_in_metrics_and_status_and_clears() -> None:
    bus = FakeServer().connect()
    backend = NftablesBackend(Settings(NODE, families=(4,), netlink=False), FakeNftables(), list)
    registry = CollectorRegistry()
    agent = make_agent(bus, backend, registry=registry)
    a, b = web("a", "10.96.0.1"), web("b", "10.96.0.2")
    try:
        both = view((a, [ep("10.244.1.5")]), (b, [ep("10.244.1.6")]))
        assert await agent._program(Applied("snapshot", "e1", 1, both, ()), full=True)
        assert agent.status().counts["conflicts"] == 1
        assert gauge(registry) == "kpng_agent_service_ip_conflicts 1.0"
        only_b = view((b, [ep("10.244.1.6")]))
        assert await agent._program(Applied("snapshot", "e1", 2, only_b, ()), full=True)
        assert agent.status().counts["conflicts"] == 0
        assert gauge(registry) == "kpng_agent_service_ip_conflicts 0.0"
    finally:
        gc.unfreeze()
