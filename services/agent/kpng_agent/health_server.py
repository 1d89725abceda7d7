"""The agent's HTTP endpoints, as kube-proxy's: ``/healthz`` and ``/livez`` on the healthz
address, ``/metrics`` and ``/proxyMode`` on the metrics address, and one server per
healthCheckNodePort, opened and closed as services come and go."""

from __future__ import annotations

import logging
from collections.abc import Callable

from prometheus_client import CollectorRegistry

from kpng.bus.consumer import Applied
from kpng.dataplane.health import (
    HealthService,
    ProxyHealth,
    Response,
    health_service,
    healthz,
    service_health,
)
from kpng.diff import service_keys
from kpng.model import ViewEndpoint
from kpng.runtime.clock import SYSTEM, Clock
from kpng.runtime.metrics import render
from kpng.runtime.proxymetrics import ProxyMetrics
from kpng_agent.httpserve import NOT_FOUND, HttpServer

log = logging.getLogger(__name__)
NOT_HEALTHY = Response(503, b"{}")


def proxy_handler(
    health: ProxyHealth, clock: Clock, metrics: ProxyMetrics | None = None
) -> Callable[[str], Response]:
    """``/healthz`` and ``/livez``, each answer counted by status (``metrics``)."""

    def handle(path: str) -> Response:
        if path not in ("/healthz", "/livez"):
            return NOT_FOUND
        answer = healthz(health, clock.time(), check_node=path == "/healthz")
        if metrics is not None:
            counter = metrics.healthz if path == "/healthz" else metrics.livez
            counter.labels(str(answer.status)).inc()
        return answer

    return handle


def metrics_handler(registry: CollectorRegistry, mode: str) -> Callable[[str], Response]:
    def handle(path: str) -> Response:
        if path == "/metrics":
            body, content_type = render(registry)
            return Response(200, body, content_type)
        if path == "/proxyMode":
            return Response(200, mode.encode(), "text/plain; charset=utf-8")
        return NOT_FOUND

    return handle


class HealthCheckServers:
    """A sync hook: keeps one HTTP server per healthCheckNodePort of the view."""

    def __init__(
        self,
        node: str,
        health: ProxyHealth,
        host: str = "0.0.0.0",
        clock: Clock = SYSTEM,
    ) -> None:
        self.node, self.health, self.host, self.clock = node, health, host, clock
        self.by_key: dict[str, tuple[int, HealthService]] = {}
        self.servers: dict[int, HttpServer] = {}

    def subject(self, port: int) -> HealthService | None:
        found = [hs for p, hs in self.by_key.values() if p == port]
        return min(found, key=lambda hs: (hs.namespace, hs.name)) if found else None

    def respond(self, port: int) -> Response:
        hs = self.subject(port)
        if hs is None:
            return NOT_HEALTHY
        return service_health(hs, self.health.healthy(self.clock.time()))

    def _handler(self, port: int) -> Callable[[str], Response]:
        return lambda _path: self.respond(port)

    async def synced(self, event: Applied[ViewEndpoint], full: bool) -> None:
        keys = set(event.view.services) | set(self.by_key) if full else service_keys(event.ops)
        for key in keys:
            port, hs = health_service(event.view, key, self.node)
            if port:
                self.by_key[key] = (port, hs)
            else:
                self.by_key.pop(key, None)
        await self._open_and_close()

    async def _open_and_close(self) -> None:
        wanted = {port for port, _ in self.by_key.values()}
        for port in sorted(set(self.servers) - wanted):
            await self.servers.pop(port).close()
            log.info("closed healthCheckNodePort %d", port)
        for port in sorted(wanted - set(self.servers)):
            server = HttpServer(self.host, port, self._handler(port))
            try:
                await server.start()
            except OSError as exc:  # retried on the next sync
                log.error("healthCheckNodePort %d not opened: %s", port, exc)
                continue
            self.servers[port] = server
            log.info("opened healthCheckNodePort %d", port)

    async def close(self) -> None:
        for server in self.servers.values():
            await server.close()
        self.servers.clear()
