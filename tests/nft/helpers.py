"""Building node views and tracing them through the fake nftables."""

from __future__ import annotations

import asyncio
from typing import Any

from kpng.dataplane.nft.fake import FakeNftables
from kpng.dataplane.nft.planner import Planner
from kpng.dataplane.nft.skeleton import Config
from kpng.dataplane.nft.tracer import Trace, TracedPacket, Tracer
from kpng.diff import View
from kpng.model import (
    EndpointPort,
    Service,
    ServicePort,
    ServiceType,
    TransportProtocol,
    ViewEndpoint,
)
from tests.objects import HTTP
from tests.objects import view as view  # the tests build their views from here

NODE = "node-a"
NODE_IP = "192.168.0.10"
POD_CIDR = "10.244.0.0/16"
CONFIG = Config(node=NODE, pod_cidrs=(POD_CIDR,), nodeport_cidrs=(f"{NODE_IP}/32",))


def svc(name: str, ip: str = "10.96.0.10", port: int = 80, **kw: Any) -> Service:
    ports = kw.pop(
        "ports",
        (
            ServicePort(
                "http", TransportProtocol(kw.pop("protocol", "TCP")), port, 8080, kw.pop("np", 0)
            ),
        ),
    )
    stype = kw.pop(
        "type", ServiceType.NODE_PORT if any(p.node_port for p in ports) else "ClusterIP"
    )
    return Service("default", name, ServiceType(stype), (ip,), tuple(ports), **kw)


def ep(
    ip: str,
    node: str = "node-b",
    internal: bool = True,
    external: bool = True,
    ports: tuple[EndpointPort, ...] = (),
) -> ViewEndpoint:
    ports = ports or HTTP
    return ViewEndpoint(ip, ports, node=node, internal=internal, external=external)


class Harness:
    def __init__(self, config: Config = CONFIG) -> None:
        self.config = config
        self.nft = FakeNftables()
        self.planner = Planner(config)
        self.view: View[ViewEndpoint] = View()

    def full(self, v: View[ViewEndpoint]) -> int:
        async def go() -> int:
            tx = self.planner.plan_full(v, await self.nft.read(self.config.nft_table))
            await self.nft.run(tx)
            return len(tx)

        self.view = v
        return asyncio.run(go())

    def trace(
        self,
        src: str,
        dst: str,
        dport: int,
        proto: str = "tcp",
        origin: str = "outside",
        mark: int = 0,
        ct_mark: int = 0,
        iif: str = "",
    ) -> Trace:
        tracer = Tracer(self.nft, self.config, (NODE_IP,))
        packet = TracedPacket(src, dst, proto, dport, origin, mark, ct_mark, iif)  # type: ignore[arg-type]
        return tracer.trace(packet)
