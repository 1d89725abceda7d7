"""Leader election's decisions, without I/O: what to write to the Lease, and who leads.

The rules of client-go's leader election on a ``coordination.k8s.io/v1`` Lease:

- a candidate takes a lease that does not exist, that nobody holds, or whose record has not
  changed for ``lease_duration`` seconds *as measured by the candidate's own clock since it
  observed the change* (no clock is compared across machines);
- the holder renews it every ``retry_period``; every write carries the resourceVersion it
  read, so two candidates never both win the same record (409 for the loser);
- fencing: the holder counts itself leader only until ``renew_deadline`` after the start of
  its last successful write. That write reached the server after it started, so no other
  candidate can have observed it before then and none takes over before
  ``start + lease_duration``; with ``renew_deadline < lease_duration`` the old leader has
  stopped publishing before a new one can begin (clock rates assumed equal, not clocks).

Times: ``now`` is monotonic seconds (durations), ``wall`` is epoch seconds (what is written
in the Lease for people and other tools to read).
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    """The Lease's spec as read or to be written; ``resource_version`` "" = not created."""

    holder: str
    lease_duration: int
    acquire_time: float
    renew_time: float
    transitions: int = 0
    resource_version: str = ""


@dataclass(frozen=True, slots=True)
class ElectionTiming:
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError(
                "leader election needs 0 < retry period < renew deadline < lease duration "
                f"(got {self.retry_period}, {self.renew_deadline}, {self.lease_duration})"
            )


class Elector:
    """One candidate's view of the Lease: feed it what was read and what was written."""

    def __init__(self, identity: str, timing: ElectionTiming = ElectionTiming()) -> None:
        self.identity = identity
        self.timing = timing
        self._observed: LeaseRecord | None = None
        self._observed_at = 0.0
        self._renewed_at: float | None = None

    @property
    def holder(self) -> str:
        return self._observed.holder if self._observed is not None else ""

    def observe(self, record: LeaseRecord | None, now: float) -> None:
        """What a read returned; a changed record restarts the wait for its expiry."""
        if record != self._observed:
            self._observed, self._observed_at = record, now

    def proposal(self, now: float, wall: float) -> LeaseRecord | None:
        """The record to write now (create when its resource_version is ""), or None: the
        lease is another's and has not expired."""
        seconds = max(1, round(self.timing.lease_duration))
        current = self._observed
        if current is None:
            return LeaseRecord(self.identity, seconds, wall, wall)
        if current.holder == self.identity:
            return replace(current, lease_duration=seconds, renew_time=wall)
        if current.holder and now < self._observed_at + self.timing.lease_duration:
            return None
        return LeaseRecord(
            self.identity,
            seconds,
            wall,
            wall,
            current.transitions + 1,
            current.resource_version,
        )

    def written(self, record: LeaseRecord, started: float) -> None:
        """A write that started at ``started`` succeeded and the server returned ``record``."""
        self._observed, self._observed_at = record, started
        self._renewed_at = started

    def release(self, wall: float) -> LeaseRecord | None:
        """Stop leading now, and the record that hands the lease over at once (no holder,
        as client-go's ReleaseOnCancel writes), or None if another holds it."""
        self._renewed_at = None
        current = self._observed
        if current is None or current.holder != self.identity:
            return None
        return replace(current, holder="", lease_duration=1, renew_time=wall)

    def lost(self) -> None:
        """A write was refused (conflict): whatever was held is no longer."""
        self._renewed_at = None

    def is_leader(self, now: float) -> bool:
        """True until ``renew_deadline`` after the start of the last successful write."""
        return (
            self._renewed_at is not None
            and self.holder == self.identity
            and now < self._renewed_at + self.timing.renew_deadline
        )
