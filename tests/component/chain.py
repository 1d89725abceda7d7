"""The whole chain in one process: watcher -> fake bus -> agents -> fake nftables -> tracer.

:func:`build` is the only place components are made (constructors change: adapt it there).
:func:`running` starts a watcher on a source and one agent per node on a
:class:`~kpng.bus.fake.FakeServer`, and stops them all afterwards; run it on the
virtual-time loop (:func:`tests.component.vtime.run_virtual`), where ticks, retries and
backoffs cost no wall time.
"""

from __future__ import annotations

import asyncio
import gc
import ipaddress
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from kpng.bus.fake import FakeBus, FakeServer
from kpng.dataplane.nft.fake import FakeNftables
from kpng.dataplane.nft.tracer import Origin, Trace, TracedPacket, Tracer
from kpng.model import Node, Object
from kpng.parse import Ignored, parse_object
from kpng.runtime.clock import LoopClock
from kpng.source import Delete, Replace, SourceEvent, SourceStats, Synced, Upsert
from kpng.source import Source as SourceProtocol
from kpng_agent.agent import Agent
from kpng_agent.backends.nftables import NftablesBackend, Settings
from kpng_agent.wiring import build_agent, build_parts
from kpng_watcher.publisher import Publisher, PublisherSettings

POD_CIDR = "10.244.0.0/16"
WATCHER = PublisherSettings(coalesce=0.1, tick_interval=1.0, tick_refresh=30.0)


@dataclass(frozen=True, slots=True)
class NodeSpec:
    name: str
    ip: str


class MemorySource:
    """A :class:`kpng.source.Source` in memory: the initial objects, then what a test pushes."""

    def __init__(self, objects: Iterable[Object] = ()) -> None:
        self.stats = SourceStats()
        self._queue: asyncio.Queue[SourceEvent] = asyncio.Queue()
        self.push(Replace(tuple(objects)), Synced())

    def push(self, *events: SourceEvent) -> None:
        for event in events:
            self._queue.put_nowait(event)

    def replace(self, objects: Iterable[Object]) -> None:
        self.push(Replace(tuple(objects)))

    def upsert(self, obj: Object) -> None:
        self.push(Upsert(obj))

    def delete(self, kind: str, key: str) -> None:
        self.push(Delete(kind, key))

    async def events(self) -> AsyncIterator[SourceEvent]:
        while True:
            yield await self._queue.get()


def parse_objects(documents: Iterable[dict[str, Any]]) -> tuple[Object, ...]:
    """Kubernetes objects (as YAML loads them) as kpng's model; fails on an invalid one."""
    parsed = (parse_object(d) for d in documents)
    return tuple(p for p in parsed if not isinstance(p, Ignored))


def nodes_of(objects: Iterable[Object]) -> tuple[NodeSpec, ...]:
    """The nodes to run agents on: each Node object with its first IPv4 address."""
    out = []
    for o in objects:
        if isinstance(o, Node):
            ip = next(a for a in o.addresses if ipaddress.ip_address(a).version == 4)
            out.append(NodeSpec(o.name, ip))
    return tuple(sorted(out, key=lambda n: n.name))


@dataclass(slots=True)
class NodeAgent:
    """One node's agent and the fake nftables it programs."""

    node: NodeSpec
    bus: FakeBus
    nft: FakeNftables
    backend: NftablesBackend
    agent: Agent

    def origin(self, source: str) -> Origin:
        if source == self.node.ip:
            return "node"
        in_pods = ipaddress.ip_address(source) in ipaddress.ip_network(POD_CIDR)
        return "pod" if in_pods else "outside"

    def trace(self, source: str, proto: str, destination: str, port: int) -> Trace:
        """The first packet of a new connection, through this node's programmed table."""
        planner = self.backend.planners[ipaddress.ip_address(destination).version]
        tracer = Tracer(self.nft, planner.config, (self.node.ip,))
        origin = self.origin(source)
        return tracer.trace(TracedPacket(source, destination, proto, port, origin))

    def dump(self) -> str:
        return "".join(self.nft.dump(p.config.nft_table) for p in self.backend.planners.values())


def _addresses(ip: str) -> Callable[[], Sequence[str]]:
    """What the backend finds on the node (its Node object says the same)."""
    return lambda: (ip,)


