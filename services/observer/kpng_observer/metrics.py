"""The observer's ``/metrics``: its bus traffic, its global-view client, and the cluster as
it sees it (node states, lag, status age, network-programming latency per node)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from kpng.bus.client import ClientStats
from kpng.runtime.metrics import LATENCY_BUCKETS, BusMetrics, StatsCollector
from kpng_observer.state import ObserverState

STATES = ("ok", "syncing", "lagging", "diverged", "failed", "silent", "unknown")


class ClusterCollector(Collector):
    def __init__(self, state: ObserverState, clock: Callable[[], float]) -> None:
        self.state = state
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        now = self.clock()
        nodes = GaugeMetricFamily("kpng_observer_nodes", "Nodes by state", labels=["state"])
        lag = GaugeMetricFamily(
            "kpng_observer_node_lag_seconds", "How long a node has been behind", labels=["node"]
        )
        age = GaugeMetricFamily(
            "kpng_observer_node_status_age_seconds", "Age of a node's last status", labels=["node"]
        )
        applied = GaugeMetricFamily(
            "kpng_observer_node_applied_seq", "Seq a node's agent applied", labels=["node"]
        )
        counts = dict.fromkeys(STATES, 0)
        for name, progress in sorted(self.state.nodes.items()):
            counts[progress.state(now, self.state.silent_after, self.state.lag_after)] += 1
            behind = progress.behind_since
            lag.add_metric([name], 0.0 if behind is None else now - behind)
            if progress.status_received_at is not None:
                age.add_metric([name], now - progress.status_received_at)
            if progress.status is not None:
                applied.add_metric([name], progress.status.seq)
        for state, count in counts.items():
            nodes.add_metric([state], count)
        events = GaugeMetricFamily("kpng_observer_last_event_id", "Id of the latest event")
        events.add_metric([], self.state.events.last_id)
        services = GaugeMetricFamily("kpng_observer_services", "Services in the global view")
        services.add_metric([], len(self.state.view.services))
        diverged = GaugeMetricFamily(
            "kpng_observer_diverged", "Times a node's view was seen to differ from the watcher's"
        )
        diverged.add_metric([], self.state.diverged)
        yield from (nodes, lag, age, applied, events, services, diverged)
        yield from self._trust(now)

    def _trust(self, now: float) -> Iterator[Metric]:
        state = self.state
        up = GaugeMetricFamily("kpng_observer_watcher_up", "1 while the watcher ticks")
        up.add_metric([], 1 if state.watcher_state(now) == "ok" else 0)
        yield up
        for name, value, text in (
            ("positions_ahead", state.ahead, "Ticks, deltas, statuses beyond the published seq"),
            ("untrusted_statuses", state.untrusted_statuses, "Statuses on another's subject"),
            ("unknown_nodes_dropped", state.unknown_nodes_dropped, "Past the unknown bound"),
        ):
            counter = CounterMetricFamily(f"kpng_observer_{name}", text)
            counter.add_metric([], value)
            yield counter


class ObserverMetrics:
    def __init__(
        self,
        state: ObserverState,
        client_stats: Callable[[], ClientStats],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = CollectorRegistry()
        self.bus = BusMetrics(self.registry)
        self.latency = Histogram(
            "kpng_network_programming_duration_seconds",
            "From the Kubernetes change to a node's agent applying it, as agents report it",
            ["node"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(StatsCollector("kpng_client", client_stats, {"view": "global"}))
        self.registry.register(ClusterCollector(state, clock))

    def observe_latency(self, node: str, samples: list[float]) -> None:
        for seconds in samples:
            self.latency.labels(node).observe(seconds)
