"""The agent's loop: node view events from the bus client into the backend, and status out.

A failed apply is retried with backoff as a full sync of the latest view, and shows in the
status until it succeeds. While the watcher is away the backend keeps what it programmed.
The bookkeeping is :class:`~kpng_agent.state.AgentState`'s; this module only does the I/O
it decides (backend, metrics, hooks, status, waits). Its collaborators are built by
:mod:`kpng_agent.wiring`.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from kpng.bus.client import NodeViewClient
from kpng.bus.codec import Status, encode
from kpng.bus.consumer import Applied
from kpng.bus.protocol import Bus, BusError
from kpng.dataplane.backend import Backend, failed_families, family_seconds
from kpng.dataplane.health import ProxyHealth
from kpng.diff import families_touched
from kpng.model import ViewEndpoint
from kpng.runtime.clock import SYSTEM, Clock
from kpng.runtime.proxymetrics import ProxyMetrics
from kpng_agent.state import AgentState

log = logging.getLogger(__name__)


class SyncHook(Protocol):
    """Work after each successful sync (conntrack cleanup, healthCheckNodePort servers).
    A hook's failure is logged; it never fails the sync."""

    async def synced(self, event: Applied[ViewEndpoint], full: bool) -> None: ...


@dataclass(frozen=True, slots=True)
class AgentSettings:
    status_interval: float = 5.0  # seconds between periodic status reports
    sync_period: float = 30.0  # caps the retry backoff; 2 x this pending makes it unhealthy


DEFAULT_SETTINGS = AgentSettings()


class Agent:
    def __init__(
        self,
        bus: Bus,
        client: NodeViewClient,
        backend: Backend,
        *,
        health: ProxyHealth,
        metrics: ProxyMetrics,
        hooks: Sequence[SyncHook] = (),
        clock: Clock = SYSTEM,
        settings: AgentSettings = DEFAULT_SETTINGS,
    ) -> None:
        self.bus = bus
        self.client = client
        self.node = client.node
        self.backend = backend
        self.health = health
        self.metrics = metrics
        self.hooks = tuple(hooks)
        self.clock = clock
        self.settings = settings
        self.state = AgentState(sync_period=settings.sync_period)
        self._retry = asyncio.Event()  # set while self.state.retrying

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._consume())
            tasks.create_task(self._retry_loop())
            tasks.create_task(self._status_loop())

    async def _consume(self) -> None:
        async for event in self.client:
            full = self._queue(event)
            if not self.state.retrying:
                await self._program(event, full)

    def _queue(self, event: Applied[ViewEndpoint]) -> bool:
        """A change has come: pending until programmed (health, metrics). Whether it needs a
        full sync."""
        full = self.state.received(event)
        now = self.clock.time()
        self.health.queued(now)
        # a delta is queued for the families it touches, as kube-proxy's proxiers
        # (kpng.diff.families_touched): another's has nothing pending then, and its last
        # sync may stay as it was without a stale-rules alert
        self.metrics.queued(now, None if full else families_touched(event.ops))
        self.metrics.pending(*self.state.unprogrammed)
        return full

    async def _program(self, event: Applied[ViewEndpoint], full: bool) -> bool:
        started = self.clock.monotonic()
        try:
            await self.backend.program(event, full)
        except Exception as exc:  # a backend failure must never stop the agent
            self.state.failed(f"{type(exc).__name__}: {exc}")
            self.metrics.failed(failed_families(self.backend, self.metrics.families))
            log.error("programming seq %d failed (%s); will retry", event.seq, exc)
            self._retry.set()
            await self.publish_status()
            return False
        duration = self.clock.monotonic() - started
        changes = self.state.succeeded(event, self.clock.time(), duration)
        self._retry.clear()
        self._record(event, full, changes)
        if full:
            # the view and the dataplane's plan (10^6 objects at 10k services) live until the
            # next full sync: keep the cyclic collector from walking them on every full pass
            # (pauses of 0.1-1 s in the delta path); reference counting still frees them
            gc.freeze()
        await self._run_hooks(event, full)
        log.debug("applied %s epoch %s seq %d", event.kind, event.epoch, event.seq)
        await self.publish_status()
        return True

    def _record(self, event: Applied[ViewEndpoint], full: bool, changes: tuple[int, int]) -> None:
        now = self.state.last_sync or self.clock.time()
        self.health.updated(now)
        self.health.saw_view(event.view, self.node)
        seconds = family_seconds(
            self.backend, self.state.sync_duration or 0.0, self.metrics.families
        )
        self.metrics.synced(now, seconds, full, event.trigger_time)
        self.metrics.changes(*changes)
        self.metrics.pending(0, 0)

    async def _run_hooks(self, event: Applied[ViewEndpoint], full: bool) -> None:
        for hook in self.hooks:
            try:
                await hook.synced(event, full)
            except Exception as exc:  # a hook must never fail the sync
                log.error("after seq %d, %s failed: %s", event.seq, type(hook).__name__, exc)

    async def _retry_loop(self) -> None:
        while True:
            await self._retry.wait()
            await self.clock.sleep(self.state.retry_delay or 0.0)
            pending = self.state.to_retry()
            if pending is None:
                self._retry.clear()
            else:
                await self._program(pending, full=True)

    async def _status_loop(self) -> None:
        while True:
            await self.clock.sleep(self.settings.status_interval)
            await self.publish_status()

    def status(self) -> Status:
        now = self.clock.time()
        consumer = self.client.consumer
        at = (consumer.epoch, consumer.seq) == (self.state.epoch, self.state.seq)
        return self.state.status(
            self.node,
            self.backend.name,
            counts={
                **self.client.view.counts(),
                "permission_violations": self.bus.permission_violations,
            },
            client=self.client.stats,
            conflicts=len(self.backend.conflicts),
            synced=self.client.consumer.synced,
            proxy_healthy=self.health.healthy(now),
            now=now,
            digest=consumer.digest() if at and consumer.trusted else "",
        )

    async def publish_status(self) -> None:
        try:
            await self.bus.publish(self.bus.subjects.node_status(self.node), encode(self.status()))
        except BusError as exc:
            log.warning("status not published: %s", exc)