@dataclass(slots=True)
class Built:
    publisher: Publisher | None
    agents: list[NodeAgent]


def build(server: FakeServer, source: SourceProtocol | None, nodes: Sequence[NodeSpec]) -> Built:
    """The chain's components, on ``server``: a watcher of ``source`` (if any) and an agent
    per node, all on the loop's clock. The one place that calls their constructors."""
    clock = LoopClock()
    publisher = None
    if source is not None:
        publisher = Publisher(server.connect(name="watcher"), source, WATCHER, clock=clock)
    agents = []
    for node in nodes:
        bus = server.connect(name=node.name)
        nft = FakeNftables()
        settings = Settings(node.name, cluster_cidrs=(POD_CIDR,), netlink=False)
        backend = NftablesBackend(settings, nft, _addresses(node.ip))
        parts = build_parts(bus, node.name, backend, clock=clock)
        agent = build_agent(bus, backend, parts)
        agents.append(NodeAgent(node, bus, nft, backend, agent))
    return Built(publisher, agents)


@dataclass(slots=True)
class Chain:
    server: FakeServer
    publisher: Publisher
    agents: dict[str, NodeAgent]
    _tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)

    def __getitem__(self, node: str) -> NodeAgent:
        return self.agents[node]

    def _start(self, name: str, work: Any) -> None:
        self._tasks[name] = asyncio.get_running_loop().create_task(work, name=name)

    def _check_tasks(self) -> None:
        for name, task in self._tasks.items():
            if task.done():
                raise AssertionError(f"{name} ended: {task.exception() or 'returned'}")

    @property
    def now(self) -> float:
        return asyncio.get_running_loop().time()

    async def advance(self, seconds: float) -> None:
        """Let ``seconds`` of (virtual) time pass."""
        await asyncio.sleep(seconds)
        self._check_tasks()

    def converged(self, node: str) -> bool:
        """The node's agent programmed the watcher's latest seq for it, with no retry due."""
        state, pub = self.agents[node].agent.state, self.publisher
        at = (state.epoch, state.seq)
        return pub.synced and state.pending is None and at == (pub.epoch, pub.fanout.seq.get(node))

    async def settle(self, within: float = 5.0) -> float:
        """Wait until what the source said is published and every agent programmed it;
        returns the (virtual) seconds that took."""
        started = self.now
        await self.advance(2 * WATCHER.coalesce)  # what the source just gave is published
        while not all(self.converged(n) for n in self.agents):
            assert self.now - started < within, f"not converged within {within}s: {self.lag()}"
            await self.advance(0.05)
        return self.now - started

    def lag(self) -> dict[str, tuple[str, int, int | None]]:
        seq = self.publisher.fanout.seq
        return {
            n: (a.agent.state.epoch, a.agent.state.seq, seq.get(n)) for n, a in self.agents.items()
        }

    async def restart_watcher(self, source: SourceProtocol) -> Publisher:
        """Stop the watcher and start another (a new epoch) on the same bus server."""
        await self._stop("watcher")
        await self.publisher.bus.close()
        built = build(self.server, source, ())
        assert built.publisher is not None
        self.publisher = built.publisher
        self._start("watcher", self.publisher.run())
        return self.publisher

    async def _stop(self, name: str) -> None:
        task = self._tasks.pop(name)
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task

    async def stop(self) -> None:
        for name in list(self._tasks):
            await self._stop(name)
        await self.publisher.bus.close()
        for a in self.agents.values():
            await a.bus.close()
            await a.backend.close()


@asynccontextmanager
async def running(source: SourceProtocol, nodes: Sequence[NodeSpec]) -> AsyncIterator[Chain]:
    """A watcher of ``source`` and an agent per node, running until the block ends."""
    server = FakeServer()
    built = build(server, source, nodes)
    assert built.publisher is not None
    chain = Chain(server, built.publisher, {a.node.name: a for a in built.agents})
    chain._start("watcher", chain.publisher.run())
    for name, a in chain.agents.items():
        chain._start(f"agent {name}", a.agent.run())
    try:
        yield chain
    finally:
        await chain.stop()
        gc.unfreeze()  # the watcher and agents freeze what they hold
