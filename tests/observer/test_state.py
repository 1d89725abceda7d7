"""The observer's aggregation: node states and lag, latency windows, per-service programming."""

from __future__ import annotations

from typing import Any

from kpng.bus.codec import Delta, Status
from kpng.diff import DeleteEndpoint, SetNode
from kpng.model import Node
from kpng_observer.latency import LatencyWindow, percentile, summarize
from kpng_observer.state import ObserverState


def status(node: str, seq: int, now: float, **kw: Any) -> Status:
    return Status(node, "e1", seq, "dump", kw.pop("healthy", True), now, **kw)


def states(state: ObserverState, now: float) -> dict[str, str]:
    return {n["name"]: n["state"] for n in state.nodes_json(now)}


def test_node_in_sync_then_lagging_then_caught_up() -> None:
    state = ObserverState(silent_after=3, lag_after=1)
    state.note_published("n1", "e1", 4, now=10.0)
    state.note_status(status("n1", 4, 10.0), now=10.0)
    assert states(state, 10.0) == {"n1": "ok"}
    state.note_published("n1", "e1", 6, now=11.0)
    assert states(state, 11.5) == {"n1": "ok"}  # behind, but not for long
    node = state.nodes_json(12.5)[0]
    assert node["state"] == "lagging"
    assert node["lag"] == {"seqs": 2, "since": 11.0, "seconds": 1.5}
    state.note_status(status("n1", 6, 12.6), now=12.6)
    assert state.nodes_json(12.6)[0]["lag"] is None
    assert states(state, 12.6) == {"n1": "ok"}


def test_a_node_whose_digest_differs_at_the_published_seq_is_diverged_and_counted() -> None:
    state = ObserverState(silent_after=3, lag_after=1)
    state.note_published("n1", "e1", 4, now=10.0, digest="00000000000000aa")
    state.note_status(status("n1", 4, 10.0, digest="00000000000000aa"), now=10.0)
    assert states(state, 10.0) == {"n1": "ok"}
    state.note_status(status("n1", 4, 10.5, digest="00000000000000bb"), now=10.5)
    node = state.nodes_json(10.5)[0]
    assert (node["state"], node["diverged"], node["inSync"]) == ("diverged", True, False)
    assert state.diverged == 1
    state.note_status(status("n1", 4, 10.6), now=10.6)  # no digest (an older agent): unknown
    assert states(state, 10.6) == {"n1": "ok"}
    state.note_published("n1", "e1", 5, now=11.0)  # a delta: the digest at 5 is not known yet
    state.note_status(status("n1", 5, 11.0, digest="00000000000000bb"), now=11.0)
    assert states(state, 11.0) == {"n1": "ok"}


def test_epoch_change_counts_as_behind_without_a_seq_count() -> None:
    state = ObserverState(lag_after=0)
    state.note_status(status("n1", 9, 1.0), now=1.0)
    state.note_published("n1", "e2", 0, now=2.0)
    node = state.nodes_json(2.0)[0]
    assert node["state"] == "lagging" and node["lag"]["seqs"] is None


def test_silent_failed_and_unknown() -> None:
    state = ObserverState(silent_after=3)
    state.note_status(status("ok", 1, 0.0), now=0.0)
    state.note_status(status("bad", 1, 0.0, healthy=False, errors=("nft: boom",)), now=0.0)
    state.note_status(status("new", -1, 0.0, healthy=False), now=0.0)
    state.note_published("never", "e1", 0, now=0.0)
    assert states(state, 1.0) == {"ok": "ok", "bad": "failed", "new": "syncing", "never": "unknown"}
    assert states(state, 3.5) == dict.fromkeys(["ok", "bad", "new", "never"], "silent")


def test_state_changes_are_events_and_sweep_notices_silence() -> None:
    state = ObserverState(silent_after=3)
    state.note_status(status("n1", 1, 0.0), now=0.0)
    state.note_status(status("n1", 1, 1.0), now=1.0)  # same position: no new status event
    state.sweep(5.0)
    kinds = [(e.type, e.data.get("state")) for e in state.events.events]
    assert kinds == [("status", None), ("node", "ok"), ("node", "silent")]


def test_latency_samples_are_deduplicated_across_statuses() -> None:
    state = ObserverState()
    new = state.note_status(status("n1", 1, 10.0, latency=((9.0, 0.2), (10.0, 0.4))), now=10.0)
    assert new == [0.2, 0.4]
    again = state.note_status(status("n1", 2, 11.0, latency=((10.0, 0.4), (11.0, 0.1))), now=11)
    assert again == [0.1]
    summary = state.latency.summary(now=11.0, seconds=60)
    assert summary["cluster"]["count"] == 3
    assert summary["nodes"]["n1"]["p50"] == 0.2


def test_latency_window_drops_old_samples_from_the_summary() -> None:
    window = LatencyWindow(keep=100)
    window.add("n1", [(0.0, 5.0), (50.0, 1.0)], now=50.0)
    window.add("n2", [(55.0, 2.0)], now=55.0)
    summary = window.summary(now=60.0, seconds=20)
    assert summary["cluster"] == {"count": 2, "p50": 1.0, "p90": 2.0, "p99": 2.0, "max": 2.0}
    window.add("n1", [(200.0, 1.0)], now=200.0)
    assert len(window.samples["n1"]) == 1  # kept no longer than ``keep``


def test_percentiles_are_nearest_rank() -> None:
    values = [float(i) for i in range(1, 101)]
    assert [percentile(values, q) for q in (0.5, 0.9, 0.99)] == [50.0, 90.0, 99.0]
    assert summarize([]) == {"count": 0, "p50": None, "p90": None, "p99": None, "max": None}


def test_service_programming_per_node() -> None:
    state = ObserverState()
    state.note_published("n1", "e1", 3, now=0.0)  # a tick: baseline 3
    state.note_published("n2", "e1", 5, now=0.0)
    state.note_status(status("n1", 3, 0.0), now=0.0)
    state.note_status(status("n2", 5, 0.0), now=0.0)
    ops = (DeleteEndpoint("demo/web", "10.0.0.1"), SetNode(Node("n1")))
    state.note_node_delta("n1", Delta("e1", 4, 1.0, 0.5, ops), now=1.0)
    web = {
        n["node"]: n for n in state.programming.service_state("demo/web", state.applied_positions())
    }
    assert (web["n1"]["requiredSeq"], web["n1"]["programmed"]) == (4, False)
    assert (web["n2"]["requiredSeq"], web["n2"]["programmed"]) == (5, True)
    state.note_status(status("n1", 4, 1.1), now=1.1)
    other = state.programming.service_state("demo/db", state.applied_positions())
    assert [n["requiredSeq"] for n in other] == [3, 5]
    assert all(n["programmed"] for n in other)
    state.note_published("n2", "e2", 0, now=2.0)  # a new watcher: n2 has not caught up
    web = {
        n["node"]: n for n in state.programming.service_state("demo/web", state.applied_positions())
    }
    assert web["n2"]["programmed"] is False and web["n1"]["programmed"] is True
