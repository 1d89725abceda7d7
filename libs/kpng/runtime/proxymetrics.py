"""kube-proxy's metrics, by the names and labels that dashboards already know, for the agent.

As kube-proxy exports them since 1.34: what a sync does is per IP family (label
``ip_family``, ``IPv4`` or ``IPv6``), as kube-proxy runs one proxier per family; the change
counts are not. A kpng full sync programs the families together, each family's part timed
on its own (the backend says how long each took, :func:`kpng.dataplane.backend.family_seconds`);
a delta is queued for, and syncs, the families it touches (an endpoint's change is its own
address family's: :func:`kpng.diff.families_touched`). Every family's series exists from the
start, as kube-proxy's on a dual-stack node.

kube-proxy's ``sync_proxy_rules_nftables_cleanup_failures_total`` is not exported: kpng has no
cleanup pass after the sync (what a sync removes is in its own transaction, so its failure
is a sync failure).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from kpng.runtime.metrics import LATENCY_BUCKETS, SYNC_BUCKETS

FAMILIES = (4, 6)
IP_FAMILY = ["ip_family"]


def family_label(family: int) -> str:
    """kube-proxy's ``ip_family`` label value (Kubernetes' IPFamily): IPv4 or IPv6."""
    return f"IPv{family}"


class ProxyMetrics:
    """kube-proxy's metric names and labels, for the agent (``families``: those it programs)."""

    def __init__(self, registry: CollectorRegistry, families: Iterable[int] = FAMILIES) -> None:
        self.families = tuple(families)

        def histogram(name: str, doc: str, buckets: tuple[float, ...] = SYNC_BUCKETS) -> Histogram:
            return Histogram(name, doc, IP_FAMILY, buckets=buckets, registry=registry)

        def counter(name: str, doc: str, labels: Iterable[str] = IP_FAMILY) -> Counter:
            return Counter(name, doc, list(labels), registry=registry)

        def gauge(name: str, doc: str, labels: Iterable[str] = IP_FAMILY) -> Gauge:
            return Gauge(name, doc, list(labels), registry=registry)

        self.sync_duration = histogram(
            "kubeproxy_sync_proxy_rules_duration_seconds", "Time to program the dataplane"
        )
        self.sync_full_duration = histogram(
            "kubeproxy_sync_full_proxy_rules_duration_seconds",
            "Time to program the whole view (snapshot, retry, resync)",
        )
        self.sync_partial_duration = histogram(
            "kubeproxy_sync_partial_proxy_rules_duration_seconds", "Time to program one delta"
        )
        self.network_programming = histogram(
            "kubeproxy_network_programming_duration_seconds",
            "From the Kubernetes change (trigger time) to the rules being applied",
            LATENCY_BUCKETS,
        )
        self.last_sync = gauge(
            "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
            "When the dataplane was last programmed",
        )
        self.last_queued = gauge(
            "kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds",
            "When the last change to program arrived",
        )
        self.sync_failures = counter(
            "kubeproxy_sync_proxy_rules_nftables_sync_failures_total", "Failed programmings"
        )
        self.conntrack_deleted = counter(
            "kubeproxy_conntrack_reconciler_deleted_entries_total",
            "Stale UDP conntrack entries deleted after a sync",
        )
        self.conntrack_duration = histogram(
            "kubeproxy_conntrack_reconciler_sync_duration_seconds",
            "Time to find and delete the stale UDP conntrack entries after a sync",
        )
        self.endpoint_changes = counter(
            "kubeproxy_sync_proxy_rules_endpoint_changes_total", "Endpoint changes programmed", ()
        )
        self.service_changes = counter(
            "kubeproxy_sync_proxy_rules_service_changes_total", "Service changes programmed", ()
        )
        self.endpoint_changes_pending = gauge(
            "kubeproxy_sync_proxy_rules_endpoint_changes_pending",
            "Endpoint changes received and not programmed yet",
            (),
        )
        self.service_changes_pending = gauge(
            "kubeproxy_sync_proxy_rules_service_changes_pending",
            "Service changes received and not programmed yet",
            (),
        )
        # kube-proxy's way to watch its readiness (/healthz) and liveness (/livez) answers
        self.healthz = counter(
            "kubeproxy_proxy_healthz_total", "/healthz answers by HTTP status", ["code"]
        )
        self.livez = counter(
            "kubeproxy_proxy_livez_total", "/livez answers by HTTP status", ["code"]
        )
        for code in ("200", "503"):  # both series from the start, as kube-proxy's
            self.healthz.labels(code)
            self.livez.labels(code)
        for f in map(family_label, self.families):  # every family's series from the start
            for m in (
                self.sync_duration,
                self.sync_full_duration,
                self.sync_partial_duration,
                self.network_programming,
                self.last_sync,
                self.last_queued,
                self.sync_failures,
                self.conntrack_deleted,
                self.conntrack_duration,
            ):
                m.labels(f)

    def synced(
        self, now: float, seconds: Mapping[int, float], full: bool, trigger_time: float | None
    ) -> None:
        """A sync ended at ``now``; ``seconds``: each family's part, from the sync's start (so
        a family's rules were in place ``max(seconds) - seconds[f]`` before ``now``)."""
        whole = max(seconds.values(), default=0.0)
        by_kind = self.sync_full_duration if full else self.sync_partial_duration
        for family, s in seconds.items():
            label = family_label(family)
            self.sync_duration.labels(label).observe(s)
            by_kind.labels(label).observe(s)
            self.last_sync.labels(label).set(now)
            applied = now - (whole - s)
            if trigger_time is not None and applied >= trigger_time:
                self.network_programming.labels(label).observe(applied - trigger_time)

    def queued(self, now: float, families: Iterable[int] | None = None) -> None:
        """A change arrived: it is queued for the sync of ``families`` (default: each)."""
        for f in self.families if families is None else families:
            self.last_queued.labels(family_label(f)).set(now)

    def failed(self, families: Iterable[int]) -> None:
        for f in families:
            self.sync_failures.labels(family_label(f)).inc()

    def pending(self, services: int, endpoints: int) -> None:
        """The changes received and not programmed yet (0, 0 once programmed)."""
        self.service_changes_pending.set(services)
        self.endpoint_changes_pending.set(endpoints)

    def changes(self, services: int, endpoints: int) -> None:
        """Changes programmed."""
        self.service_changes.inc(services)
        self.endpoint_changes.inc(endpoints)

    def conntrack(self, family: int, deleted: int, seconds: float) -> None:
        """One family's stale UDP entries deleted after a sync, and how long that took."""
        label = family_label(family)
        self.conntrack_deleted.labels(label).inc(deleted)
        self.conntrack_duration.labels(label).observe(seconds)
