"""From what the processes reported to the figures of the benchmark, and the targets."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from kpng_scale.settings import Settings

Json = dict[str, Any]
Target = tuple[tuple[str, ...], float, str]
TARGETS: dict[str, Target] = {  # name: (where in the result, limit, "max" or "eq")
    "p99_latency_s": (("latency", "p99_s"), 1.0, "max"),
    "snapshot_storm_s": (("storm", "seconds"), 10.0, "max"),  # warm: catch-ups
    "snapshot_storm_cold_s": (("storm_cold", "seconds"), 10.0, "max"),  # full snapshots
    "watcher_peak_rss_bytes": (("watcher", "peak_rss_bytes"), 1e9, "max"),
    "bytes_per_change_per_node": (("per_change_per_node", "bytes"), 300.0, "max"),
    "encodings_per_distinct_op": (("encodings", "per_distinct_op"), 1.0, "eq"),
}
# failover: the worse of a standby's takeover and a single replica's restart
FAILOVER_TARGETS: dict[str, Target] = {
    "failover_s": (("failover", "seconds"), 1.0, "max"),  # new leader's start to all current
    "failover_bytes_per_node": (("failover", "bytes_per_node"), 1024.0, "max"),
}


@dataclass(slots=True)
class Phase:
    started: float
    ended: float
    before: Json
    after: Json
    statuses: list[Json]
    reports: list[Json] = field(default_factory=list)

    def delta(self, *path: str) -> float:
        a: Any = self.after
        b: Any = self.before
        for key in path:
            a, b = a[key], b[key]
        return float(a - b)

    def cpu_percent(self) -> float:
        return 100 * self.delta("usage", "cpu_s") / max(self.ended - self.started, 1e-9)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def latency(phase: Phase, nodes: int) -> Json:
    """Per change batch (trigger time): when the last of the N agents applied it."""
    merged: dict[float, list[float]] = {}
    for report in phase.reports:
        for trigger, count, last, total in report["batches"]:
            if not phase.started <= trigger <= phase.ended:
                continue
            entry = merged.setdefault(trigger, [0, 0.0, 0.0])
            entry[0] += count
            entry[1] = max(entry[1], last)
            entry[2] += total
    complete = [v[1] - t for t, v in merged.items() if v[0] >= nodes]
    applied = sum(v[0] for v in merged.values())
    worst = sorted(
        ((v[1] - t, t - phase.started) for t, v in merged.items() if v[0] >= nodes), reverse=True
    )[:5]
    return {
        "batches": len(merged),
        "complete_batches": len(complete),
        "p50_s": percentile(complete, 0.5),
        "p99_s": percentile(complete, 0.99),
        "max_s": max(complete, default=float("nan")),
        "mean_per_agent_s": sum(v[2] for v in merged.values()) / max(applied, 1),
        # the slowest batches: [latency, seconds into the phase] (where the tail comes from)
        "worst": [[round(lat, 3), round(at, 2)] for lat, at in worst],
    }


def sync_phase(phase: Phase) -> Json:
    last = max(s["last_snapshot_at"] for s in phase.statuses)
    return {
        "seconds": last - phase.started,
        "watcher_cpu_s": phase.delta("usage", "cpu_s"),
        "watcher_snapshot_seconds": phase.delta("snapshot_seconds"),
        "snapshot_requests": int(phase.delta("snapshot_requests")),
        "snapshot_bytes_per_node": phase.delta("fanout", "snapshot_bytes")
        / max(phase.delta("fanout", "snapshots"), 1),
        "catchups": int(phase.delta("fanout", "catchups")),
        "catchup_bytes_per_node": phase.delta("fanout", "catchup_bytes")
        / max(phase.delta("fanout", "catchups"), 1),
        "full_snapshots": int(phase.delta("fanout", "snapshots")),
        # zstd frames made in the phase (a zone's part once per zone, own parts per node)
        "compressions": int(phase.delta("fanout", "compressions")),
        "compression_ratio": phase.delta("fanout", "compressed_in")
        / max(phase.delta("fanout", "compressed_out"), 1),
        "agent_resyncs": sum(s["resyncs"] for s in phase.statuses),
        "snapshot_failures": sum(s["snapshot_failures"] for s in phase.statuses),
        # zone parts published once for every agent waiting (kpng.fanout.casts): the full
        # snapshots that took one, the rounds and their bytes, and what the watcher sent
        # per full snapshot in all (replies and casts)
        "casts": sum(s.get("casts", 0) for s in phase.statuses),
        "cast_rounds": int(phase.delta("fanout", "cast_rounds")),
        "cast_bytes": int(phase.delta("fanout", "cast_bytes")),
        "sent_bytes_per_full_snapshot": (
            phase.delta("fanout", "snapshot_bytes") + phase.delta("fanout", "cast_bytes")
        )
        / max(phase.delta("fanout", "snapshots"), 1),
    }


def summarize(
    s: Settings, phases: dict[str, Phase], probe: Json, raw: Json, converged: int
) -> Json:
    churn = phases["churn"]
    changes = max(churn.delta("changes"), 1)
    watcher_rate = churn.delta("flush_messages") / max(churn.delta("flush_seconds"), 1e-9)
    raw_rate = raw["messages"] / max(raw["seconds"], 1e-9)
    peak = max(p.after["usage"]["peak_rss_bytes"] for p in phases.values())
    params = {k: v for k, v in asdict(s).items() if k != "workdir"}
    result: Json = {
        "params": params,
        "changes": int(changes),
        "latency": latency(churn, s.nodes),
        "latency_first_changes": latency(phases["warmup"], s.nodes),
        "initial": sync_phase(phases["initial"]),
        "storm": sync_phase(phases["storm"]),
        "storm_cold": sync_phase(phases["storm_cold"]),
        "watcher": {
            "cpu_percent_churn": churn.cpu_percent(),
            "cpu_percent_storm": phases["storm"].cpu_percent(),
            "cpu_percent_storm_cold": phases["storm_cold"].cpu_percent(),
            "rss_bytes": phases["storm_cold"].after["usage"]["rss_bytes"],
            "peak_rss_bytes": peak,
            "batches": int(churn.delta("batches")),
            **_pause_figures(_pauses_in(churn, [churn.after])),
        },
        "per_change_per_node": {
            "messages": churn.delta("fanout", "node_messages") / changes / s.nodes,
            "bytes": churn.delta("fanout", "node_bytes") / changes / s.nodes,
        },
        "encodings": {
            "per_change": churn.delta("fanout", "encodings") / changes,
            "probe_encodings": probe["encodings"],
            "probe_distinct_ops": probe["distinct_ops"],
            "probe_samples": probe["samples"],  # single-change batches measured
            "per_distinct_op": probe["encodings"] / max(probe["distinct_ops"], 1),
        },
        "publish": {
            "watcher_msgs_per_s": watcher_rate,
            "raw_msgs_per_s": raw_rate,
            "raw_messages": raw["messages"],
            "efficiency": watcher_rate / raw_rate,
        },
        "agents": {"total": s.nodes, "converged": converged, **agent_usage(phases)},
    }
    result["targets"] = check_targets(result)
    return result


def agent_usage(phases: dict[str, Phase]) -> Json:
    """The simulated agents' processes: peak RSS, and GC pauses during the churn."""
    churn, final = phases["churn"], phases["storm_cold"].statuses
    pauses = _pauses_in(churn, final)
    return {
        "processes": len(final),
        "peak_rss_bytes": max((st["usage"]["peak_rss_bytes"] for st in final), default=0),
        "gc_s_total": sum(st["usage"]["gc_s"] for st in final),
        **_pause_figures(pauses),
    }


def _pauses_in(phase: Phase, reports: list[Json]) -> list[tuple[float, float]]:
    """GC pauses over 10 ms that processes reported, during ``phase`` (and 5 s after), as
    (wall, CPU) seconds."""
    return [
        (pause, cpu)
        for st in reports
        for at, pause, cpu in st["usage"]["gc_long_pauses"]
        if phase.started <= at <= phase.ended + 5
    ]


def _pause_figures(pauses: list[tuple[float, float]]) -> Json:
    return {
        "gc_pauses_over_10ms_in_churn": len(pauses),
        "gc_max_pause_in_churn_s": max((wall for wall, _ in pauses), default=0.0),
        "gc_max_pause_cpu_in_churn_s": max((cpu for _, cpu in pauses), default=0.0),
    }


def failover_targets(result: Json) -> Json:
    return check_targets(result, FAILOVER_TARGETS)


def check_targets(result: Json, targets: dict[str, Target] = TARGETS) -> Json:
    out: Json = {}
    for name, (path, limit, kind) in targets.items():
        value: Any = result
        for key in path:
            value = value[key]
        ok = abs(value - limit) < 1e-9 if kind == "eq" else value <= limit
        out[name] = {"value": value, "limit": limit, "ok": bool(ok)}
    return out
