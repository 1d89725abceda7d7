"""The election's pure rules: who may write the Lease, and who counts as leader when."""

from __future__ import annotations

import pytest

from kpng_watcher.election import ElectionTiming, Elector, LeaseRecord

TIMING = ElectionTiming(lease_duration=15.0, renew_deadline=10.0, retry_period=2.0)


def held(by: str, rv: str = "7", transitions: int = 0) -> LeaseRecord:
    return LeaseRecord(by, 15, 100.0, 100.0, transitions, rv)


def test_no_lease_is_created_and_the_writer_leads_until_its_renew_deadline() -> None:
    a = Elector("a", TIMING)
    a.observe(None, now=50.0)
    proposal = a.proposal(now=50.0, wall=1000.0)
    assert proposal == LeaseRecord("a", 15, 1000.0, 1000.0, 0, "")
    assert not a.is_leader(50.0)
    a.written(LeaseRecord("a", 15, 1000.0, 1000.0, 0, "1"), started=49.0)
    assert a.is_leader(58.9)
    assert not a.is_leader(59.0)  # started + renew deadline, not the time of the answer


def test_the_holder_renews_keeping_its_acquire_time() -> None:
    a = Elector("a", TIMING)
    a.observe(held("a"), now=0.0)
    assert a.proposal(now=1.0, wall=200.0) == LeaseRecord("a", 15, 100.0, 200.0, 0, "7")


def test_another_holder_is_waited_for_lease_duration_since_the_record_last_changed() -> None:
    b = Elector("b", TIMING)
    b.observe(held("a", "7"), now=10.0)
    assert b.proposal(now=24.9, wall=0.0) is None
    b.observe(held("a", "8"), now=20.0)  # renewed: the wait starts again
    assert b.proposal(now=34.9, wall=0.0) is None
    b.observe(held("a", "8"), now=30.0)  # the same record read again changes nothing
    assert b.proposal(now=35.0, wall=500.0) == LeaseRecord("b", 15, 500.0, 500.0, 1, "8")


def test_an_unheld_lease_is_taken_at_once() -> None:
    b = Elector("b", TIMING)
    b.observe(held("", "3", transitions=4), now=10.0)
    assert b.proposal(now=10.0, wall=9.0) == LeaseRecord("b", 15, 9.0, 9.0, 5, "3")


def test_a_lost_write_or_another_holder_ends_leadership_at_once() -> None:
    a = Elector("a", TIMING)
    a.written(held("a", "1"), started=0.0)
    assert a.is_leader(1.0)
    a.lost()
    assert not a.is_leader(1.0)
    a.written(held("a", "2"), started=2.0)
    a.observe(held("b", "3"), now=3.0)
    assert not a.is_leader(3.0)


def test_fencing_the_old_leader_stops_before_a_standby_may_take_over() -> None:
    """Whatever the delays, the last write started before any standby saw it."""
    a, b = Elector("a", TIMING), Elector("b", TIMING)
    for started, seen in ((0.0, 0.0), (0.0, 4.9), (3.0, 3.5)):
        a.written(held("a", "9"), started=started)
        b.observe(held("a", "9"), now=seen)
        first_takeover = next(t / 10 for t in range(1000) if b.proposal(t / 10, 0.0))
        last_leading = max(t / 10 for t in range(1000) if a.is_leader(t / 10))
        assert last_leading < first_takeover
        b.observe(None, now=0.0)


@pytest.mark.parametrize(("lease", "renew", "retry"), [(10, 10, 2), (15, 10, 10), (15, 10, 0)])
def test_timings_must_nest(lease: float, renew: float, retry: float) -> None:
    with pytest.raises(ValueError, match="retry period < renew deadline < lease duration"):
        ElectionTiming(lease, renew, retry)
