"""Network-programming latency: samples reported by agents, percentiles over a time window.

Each agent measures, at apply time, (its clock when the dataplane applied a delta) minus the
delta's ``trigger`` (the Kubernetes change time) and reports its latest samples in every
status. Statuses repeat samples, so a node's samples are kept only when newer than the last
one seen from it.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from kpng_observer.history import LatencyHistory

QUANTILES = (0.5, 0.9, 0.99)


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending, non-empty sequence."""
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def summarize(values: Iterable[float]) -> dict[str, Any]:
    """``{"count", "p50", "p90", "p99", "max"}`` in seconds (None when there is no sample)."""
    ordered = sorted(values)
    if not ordered:
        return {"count": 0, "p50": None, "p90": None, "p99": None, "max": None}
    out: dict[str, Any] = {"count": len(ordered)}
    for q in QUANTILES:
        out[f"p{round(q * 100)}"] = round(percentile(ordered, q), 6)
    out["max"] = round(ordered[-1], 6)
    return out


@dataclass(slots=True)
class LatencyWindow:
    """Per node, the samples (applied at, seconds) of the last ``keep`` seconds; and the
    cluster's percentiles over time (``history``, for the dashboard's chart)."""

    keep: float = 3600.0
    per_node_limit: int = 10_000
    samples: dict[str, deque[tuple[float, float]]] = field(default_factory=dict)
    history: LatencyHistory = field(default_factory=LatencyHistory)

    def add(self, node: str, samples: Iterable[tuple[float, float]], now: float) -> list[float]:
        """Record the samples newer than the node's last one; returns the new latencies."""
        kept = self.samples.get(node)
        if kept is None:
            kept = self.samples[node] = deque(maxlen=self.per_node_limit)
        last = kept[-1][0] if kept else -math.inf
        new = [(at, seconds) for at, seconds in samples if at > last and seconds >= 0]
        new.sort()
        kept.extend(new)
        self.history.add(new, now)
        while kept and kept[0][0] < now - self.keep:
            kept.popleft()
        return [seconds for _, seconds in new]

    def forget(self, node: str) -> None:
        self.samples.pop(node, None)

    def window(self, now: float, seconds: float) -> dict[str, list[float]]:
        since = now - seconds
        return {node: [v for at, v in kept if at >= since] for node, kept in self.samples.items()}

    def summary(self, now: float, seconds: float) -> dict[str, Any]:
        """Cluster-wide and per-node percentiles of the samples applied in the last window."""
        per_node = self.window(now, seconds)
        return {
            "window": seconds,
            "cluster": summarize(v for values in per_node.values() for v in values),
            "nodes": {node: summarize(values) for node, values in sorted(per_node.items())},
        }
