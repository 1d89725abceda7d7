"""The real processes against the simulator: nats-server, ``kpng-watcher --source kube``, agents.

Built on :class:`tests.integration.harness.Deployment`; the simulator runs in the test's
event loop, so every wait here is async (a blocking sleep would stall the API server).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from kpng.bus.codec import Delta, MalformedMessage, decode
from kpng.bus.nats import connect
from kpng.bus.protocol import Bus, Subscription
from kpng.diff import DeleteEndpoint, DeleteService
from kpng.fanout.cluster import ClusterState
from kpng.model import Object
from kpng.observe.viewjson import view_to_json
from kpng.parse import Ignored, InvalidObject, parse_endpoint_slice, parse_node, parse_service
from kpng_apisim import ApiSimulator
from tests.integration.harness import Deployment, strip

from .objects import node


async def eventually(what: str, check: Callable[[], Any], timeout: float = 10.0) -> None:
    """Poll ``check`` (without blocking the loop the simulator runs in) until it holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


def expected_view(sim: ApiSimulator, node_name: str, proxy_name: str = "") -> dict[str, Any]:
    """What ``node_name``'s dump must show for the objects the simulator holds now."""
    parsers = (
        ("services", partial(parse_service, proxy_name=proxy_name)),
        ("endpointslices", partial(parse_endpoint_slice, proxy_name=proxy_name)),
        ("nodes", parse_node),
    )
    objects: list[Object] = []
    for resource, parse in parsers:
        for raw in sim.store.list(resource)[1]:
            try:
                parsed = parse(raw)
            except InvalidObject:
                continue
            if not isinstance(parsed, Ignored):
                objects.append(parsed)
    state = ClusterState()
    state.replace(objects)
    return strip(view_to_json(node_name, "", 0, state.node_view(node_name)))


@dataclass
class KubeDeployment:
    sim: ApiSimulator
    base: Deployment
    proxy_name: str = ""

    def start(self, *nodes: str, proxy_name: str = "") -> None:
        """nats-server, the watcher on the simulator, one dump agent per node."""
        self.proxy_name = proxy_name
        self.base.start_nats()
        extra = ("--kubeconfig", str(self.sim.kubeconfig_path), "--watch-idle-timeout", "2")
        if proxy_name:
            extra += ("--service-proxy-name", proxy_name)
        self.base.start_watcher(source="kube", extra_args=extra)
        for name in nodes:
            self.base.start_agent(name)

    async def start_logged(self, node_name: str, delta_log: DeltaLog) -> None:
        """``node_name`` in the API, then ``start(node_name)``, ``delta_log`` following it."""
        self.sim.store.create("nodes", node(node_name))
        self.start(node_name)
        await delta_log.start(self.base.url, node_name)

    def dump(self, node_name: str) -> dict[str, Any] | None:
        return self.base.dump(node_name)

    def converged(self, node_name: str) -> bool:
        dump = self.base.dump(node_name)
        return dump is not None and strip(dump) == expected_view(
            self.sim, node_name, self.proxy_name
        )

    async def wait_converged(self, *nodes: str, timeout: float = 20.0) -> None:
        for name in nodes:
            what = f"{name}'s dump to equal its view"
            await eventually(what, partial(self.converged, name), timeout)

    def watcher_log(self) -> str:
        return self.base.group.children["watcher"].log()


@dataclass
class DeltaLog:
    """Every delta published for one node, decoded (ticks and snapshots left out)."""

    deltas: list[Delta] = field(default_factory=list)
    bus: Bus | None = None
    subscription: Subscription | None = None

    async def start(self, url: str, node_name: str) -> None:
        self.bus = await connect(url, retry_forever=False)
        subject = self.bus.subjects.node_delta(node_name)
        self.subscription = await self.bus.subscribe(subject, self._on_message)

    async def _on_message(self, data: bytes, subject: str, reply: str) -> None:
        try:
            message = decode(data)
        except MalformedMessage:
            return
        if isinstance(message, Delta):
            self.deltas.append(message)

    def deleted(self) -> set[str]:
        """Services that lost their definition or an endpoint, as ``-svc key`` / ``-ep key``."""
        out: set[str] = set()
        for delta in self.deltas:
            for op in delta.ops:
                if isinstance(op, DeleteService):
                    out.add(f"-svc {op.key}")
                elif isinstance(op, DeleteEndpoint):
                    out.add(f"-ep {op.service}")
        return out

    async def close(self) -> None:
        if self.bus is not None:
            await self.bus.close()
