"""The election loop over an in-memory Lease: one leader, fencing, takeover, failures."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from kpng.runtime.clock import FakeClock
from kpng_watcher import leader
from kpng_watcher.election import ElectionTiming, Elector
from kpng_watcher.leader import FakeLeaseLock, LeaderElection, LeaseLock

TIMING = ElectionTiming(lease_duration=3.0, renew_deadline=2.0, retry_period=0.5)


def candidate(name: str, lock: LeaseLock, clock: FakeClock) -> LeaderElection:
    return LeaderElection(lock, Elector(name, TIMING), clock)


async def test_one_leads_the_other_takes_over_only_after_the_lease_expires() -> None:
    clock, lock = FakeClock(), FakeLeaseLock()
    a, b = candidate("a", lock, clock), candidate("b", lock, clock)
    await a.attempt()
    await b.attempt()
    assert a.is_leader() and not b.is_leader()
    assert lock.record is not None and lock.record.holder == "a"
    # a stops renewing (paused); b keeps trying every retry period
    started = clock.monotonic()
    timeline = []
    for _ in range(12):
        clock.advance(0.5)
        await b.attempt()
        assert not (a.is_leader() and b.is_leader())
        timeline.append((clock.monotonic() - started, a.is_leader(), b.is_leader()))
    a_last = max(t for t, a_leads, _ in timeline if a_leads)
    b_first = min(t for t, _, b_leads in timeline if b_leads)
    assert a_last < 2.0 <= 3.0 <= b_first  # a stopped at its renew deadline, b after the lease
    assert lock.record.holder == "b" and lock.record.transitions == 1
    # a resumes: its stale renewal conflicts; it reads b's record and stays a standby
    await a.attempt()
    assert not a.is_leader() and a.elector.holder == "b"
    clock.advance(0.5)
    await b.attempt()
    await a.attempt()
    assert b.is_leader() and not a.is_leader()


async def test_a_resumed_leader_is_fenced_by_its_clock_before_its_loop_runs() -> None:
    clock, lock = FakeClock(), FakeLeaseLock()
    a = candidate("a", lock, clock)
    await a.attempt()
    assert a.is_leader()
    clock.advance(2.0)  # paused for the renew deadline: no attempt, no callback ran
    assert not a.is_leader()


async def test_a_lease_api_outage_ends_leadership_at_the_renew_deadline() -> None:
    clock, lock = FakeClock(), FakeLeaseLock()
    a = candidate("a", lock, clock)
    await a.attempt()
    lock.fail = True
    for _ in range(3):
        clock.advance(0.5)
        await a.attempt()  # logged, not raised
        assert a.is_leader()
    clock.advance(0.5)
    assert not a.is_leader()
    lock.fail = False
    await a.attempt()  # nobody took it: a renews with the resourceVersion it read
    assert a.is_leader()


async def test_run_reports_role_changes() -> None:
    clock, lock = FakeClock(), FakeLeaseLock()
    changes: list[bool] = []
    a = LeaderElection(lock, Elector("a", TIMING), clock, on_change=changes.append)
    task = asyncio.create_task(a.run())
    try:
        for _ in range(100):
            if changes:
                break
            await asyncio.sleep(0)
        assert changes == [True]
        for _ in range(100):
            if lock.writes >= 3:  # it renews every retry period
                break
            await asyncio.sleep(0)
        assert changes == [True] and clock.sleeps[:2] == [0.5, 0.5]
        lock.fail = True
        for _ in range(100):
            if len(changes) == 2:
                break
            await asyncio.sleep(0)
        assert changes == [True, False]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_leader_that_stops_hands_the_lease_over_at_once() -> None:
    clock, lock = FakeClock(), FakeLeaseLock()
    a, b = candidate("a", lock, clock), candidate("b", lock, clock)
    await a.attempt()
    await b.attempt()
    await a.release()
    assert not a.is_leader()
    assert lock.record is not None and lock.record.holder == ""
    await b.attempt()  # no wait for the lease duration
    assert b.is_leader() and lock.record.holder == "b"
    await a.release()  # not the holder: nothing written
    assert lock.record.holder == "b"


async def test_a_cancelled_run_releases_the_lease() -> None:
    clock, lock = FakeClock(), FakeLeaseLock()
    a = candidate("a", lock, clock)
    task = asyncio.create_task(a.run())
    for _ in range(10):
        await asyncio.sleep(0)
    assert a.is_leader()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert lock.record is not None and lock.record.holder == ""
    assert not a.is_leader()


def test_identity_is_unique_per_process_and_names_the_host() -> None:
    first, second = leader.identity(), leader.identity()
    assert first != second and first.rsplit("_", 1)[0] == second.rsplit("_", 1)[0]


def test_default_namespace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(leader, "SERVICE_ACCOUNT_NAMESPACE", tmp_path / "namespace")
    assert leader.default_namespace({}) == "kube-system"
    (tmp_path / "namespace").write_text("kpng\n")
    assert leader.default_namespace({}) == "kpng"
    assert leader.default_namespace({"POD_NAMESPACE": "other"}) == "other"
