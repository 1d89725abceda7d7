"""kube-proxy's metrics as kube-proxy 1.34 exports them: a sync's figures per IP family (each
family's part timed on its own, a failure counted for the family that failed), and the
changes received but not programmed yet."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator

import pytest
from prometheus_client import CollectorRegistry

from kpng.bus.consumer import Applied
from kpng.bus.fake import FakeBus, FakeServer
from kpng.dataplane.backend import PerFamily
from kpng.dataplane.claims import Conflict
from kpng.dataplane.nft.fake import FakeNftables
from kpng.dataplane.nft.objects import NftError, Table
from kpng.dataplane.nft.transaction import Transaction
from kpng.model import ViewEndpoint
from kpng.runtime.clock import FakeClock
from kpng.runtime.proxymetrics import ProxyMetrics
from kpng_agent.agent import AgentSettings
from kpng_agent.backends.nftables import NftablesBackend, Settings
from tests.agent.helpers import NODE, ep, event, make_agent, udp, view
from tests.agent.test_backend_families import on_node, web
from tests.loops import running

V4, V6 = {"ip_family": "IPv4"}, {"ip_family": "IPv6"}


class TwoFamilies:
    """A backend whose IPv4 part takes 0.1 s and IPv6 part 0.25 s of the clock; ``fail``:
    the families whose part fails."""

    name = "two-families"
    conflicts: tuple[Conflict, ...] = ()

    def __init__(self, clock: FakeClock, fail: tuple[int, ...] = ()) -> None:
        self.clock, self.fail = clock, fail
        self.family_seconds: dict[int, float] = {}
        self.failed_families: tuple[int, ...] = ()

    async def program(self, event: Applied[ViewEndpoint], full: bool) -> None:
        self.clock.advance(0.25)
        self.family_seconds = {4: 0.1, 6: 0.25}
        self.failed_families = self.fail
        if self.fail:
            raise NftError("refused")

    async def close(self) -> None:
        pass


class Refusing:
    """One programming fails, the families unsaid."""

    name = "refusing"
    conflicts: tuple[Conflict, ...] = ()
    calls = 0

    async def program(self, event: Applied[ViewEndpoint], full: bool) -> None:
        self.calls += 1
        if self.calls == 1:
            raise OSError("netlink busy")

    async def close(self) -> None:
        pass


@pytest.fixture
async def bus() -> AsyncIterator[FakeBus]:
    bus = FakeServer().connect()
    yield bus
    await bus.close()
    gc.unfreeze()  # the agent's full syncs froze what they saw


def value(registry: CollectorRegistry, name: str, labels: dict[str, str] | None = None) -> float:
    got = registry.get_sample_value(name, labels or {})
    assert got is not None, name
    return got


async def test_each_family_is_timed_on_its_own(bus: FakeBus) -> None:
    clock, registry = FakeClock(epoch=5000.0), CollectorRegistry()
    backend = TwoFamilies(clock)
    assert isinstance(backend, PerFamily)
    agent = make_agent(bus, backend, clock=clock, registry=registry)
    snapshot = event(view((udp(), [ep("10.244.1.5")])))
    changed = Applied(
        "snapshot", snapshot.epoch, 1, snapshot.view, snapshot.ops, trigger_time=4999.0
    )
    assert await agent._program(changed, full=True)
    total = "kubeproxy_sync_proxy_rules_duration_seconds_sum"
    assert value(registry, total, V4) == pytest.approx(0.1)
    assert value(registry, total, V6) == pytest.approx(0.25)
    full = "kubeproxy_sync_full_proxy_rules_duration_seconds_count"
    assert value(registry, full, V4) == value(registry, full, V6) == 1
    partial = "kubeproxy_sync_partial_proxy_rules_duration_seconds_count"
    assert value(registry, partial, V4) == 0
    # IPv4's rules were in place 0.15 s before the sync's end (5000.25)
    latency = "kubeproxy_network_programming_duration_seconds_sum"
    assert value(registry, latency, V4) == pytest.approx(1.1)
    assert value(registry, latency, V6) == pytest.approx(1.25)
    stamp = "kubeproxy_sync_proxy_rules_last_timestamp_seconds"
    assert value(registry, stamp, V4) == value(registry, stamp, V6) == 5000.25


async def test_a_failure_counts_for_the_family_that_failed(bus: FakeBus) -> None:
    clock, registry = FakeClock(), CollectorRegistry()
    agent = make_agent(bus, TwoFamilies(clock, fail=(6,)), clock=clock, registry=registry)
    assert not await agent._program(event(view()), full=True)
    failures = "kubeproxy_sync_proxy_rules_nftables_sync_failures_total"
    assert value(registry, failures, V6) == 1 and value(registry, failures, V4) == 0
    # a backend that does not say: the sync failed for every family
    other = CollectorRegistry()
    agent = make_agent(bus, Refusing(), registry=other)
    assert not await agent._program(event(view()), full=True)
    assert value(other, failures, V4) == value(other, failures, V6) == 1


async def test_changes_are_pending_until_a_sync_programs_them(bus: FakeBus) -> None:
    """While a failed sync waits for its retry, the changes that come wait too; the retry
    programs them all, and they count as programmed then."""
    clock, registry = FakeClock(), CollectorRegistry()
    backend = Refusing()
    agent = make_agent(
        bus, backend, clock=clock, registry=registry, settings=AgentSettings(sync_period=1.0)
    )
    base = view((udp(), [ep("10.244.1.5")]))
    first = event(base)
    agent.state.received(first)  # as the consume loop does before programming
    assert not await agent._program(first, full=True)
    bigger = view((udp(), [ep("10.244.1.5"), ep("10.244.1.6"), ep("10.244.1.7")]))
    agent.state.received(event(bigger, base, 2))
    agent.metrics.pending(*agent.state.unprogrammed)
    pending = "kubeproxy_sync_proxy_rules_endpoint_changes_pending"
    assert value(registry, pending) == 2
    assert value(registry, "kubeproxy_sync_proxy_rules_endpoint_changes_total") == 0
    await running(agent._retry_loop, lambda: agent.state.programmed == 1)
    assert value(registry, pending) == 0
    assert value(registry, "kubeproxy_sync_proxy_rules_service_changes_pending") == 0
    assert value(registry, "kubeproxy_sync_proxy_rules_endpoint_changes_total") == 2


async def test_a_delta_syncs_and_queues_only_the_families_it_touches(bus: FakeBus) -> None:
    """kube-proxy gives an EndpointSlice to its own family's proxier: an IPv4 endpoint's
    change is an IPv4 sync alone. IPv6's series stay as they were, its last change queued
    too, so no stale-rules alert waits for an IPv6 sync that has nothing to do; a service's
    change syncs both."""
    clock, registry = FakeClock(epoch=5000.0), CollectorRegistry()
    nft = FakeNftables()
    backend = NftablesBackend(Settings(NODE), nft, list)
    agent = make_agent(bus, backend, clock=clock, registry=registry)
    svc = web("a", "10.96.0.1", "fd00:96::1")
    base = on_node(view((svc, [ep("10.244.1.5"), ep("fd00:244::5")])), "192.168.0.10")
    snapshot = event(base)
    assert await agent._program(snapshot, full=agent._queue(snapshot))
    clock.advance(10)
    more = [ep("10.244.1.5"), ep("10.244.1.6"), ep("fd00:244::5")]
    grown = on_node(view((svc, more)), "192.168.0.10")
    delta = event(grown, base, 2)
    assert not agent._queue(delta)
    before = nft.transactions
    assert await agent._program(delta, full=False)
    assert set(backend.family_seconds) == {4}
    partial = "kubeproxy_sync_partial_proxy_rules_duration_seconds_count"
    assert (value(registry, partial, V4), value(registry, partial, V6)) == (1, 0)
    stamp = "kubeproxy_sync_proxy_rules_last_timestamp_seconds"
    queued = "kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds"
    assert (value(registry, stamp, V4), value(registry, stamp, V6)) == (5010.0, 5000.0)
    assert (value(registry, queued, V4), value(registry, queued, V6)) == (5010.0, 5000.0)
    # one transaction, the IPv4 table's: the IPv6 one was not planned again
    assert nft.transactions == before + 1 and "10.244.1.6" in nft.dump(Table("ip", "kpng"))
    clock.advance(10)
    renamed = on_node(view((web("a", "10.96.0.2", "fd00:96::2"), more)), "192.168.0.10")
    both = event(renamed, grown, 3)
    assert not agent._queue(both)
    assert await agent._program(both, full=False)
    assert set(backend.family_seconds) == {4, 6}
    assert (value(registry, partial, V4), value(registry, partial, V6)) == (2, 1)
    assert (value(registry, queued, V4), value(registry, queued, V6)) == (5020.0, 5020.0)


class RefusingIp6(FakeNftables):
    """The kernel refuses any change to the ip6 table."""

    async def run(self, tx: Transaction) -> None:
        if tx.table.family == "ip6":
            raise NftError("ip6: Operation not permitted")
        await super().run(tx)


async def test_the_nftables_backend_times_and_blames_each_family() -> None:
    backend = NftablesBackend(Settings(NODE), FakeNftables(), list)
    v = on_node(view((web("a", "10.96.0.1", "fd00:96::1"), [])), "192.168.0.10")
    await backend.program(Applied("snapshot", "e1", 1, v, ()), full=True)
    assert set(backend.family_seconds) == {4, 6} and backend.failed_families == ()
    assert all(s > 0 for s in backend.family_seconds.values())
    broken = NftablesBackend(Settings(NODE), RefusingIp6(), list)
    with pytest.raises(NftError):
        await broken.program(Applied("snapshot", "e1", 1, v, ()), full=True)
    assert broken.failed_families == (6,)
    assert set(broken.family_seconds) == {4, 6}


def test_every_familys_series_is_there_from_the_start() -> None:
    registry = CollectorRegistry()
    ProxyMetrics(registry)
    for labels in (V4, V6):
        assert (
            value(registry, "kubeproxy_sync_proxy_rules_nftables_sync_failures_total", labels) == 0
        )
        assert value(registry, "kubeproxy_sync_proxy_rules_duration_seconds_count", labels) == 0
    only4 = CollectorRegistry()
    ProxyMetrics(only4, families=(4,))
    assert only4.get_sample_value("kubeproxy_sync_proxy_rules_duration_seconds_count", V6) is None
