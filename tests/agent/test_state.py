"""The agent's bookkeeping, pure: full or partial syncs, retries with backoff, the status."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from kpng.bus.client import ClientStats
from kpng.bus.codec import Status
from kpng.bus.consumer import Applied
from kpng.diff import DeleteEndpoint, DeleteService, SetEndpoint, SetService
from kpng.model import ViewEndpoint
from kpng_agent.state import FIRST_RETRY, LATENCY_SAMPLES, AgentState, count_changes
from tests.agent.helpers import NODE, ep, event, udp, view

BASE = view((udp(), [ep("10.244.1.5")]))
CHANGED = view((udp(), [ep("10.244.1.5"), ep("10.244.1.6")]))


def delta(seq: int = 2, trigger: float | None = None) -> Applied[ViewEndpoint]:
    return replace(event(CHANGED, BASE, seq), trigger_time=trigger)


def status(state: AgentState, **kw: Any) -> Status:
    options: dict[str, Any] = {
        "counts": {"services": 1},
        "client": ClientStats(resyncs=2, malformed=1),
        "conflicts": 0,
        "synced": True,
        "proxy_healthy": True,
        "now": 1000.0,
    }
    options.update(kw)
    return state.status(NODE, "dump", **options)


def test_a_snapshot_is_a_full_sync_and_a_delta_on_a_programmed_view_is_not() -> None:
    state = AgentState()
    assert state.received(event(BASE)) is True
    state.succeeded(event(BASE), now=10.0, duration=0.1)
    assert state.received(delta()) is False


def test_a_delta_over_an_unprogrammed_event_is_a_full_sync_of_the_latest() -> None:
    state = AgentState()
    state.received(event(BASE))
    state.failed("RuntimeError: boom")
    assert state.received(delta(2)) is True
    assert state.received(delta(3)) is True
    assert state.pending is not None and state.pending.seq == 3


def test_success_records_what_was_programmed_and_clears_errors_and_retry() -> None:
    state = AgentState()
    state.received(event(BASE))
    state.failed("RuntimeError: boom")
    state.received(delta(2, trigger=9.5))
    state.succeeded(delta(2, trigger=9.5), now=10.0, duration=0.25)
    assert (state.epoch, state.seq, state.last_sync, state.sync_duration) == ("e1", 2, 10.0, 0.25)
    assert state.pending is None and state.errors == () and not state.retrying
    assert (state.programmed, state.failures) == (1, 1)
    assert list(state.latency) == [(10.0, 0.5)]


def test_latency_keeps_the_latest_samples_and_skips_events_without_trigger() -> None:
    state = AgentState()
    state.succeeded(delta(1), now=5.0, duration=0.0)
    assert list(state.latency) == []
    for i in range(LATENCY_SAMPLES + 3):
        state.succeeded(delta(i, trigger=float(i)), now=float(i) + 1, duration=0.0)
    assert len(state.latency) == LATENCY_SAMPLES
    assert state.latency[-1] == (LATENCY_SAMPLES + 3.0, 1.0)


def test_retries_back_off_doubling_up_to_the_sync_period() -> None:
    state = AgentState(sync_period=3.0)
    assert not state.retrying and state.retry_delay is None
    state.received(event(BASE))
    delays = []
    for _ in range(5):
        state.failed("OSError: netlink")
        delays.append(state.retry_delay)
    assert delays == [FIRST_RETRY, 1.0, 2.0, 3.0, 3.0]
    assert state.failures == 5 and state.errors == ("OSError: netlink",)
    assert state.to_retry() is state.pending  # still due: the latest event, as a full sync
    state.succeeded(event(BASE), now=1.0, duration=0.0)
    state.failed("OSError: netlink")
    assert state.retry_delay == FIRST_RETRY  # a success starts the backoff over


def test_a_sync_period_shorter_than_the_first_retry_does_not_shrink_it() -> None:
    state = AgentState(sync_period=0.1)
    state.failed("x")
    state.failed("x")
    assert state.retry_delay == FIRST_RETRY


def test_a_retry_with_nothing_pending_is_no_longer_due() -> None:
    state = AgentState()
    state.failed("x")
    assert state.to_retry() is None and not state.retrying


def test_the_status_reports_what_was_programmed_and_the_client_counts() -> None:
    state = AgentState()
    state.succeeded(delta(7, trigger=9.0), now=10.0, duration=0.2)
    s = status(state, conflicts=3)
    assert s == status(state, conflicts=3)  # a value: same inputs, same status
    assert (s.node, s.backend, s.epoch, s.seq, s.time) == (NODE, "dump", "e1", 7, 1000.0)
    assert s.healthy and s.errors == () and s.latency == ((10.0, 1.0),)
    assert (s.last_sync, s.sync_duration) == (10.0, 0.2)
    assert s.counts == {"services": 1, "resyncs": 2, "malformed": 1, "conflicts": 3}


def test_the_status_is_unhealthy_on_errors_an_unsynced_client_or_unhealthy_proxy() -> None:
    state = AgentState()
    assert status(state).healthy
    assert not status(state, synced=False).healthy
    assert not status(state, proxy_healthy=False).healthy
    state.failed("RuntimeError: boom")
    s = status(state)
    assert not s.healthy and s.errors == ("RuntimeError: boom",)


def test_count_changes_counts_service_and_endpoint_operations() -> None:
    both = view((udp(), [ep("10.244.1.5")]), (udp("b", "10.96.0.11"), []))
    assert count_changes(event(both, BASE).ops) == (1, 0)
    assert count_changes(delta().ops) == (0, 1)
    assert count_changes(()) == (0, 0)
    # counted by exact type: a subclass of an operation would go uncounted
    for op in (SetService, DeleteService, SetEndpoint, DeleteEndpoint):
        assert not op.__subclasses__(), op


def test_the_status_carries_the_warnings_found_at_start() -> None:
    state = AgentState()
    assert status(state).warnings == ()
    state.warnings = ("bridge(s) cni0 carry pod addresses but ...",)
    assert status(state).warnings == state.warnings
