"""Stale UDP conntrack entries: the pure plan and the cleaner over a fake table."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from kpng.dataplane.conntrack import ConntrackPlan, UdpEntry
from kpng.runtime.proxymetrics import ProxyMetrics
from kpng_agent.conntrack import ConntrackCleaner, FakeConntrack
from tests.agent.helpers import ep, event, lb, udp, view

OLD, NEW = "10.244.0.2", "10.244.0.3"


def entry(dst: str, port: int, reply: str) -> UdpEntry:
    return UdpEntry(4, dst, port, reply)


def test_entries_to_a_service_answered_by_a_gone_endpoint_are_stale() -> None:
    plan = ConntrackPlan()
    assert plan.update(view((udp(np=30053), [ep(NEW)])))
    index = plan.index()
    assert index.stale(entry("10.96.0.10", 53, OLD))
    assert not index.stale(entry("10.96.0.10", 53, NEW))
    assert index.stale(entry("192.168.0.10", 30053, OLD))  # NodePort, any node address
    assert index.stale(entry("10.96.0.10", 53, "10.96.0.10"))  # never DNATed
    assert not index.stale(entry("10.96.0.10", 54, OLD))  # not a service port
    assert not index.stale(entry("8.8.8.8", 53, OLD))


def test_tcp_ports_and_non_serving_endpoints() -> None:
    plan = ConntrackPlan()
    plan.update(view((lb(), [ep(OLD)]), (udp(), [ep(NEW, internal=False, external=False)])))
    index = plan.index()
    assert not index.stale(entry("10.96.0.20", 80, NEW))  # TCP only: not tracked
    assert index.stale(entry("10.96.0.10", 53, NEW))  # Local elsewhere: not serving here


def test_update_reports_changes_of_touched_services_only() -> None:
    plan = ConntrackPlan()
    v = view((udp(), [ep(OLD)]))
    assert plan.update(v)
    assert not plan.update(v)
    assert not plan.update(v, ["default/dns"])
    assert plan.update(view(), ["default/dns"])
    assert plan.ports == {}


async def test_cleaner_deletes_stale_entries_after_a_sync_and_counts_them() -> None:
    table = FakeConntrack(
        [entry("10.96.0.10", 53, OLD), entry("10.96.0.10", 53, NEW), entry("1.1.1.1", 53, OLD)]
    )
    registry = CollectorRegistry()
    cleaner = ConntrackCleaner(table, ProxyMetrics(registry))
    first = view((udp(), [ep(OLD), ep(NEW)]))
    await cleaner.synced(event(first), True)
    assert len(table.entries) == 3
    second = view((udp(), [ep(NEW)]))
    await cleaner.synced(event(second, first, 2), False)
    assert table.entries == [entry("10.96.0.10", 53, NEW), entry("1.1.1.1", 53, OLD)]
    name = "kubeproxy_conntrack_reconciler_deleted_entries_total"
    assert registry.get_sample_value(name, {"ip_family": "IPv4"}) == 1
    assert registry.get_sample_value(name, {"ip_family": "IPv6"}) == 0
    # each family's pass timed on its own, after each of the two syncs
    passes = "kubeproxy_conntrack_reconciler_sync_duration_seconds_count"
    for family in ("IPv4", "IPv6"):
        assert registry.get_sample_value(passes, {"ip_family": family}) == 2
    table.entries.append(entry("10.96.0.10", 53, OLD))
    await cleaner.synced(event(second, second, 3), False)  # no UDP change: no work
    assert len(table.entries) == 3
