"""Latency over time for the dashboard's chart: p50/p99 per step over 15 minutes, bounded."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from kpng.bus.codec import Status
from kpng_observer.history import BOUNDS, LatencyHistory, bin_of
from kpng_observer.latency import percentile
from kpng_observer.state import ObserverState

NOW = 10_005.0  # mid-step: NOW - 5 is in the last step


@given(st.lists(st.floats(1e-4, 3600.0), min_size=1, max_size=300))
def test_percentiles_are_within_five_percent_of_the_exact_ones(values: list[float]) -> None:
    history = LatencyHistory()
    history.add(((NOW - 1, v) for v in values), NOW)
    last = history.to_json(NOW)["points"][-1]
    ordered = sorted(values)
    assert last["count"] == len(values)
    for q, key in ((0.5, "p50"), (0.99, "p99")):
        exact = percentile(ordered, q)
        assert exact <= last[key] <= exact * 1.05 + 1e-6


def test_every_step_of_the_span_is_a_point_oldest_first() -> None:
    history = LatencyHistory(step=10.0, span=900.0)
    history.add([(NOW - 5, 0.2), (NOW - 5, 0.4), (NOW - 600, 1.0)], NOW)
    points = history.to_json(NOW)["points"]
    assert len(points) == 90
    assert [p["start"] for p in points] == sorted(p["start"] for p in points)
    assert points[-1]["start"] <= NOW < points[-1]["start"] + 10
    assert points[-1]["count"] == 2 and points[-1]["p50"] >= 0.2
    assert sum(p["count"] for p in points) == 3
    empty = [p for p in points if p["count"] == 0]
    assert len(empty) == 88 and all(p["p50"] is None and p["p99"] is None for p in empty)


def test_memory_is_bounded_by_the_span_not_by_the_samples() -> None:
    history = LatencyHistory(step=10.0, span=900.0)
    rng = random.Random(7)
    for minute in range(120):  # two hours of 1,000 samples a minute
        now = NOW + minute * 60
        history.add(((now - rng.random() * 60, rng.expovariate(5)) for _ in range(1000)), now)
        assert len(history.steps) <= 91
        assert all(len(counts) <= len(BOUNDS) for counts in history.steps.values())
    points = history.to_json(NOW + 119 * 60)["points"]
    assert sum(p["count"] for p in points) <= 16_000  # the last 15 minutes only


def test_samples_older_than_the_span_are_ignored() -> None:
    history = LatencyHistory()
    history.add([(NOW - 2000, 1.0), (NOW - 10, -1.0)], NOW)
    assert history.steps == {}


def test_bins_cover_every_latency() -> None:
    assert bin_of(0.0) == 0 and bin_of(1e9) == len(BOUNDS) - 1
    assert BOUNDS[bin_of(0.25)] >= 0.25 > BOUNDS[bin_of(0.25) - 1]


def test_statuses_feed_the_history() -> None:
    state = ObserverState()
    samples = ((NOW - 3, 0.05), (NOW - 2, 0.5))
    state.note_status(Status("n1", "e1", 1, "dump", True, NOW, latency=samples), NOW)
    state.note_status(Status("n1", "e1", 1, "dump", True, NOW, latency=samples), NOW + 1)
    points = state.latency.history.to_json(NOW + 1)["points"]
    assert sum(p["count"] for p in points) == 2  # a repeated status adds nothing
