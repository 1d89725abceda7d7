"""The agent's loop: node view events from the bus client into the backend, and status out.

A failed apply is retried with backoff as a full sync of the latest view, and shows in the
status until it succeeds. While the watcher is away the backend keeps what it programmed.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from prometheus_client import CollectorRegistry, Gauge

from kpng import __version__
from kpng.bus.client import NodeViewClient
from kpng.bus.codec import Status, encode
from kpng.bus.consumer import Applied
from kpng.bus.protocol import Bus, BusError
from kpng.dataplane.backend import Backend
from kpng.dataplane.health import ProxyHealth, no_local_endpoints
from kpng.diff import DeleteEndpoint, DeleteService, Op, SetEndpoint, SetService
from kpng.model import ViewEndpoint
from kpng.runtime.metrics import LabelledGaugeCollector, ProxyMetrics, StatsCollector

log = logging.getLogger(__name__)


class SyncHook(Protocol):
    """Work after each successful sync (conntrack cleanup, healthCheckNodePort servers).
    A hook's failure is logged; it never fails the sync."""

    async def synced(self, event: Applied[ViewEndpoint], full: bool) -> None: ...


def count_changes(ops: Iterable[Op[ViewEndpoint]]) -> tuple[int, int]:
    """(service changes, endpoint changes) of a batch."""
    services = endpoints = 0
    for op in ops:
        if isinstance(op, SetService | DeleteService):
            services += 1
        elif isinstance(op, SetEndpoint | DeleteEndpoint):
            endpoints += 1
    return services, endpoints


@dataclass(slots=True)
class AgentState:
    epoch: str = ""
    seq: int = -1
    last_sync: float | None = None
    sync_duration: float | None = None
    errors: list[str] = field(default_factory=list)
    pending: Applied[ViewEndpoint] | None = None  # the latest event not yet programmed
    programmed: int = 0
    failures: int = 0
    # (applied at, seconds from the delta's trigger to applied), reported in the status
    latency: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=32))


class Agent:
    def __init__(
        self,
        bus: Bus,
        node: str,
        backend: Backend,
        status_interval: float = 5.0,
        clock: Callable[[], float] = time.time,
        sync_period: float = 30.0,
        hooks: Sequence[SyncHook] = (),
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.bus = bus
        self.node = node
        self.backend = backend
        self.status_interval = status_interval
        self.clock = clock
        self.client = NodeViewClient(bus, node)
        self.state = AgentState()
        self._retry = asyncio.Event()
        self.sync_period = sync_period
        self.health = ProxyHealth(timeout=2 * sync_period)
        self.hooks = list(hooks)
        self.registry = registry if registry is not None else CollectorRegistry()
        self.metrics = ProxyMetrics(self.registry)
        self.registry.register(
            LabelledGaugeCollector(
                "kubeproxy_sync_proxy_rules_no_local_endpoints_total",
                "Services with a Local traffic policy and no endpoint on this node",
                "traffic_policy",
                lambda: no_local_endpoints(self.client.view, node),
            )
        )
        conflicts = Gauge(
            "kpng_agent_service_ip_conflicts",
            "IP:ports (and node ports) that several services claim, as last programmed: one "
            "service keeps each, the others lose only that IP:port",
            registry=self.registry,
        )
        conflicts.set_function(lambda: len(self.backend.conflicts))
        # kpng_agent_bus_*: the bus client's snapshots, deltas, resyncs, malformed messages
        self.registry.register(StatsCollector("kpng_agent_bus", lambda: self.client.stats))

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._consume())
            tasks.create_task(self._retry_loop())
            tasks.create_task(self._status_loop())

    async def _consume(self) -> None:
        async for event in self.client:
            full = event.kind == "snapshot" or self.state.pending is not None
            self.state.pending = event
            now = self.clock()
            self.health.queued(now)
            self.metrics.queued(now)
            if not self._retry.is_set():
                await self._program(event, full)

    async def _program(self, event: Applied[ViewEndpoint], full: bool) -> bool:
        started = time.perf_counter()
        try:
            await self.backend.program(event, full)
        except Exception as exc:  # a backend failure must never stop the agent
            self.state.failures += 1
            self.metrics.sync_failures.inc()
            self.state.errors = [f"{type(exc).__name__}: {exc}"]
            log.error("programming seq %d failed (%s); will retry", event.seq, exc)
            self._retry.set()
            await self.publish_status()
            return False
        self.state.pending = None
        self.state.epoch, self.state.seq = event.epoch, event.seq
        self.state.last_sync = self.clock()
        if event.trigger_time is not None:
            self.state.latency.append(
                (self.state.last_sync, self.state.last_sync - event.trigger_time)
            )
        self.state.sync_duration = time.perf_counter() - started
        self.state.programmed += 1
        self.state.errors = []
        self._record(event, full)
        if full:
            # the view and the dataplane's plan (10^6 objects at 10k services) live until the
            # next full sync: keep the cyclic collector from walking them on every full pass
            # (pauses of 0.1-1 s in the delta path); reference counting still frees them
            gc.freeze()
        await self._run_hooks(event, full)
        log.debug("applied %s epoch %s seq %d", event.kind, event.epoch, event.seq)
        await self.publish_status()
        return True

    def _record(self, event: Applied[ViewEndpoint], full: bool) -> None:
        now = self.state.last_sync or self.clock()
        self.health.updated(now)
        self.health.saw_view(event.view, self.node)
        seconds = self.state.sync_duration or 0.0
        self.metrics.synced(now, seconds, event.trigger_time)
        self.metrics.full_or_partial(full, seconds)
        self.metrics.changes(*count_changes(event.ops))

    async def _run_hooks(self, event: Applied[ViewEndpoint], full: bool) -> None:
        for hook in self.hooks:
            try:
                await hook.synced(event, full)
            except Exception as exc:  # a hook must never fail the sync
                log.error("after seq %d, %s failed: %s", event.seq, type(hook).__name__, exc)

    async def _retry_loop(self) -> None:
        delay = 0.5
        while True:
            await self._retry.wait()
            await asyncio.sleep(delay)
            pending = self.state.pending
            if pending is None or await self._program(pending, full=True):
                self._retry.clear()
                delay = 0.5
            else:
                delay = min(delay * 2, max(self.sync_period, 0.5))

    async def _status_loop(self) -> None:
        while True:
            await asyncio.sleep(self.status_interval)
            await self.publish_status()

    def status(self) -> Status:
        counts = self.client.view.counts()
        return Status(
            node=self.node,
            epoch=self.state.epoch,
            seq=self.state.seq,
            backend=self.backend.name,
            healthy=not self.state.errors
            and self.client.consumer.synced
            and self.health.healthy(self.clock()),
            time=self.clock(),
            version=__version__,
            last_sync=self.state.last_sync,
            sync_duration=self.state.sync_duration,
            counts={
                **counts,
                "resyncs": self.client.stats.resyncs,
                "malformed": self.client.stats.malformed,
                "conflicts": len(self.backend.conflicts),
            },
            errors=tuple(self.state.errors),
            latency=tuple(self.state.latency),
        )

    async def publish_status(self) -> None:
        try:
            await self.bus.publish(self.bus.subjects.node_status(self.node), encode(self.status()))
        except BusError as exc:
            log.warning("status not published: %s", exc)
