"""Network-programming latency over time, for the dashboard's chart: cluster-wide p50 and p99
per step (10 s) over the last ``span`` (15 minutes).

Bounded whatever the cluster's size or churn: each step keeps a log-scale histogram (bins 5 %
apart, so a percentile is within 5 % of the exact one), not its samples; steps older than
the span are dropped. At most ``span / step`` histograms of at most ``len(BOUNDS)`` counts.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

RATIO = 1.05  # each bin's upper bound is 5 % above the previous one
LOWEST = 1e-4  # seconds: the first bin holds everything up to 0.1 ms
BOUNDS = tuple(LOWEST * RATIO**i for i in range(int(math.log(36_000 / LOWEST, RATIO)) + 2))


def bin_of(seconds: float) -> int:
    """The bin holding ``seconds``: the first whose upper bound is not below it (the last
    bin holds everything beyond ten hours)."""
    return min(bisect.bisect_left(BOUNDS, seconds), len(BOUNDS) - 1)


def histogram_percentile(counts: dict[int, int], total: int, q: float) -> float:
    """Nearest-rank percentile of a histogram: the upper bound of the bin holding the rank."""
    rank = max(1, math.ceil(q * total))
    seen = 0
    for index in sorted(counts):
        seen += counts[index]
        if seen >= rank:
            return BOUNDS[index]
    raise ValueError("empty histogram")


@dataclass(slots=True)
class LatencyHistory:
    step: float = 10.0
    span: float = 900.0
    # step start -> {bin index: samples}
    steps: dict[float, dict[int, int]] = field(default_factory=dict)

    def add(self, samples: Iterable[tuple[float, float]], now: float) -> None:
        """Record ``(applied_at, seconds)`` samples; those older than the span are ignored."""
        since = now - self.span
        for at, seconds in samples:
            if at < since or at > now + self.step or seconds < 0:
                continue
            start = math.floor(at / self.step) * self.step
            counts = self.steps.setdefault(start, {})
            index = bin_of(seconds)
            counts[index] = counts.get(index, 0) + 1
        self.prune(now)

    def prune(self, now: float) -> None:
        oldest = math.floor((now - self.span) / self.step) * self.step
        for start in [s for s in self.steps if s < oldest]:
            del self.steps[start]

    def to_json(self, now: float) -> dict[str, Any]:
        """Every step of the span ending now, oldest first (steps without samples included,
        with nulls), so a chart's time axis does not depend on the traffic."""
        self.prune(now)
        last = math.floor(now / self.step) * self.step
        count = round(self.span / self.step)
        points = []
        for i in range(count - 1, -1, -1):
            start = last - i * self.step
            counts = self.steps.get(start, {})
            total = sum(counts.values())
            points.append(
                {
                    "start": start,
                    "count": total,
                    "p50": round(histogram_percentile(counts, total, 0.5), 6) if total else None,
                    "p99": round(histogram_percentile(counts, total, 0.99), 6) if total else None,
                }
            )
        return {"step": self.step, "span": self.span, "points": points}
