"""Prometheus metrics shared by kpng's services: ``kpng_*`` names for the bus and the fan-out
(kube-proxy's names for what an agent programs: :mod:`kpng.runtime.proxymetrics`).

Every metric lives in a :class:`~prometheus_client.CollectorRegistry` the caller owns (never
the global registry), so tests and several components in one process do not collide.

    registry = CollectorRegistry()
    bus = BusMetrics(registry)
    bus.received("delta", len(data))
    body, content_type = render(registry)

Counters that services already keep in plain dataclasses (the client's ``ClientStats``, the
fan-out's ``FanoutStats``) are exported at scrape time by :class:`StatsCollector` instead of
being counted twice. :func:`serve` answers a few more paths beside ``/metrics`` when asked
(a ``/readyz``), on the same listener.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    generate_latest,
    make_wsgi_app,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# 1 ms x 2^0..14, as kube-proxy's sync_proxy_rules_duration_seconds
SYNC_BUCKETS = tuple(0.001 * 2**i for i in range(15))
# network programming: from milliseconds (kpng's target) to kube-proxy's minutes
LATENCY_BUCKETS = (*(0.001 * 2**i for i in range(16)), 60.0, 120.0, 300.0)


class BusMetrics:
    """Messages and bytes through the bus, by direction and message kind, and the failures
    a bus endpoint counts: malformed messages, resyncs, snapshot requests."""

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ["direction", "kind"]
        self.messages = Counter(
            "kpng_bus_messages_total",
            "Bus messages by direction and kind",
            labels,
            registry=registry,
        )
        self.bytes = Counter(
            "kpng_bus_bytes_total",
            "Bus payload bytes by direction and kind",
            labels,
            registry=registry,
        )
        self.malformed = Counter(
            "kpng_bus_malformed_messages_total",
            "Messages rejected by the decoder",
            ["subject"],
            registry=registry,
        )
        self.resyncs = Counter(
            "kpng_bus_resyncs_total",
            "View resyncs (gap, epoch change, reconnect...)",
            ["view"],
            registry=registry,
        )
        self.snapshot_requests = Counter(
            "kpng_bus_snapshot_requests_total",
            "Snapshot requests sent or served",
            ["direction"],
            registry=registry,
        )

    def received(self, kind: str, size: int) -> None:
        self.messages.labels("in", kind).inc()
        self.bytes.labels("in", kind).inc(size)

    def sent(self, kind: str, size: int) -> None:
        self.messages.labels("out", kind).inc()
        self.bytes.labels("out", kind).inc(size)


class StatsCollector(Collector):
    """Exports a stats dataclass at scrape time: each numeric field ``f`` of ``read()`` becomes
    ``<prefix>_<f>_total`` (a counter) or, if listed in ``gauges``, ``<prefix>_<f>``."""

    def __init__(
        self,
        prefix: str,
        read: Callable[[], Any],
        labels: Mapping[str, str] | None = None,
        gauges: frozenset[str] = frozenset(),
    ) -> None:
        self.prefix = prefix
        self.read = read
        self.labels = dict(labels or {})
        self.gauges = gauges

    def collect(self) -> Iterator[Metric]:
        stats = self.read()
        names = getattr(stats, "__dataclass_fields__", {})
        keys, values = list(self.labels), list(self.labels.values())
        for name in names:
            value = getattr(stats, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            family: CounterMetricFamily | GaugeMetricFamily
            if name in self.gauges:
                family = GaugeMetricFamily(f"{self.prefix}_{name}", name, labels=keys)
            else:
                family = CounterMetricFamily(f"{self.prefix}_{name}", name, labels=keys)
            family.add_metric(values, value)
            yield family


class LabelledGaugeCollector(Collector):
    """A gauge computed at scrape time, one sample per key of ``read()`` (e.g. kube-proxy's
    ``sync_proxy_rules_no_local_endpoints_total{ip_family,traffic_policy}``), so that nothing
    is computed per sync. With one label a key is its value; with several, a tuple of them."""

    def __init__(
        self,
        name: str,
        documentation: str,
        label: str | tuple[str, ...],
        read: Callable[[], Mapping[Any, float]],
    ) -> None:
        self.name, self.documentation, self.read = name, documentation, read
        self.labels = [label] if isinstance(label, str) else list(label)

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(self.name, self.documentation, labels=self.labels)
        for key, sample in sorted(self.read().items()):
            family.add_metric([key] if isinstance(key, str) else list(key), sample)
        yield family


def render(registry: CollectorRegistry) -> tuple[bytes, str]:
    """The registry in Prometheus text format, and its content type."""
    return generate_latest(registry), CONTENT_TYPE_LATEST


@dataclass(frozen=True, slots=True)
class PageAnswer:
    """What a page served beside ``/metrics`` answers (see :func:`serve`)."""

    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"


# called in the server's thread at each GET: it must only read state, never block
Page = Callable[[], PageAnswer]


def serve(
    registry: CollectorRegistry,
    host: str,
    port: int,
    pages: Mapping[str, Page] | None = None,
) -> tuple[WSGIServer, threading.Thread]:
    """Serve ``/metrics`` on ``host:port`` from a daemon thread (for services without an HTTP
    server of their own, e.g. behind ``--metrics-bind-address``), and a GET of each path of
    ``pages`` (e.g. ``{"/readyz": check}``) with what its function answers. Any other path is
    the metrics, as prometheus_client serves them. Call ``server.shutdown()``."""
    family, address = _best_family(host, port)
    server_class = type(
        "MetricsServer",
        (ThreadingMixIn, WSGIServer),
        {"daemon_threads": True, "address_family": family},
    )
    app = _with_pages(make_wsgi_app(registry), dict(pages or {}))
    server: WSGIServer = make_server(address, port, app, server_class, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
    thread.start()
    return server, thread


def _with_pages(metrics: WSGIApplication, pages: Mapping[str, Page]) -> WSGIApplication:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        page = pages.get(environ.get("PATH_INFO", ""))
        if page is None or environ.get("REQUEST_METHOD") != "GET":
            return metrics(environ, start_response)
        answer = page()
        status = HTTPStatus(answer.status)
        headers = [
            ("Content-Type", answer.content_type),
            ("Content-Length", str(len(answer.body))),
            ("Cache-Control", "no-store"),
        ]
        start_response(f"{status.value} {status.phrase}", headers)
        return [answer.body]

    return app


def _best_family(host: str, port: int) -> tuple[socket.AddressFamily, str]:
    """The address family of ``host`` (IPv4 or IPv6), as prometheus_client picks it."""
    info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _, _, _, address = info[0]
    return family, str(address[0])


class _QuietHandler(WSGIRequestHandler):
    """No access log on stderr (a probe every few seconds)."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


class PermissionViolations(Collector):
    """``kpng_bus_permission_violations_total``: publishes and subscriptions of this
    component's bus connection that nats-server refused (its role does not allow them)."""

    def __init__(self, read: Callable[[], int]) -> None:
        self.read = read

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "kpng_bus_permission_violations",
            "Publishes and subscriptions the NATS server refused to this component's role",
        )
        family.add_metric([], self.read())
        yield family
