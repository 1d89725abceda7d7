"""The Lease adapter against the simulator: create, renew, conflicts, a takeover."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from kubernetes_asyncio import client

from kpng.runtime.clock import FakeClock
from kpng.runtime.kubeclient import api_client
from kpng_apisim import ApiSimulator
from kpng_watcher.election import ElectionTiming, Elector, LeaseRecord
from kpng_watcher.kube_lease import KubeLeaseLock
from kpng_watcher.leader import LeaderElection, LeaseError

pytestmark = pytest.mark.kube

TIMING = ElectionTiming(lease_duration=3.0, renew_deadline=2.0, retry_period=0.5)


@pytest.fixture
async def api(sim: ApiSimulator) -> AsyncIterator[client.ApiClient]:
    api = await api_client(str(sim.kubeconfig_path))
    try:
        yield api
    finally:
        await api.close()


async def test_records_round_trip_and_stale_writes_lose(
    sim: ApiSimulator, api: client.ApiClient
) -> None:
    lock = KubeLeaseLock(api, "kpng-watcher", "kube-system")
    assert await lock.get() is None
    first = await lock.create(LeaseRecord("a", 15, 1000.25, 1000.5, 0))
    assert first is not None and first.resource_version
    assert first == LeaseRecord("a", 15, 1000.25, 1000.5, 0, first.resource_version)
    assert await lock.get() == first
    assert await lock.create(LeaseRecord("b", 15, 1.0, 1.0)) is None  # exists: lost the race
    renewed = await lock.update(LeaseRecord("a", 15, 1000.25, 1002.0, 0, first.resource_version))
    assert renewed is not None and renewed.renew_time == 1002.0
    stale = LeaseRecord("b", 15, 1003.0, 1003.0, 1, first.resource_version)
    assert await lock.update(stale) is None  # 409
    raw = sim.store.get("leases", "kpng-watcher", "kube-system")
    assert raw["spec"]["holderIdentity"] == "a" and raw["spec"]["leaseDurationSeconds"] == 15
    with pytest.raises(LeaseError, match="lease no-such-namespace-here/x: create: 404"):
        await KubeLeaseLock(api, "x", "no-such-namespace-here").create(LeaseRecord("a", 1, 0, 0))


async def test_two_candidates_one_leads_then_the_other_after_expiry(
    sim: ApiSimulator, api: client.ApiClient
) -> None:
    clock = FakeClock()

    def candidate(name: str) -> LeaderElection:
        lock = KubeLeaseLock(api, "kpng-watcher", "kube-system")
        return LeaderElection(lock, Elector(name, TIMING), clock)

    a, b = candidate("a"), candidate("b")
    await a.attempt()
    await b.attempt()
    assert a.is_leader() and not b.is_leader()
    for _ in range(7):  # a renews no more; b tries every retry period
        clock.advance(0.5)
        await b.attempt()
        assert not (a.is_leader() and b.is_leader())
    assert b.is_leader() and not a.is_leader()
    await a.attempt()  # a's renewal carries a stale resourceVersion
    assert not a.is_leader() and a.elector.holder == "b"
    lease = sim.store.get("leases", "kpng-watcher", "kube-system")
    assert lease["spec"]["holderIdentity"] == "b" and lease["spec"]["leaseTransitions"] == 1
