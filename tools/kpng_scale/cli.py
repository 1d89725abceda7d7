"""``python -m kpng_scale``: run the scale benchmark, print a table, write JSON."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from kpng_scale.run import measure
from kpng_scale.settings import Settings

DEFAULT_JSON = Path("artifacts/scale.json")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="kpng_scale",
        description="kpng at scale: the real watcher, NATS and N simulated agents, measured.",
    )
    d = Settings()
    p.add_argument("-n", "--nodes", type=int, default=d.nodes, help="N (default %(default)s)")
    p.add_argument("-s", "--services", type=int, default=d.services, help="S (%(default)s)")
    p.add_argument("-e", "--endpoints", type=int, default=d.endpoints, help="E (%(default)s)")
    p.add_argument("-r", "--rate", type=float, default=d.rate, help="changes/s (%(default)s)")
    p.add_argument("-d", "--duration", type=float, default=d.duration, help="churn seconds")
    p.add_argument(
        "--warmup",
        type=float,
        default=d.warmup,
        help="seconds of churn right after the initial sync, reported apart (%(default)s)",
    )
    p.add_argument("--processes", type=int, default=d.processes, help="agent processes")
    p.add_argument("--coalesce-ms", type=float, default=d.coalesce_ms)
    p.add_argument("--snapshot-timeout", type=float, default=d.snapshot_timeout)
    p.add_argument("--sync-timeout", type=float, default=d.sync_timeout)
    p.add_argument(
        "--no-failover",
        dest="failover",
        action="store_false",
        help="skip the failover phase (the leader killed, a standby and a restart take over)",
    )
    p.add_argument(
        "--lease-wait",
        type=float,
        default=d.lease_wait,
        help="failover: seconds from the kill to the standby's takeover (%(default)s)",
    )
    p.add_argument("--workdir", type=Path, help="process logs (default: a temporary directory)")
    p.add_argument(
        "--insecure",
        action="store_true",
        help="NATS without users, roles and TLS (to measure what security costs)",
    )
    p.add_argument("--json", type=Path, default=DEFAULT_JSON, help="(default %(default)s)")
    return p


def table(result: dict[str, Any]) -> str:
    lat, storm, init = result["latency"], result["storm"], result["initial"]
    first = result["latency_first_changes"]
    cold = result["storm_cold"]
    w, per, pub = result["watcher"], result["per_change_per_node"], result["publish"]
    p = result["params"]
    rows = [
        ("size", f"N={p['nodes']} S={p['services']} E={p['endpoints']} R={p['rate']:g}/s"),
        ("changes / batches", f"{result['changes']} / {w['batches']}"),
        (
            "latency p50 / p99 / max (all N applied)",
            f"{lat['p50_s']:.3f} / {lat['p99_s']:.3f} / {lat['max_s']:.3f} s",
        ),
        ("batches complete on all agents", f"{lat['complete_batches']} / {lat['batches']}"),
        (
            "first changes after the initial sync: p50 / max",
            f"{first['p50_s']:.3f} / {first['max_s']:.3f} s",
        ),
        ("initial sync (all agents)", f"{init['seconds']:.1f} s"),
        ("warm storm (resync with state) to convergence", f"{storm['seconds']:.2f} s"),
        (
            "warm storm: catch-ups / full snapshots",
            f"{storm['catchups']} / {storm['full_snapshots']}"
            f" ({storm['catchup_bytes_per_node']:.0f} bytes per node)",
        ),
        ("warm storm: watcher time answering", f"{storm['watcher_snapshot_seconds']:.2f} s"),
        ("cold storm (restart, no state) to convergence", f"{cold['seconds']:.1f} s"),
        ("cold storm: watcher time answering", f"{cold['watcher_snapshot_seconds']:.1f} s"),
        (
            "cold storm, watcher side: N full views to one raw reader",
            f"{result['storm_cold_delivery']['seconds']:.1f} s"
            f" ({result['storm_cold_delivery']['bytes'] / 1e9:.2f} GB,"
            f" {result['storm_cold_delivery']['gbit_per_s']:.1f} Gbit/s)",
        ),
        (
            "cold storm: zstd frames made (ratio)",
            f"{cold['compressions']} ({cold['compression_ratio']:.1f}x)",
        ),
        (
            "cold storm: snapshots by cast / cast rounds (MB sent)",
            f"{cold['casts']} / {cold['cast_rounds']} ({cold['cast_bytes'] / 1e6:.1f} MB)",
        ),
        (
            "cold storm: watcher MB per full snapshot (replies and casts)",
            f"{cold['sent_bytes_per_full_snapshot'] / 1e6:.3f}",
        ),
        (
            "watcher CPU churn / warm / cold storm",
            f"{w['cpu_percent_churn']:.0f}% / {w['cpu_percent_storm']:.0f}%"
            f" / {w['cpu_percent_storm_cold']:.0f}%",
        ),
        (
            "watcher GC pauses >10 ms in churn (max wall / CPU)",
            f"{w['gc_pauses_over_10ms_in_churn']} ({w['gc_max_pause_in_churn_s']:.2f}"
            f" / {w['gc_max_pause_cpu_in_churn_s']:.2f} s)",
        ),
        (
            "watcher RSS now / peak",
            f"{w['rss_bytes'] / 1e6:.0f} / {w['peak_rss_bytes'] / 1e6:.0f} MB",
        ),
        ("per change per node", f"{per['messages']:.3f} msgs, {per['bytes']:.0f} bytes"),
        ("encodings per change", f"{result['encodings']['per_change']:.1f}"),
        ("encodings per distinct op (probe)", f"{result['encodings']['per_distinct_op']:.2f}"),
        (
            "publish rate watcher / raw nats-py",
            f"{pub['watcher_msgs_per_s']:.0f} / {pub['raw_msgs_per_s']:.0f} msg/s"
            f" ({pub['efficiency']:.2f})",
        ),
        ("agents converged", f"{result['agents']['converged']} / {result['agents']['total']}"),
        (
            "agent processes: peak RSS, GC pauses >10 ms in churn (max)",
            f"{result['agents']['peak_rss_bytes'] / 1e6:.0f} MB,"
            f" {result['agents']['gc_pauses_over_10ms_in_churn']}"
            f" ({result['agents']['gc_max_pause_in_churn_s']:.2f} s)",
        ),
    ]
    rows += failover_rows(result.get("failover"))
    rows += [
        (f"target {name}", f"{'ok' if t['ok'] else 'MISSED'} ({t['value']:.4g} vs {t['limit']:g})")
        for name, t in result["targets"].items()
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def failover_rows(failover: dict[str, Any] | None) -> list[tuple[str, str]]:
    if failover is None:
        return []
    rows = []
    for name in ("standby", "restart"):
        case = failover[name]
        rows.append(
            (
                f"failover, {name}: all current from its start / kill",
                f"{case['seconds']:.2f} / {case['seconds_from_kill']:.1f} s,"
                f" {case['bytes_per_node']:.0f} bytes per node",
            )
        )
        rows.append(
            (
                f"failover, {name}: rebases / catch-ups / full snapshots",
                f"{case['rebases']} / {case['catchups']} / {case['full_snapshots']}"
                f" ({case['digests_computed']} digests computed for it)",
            )
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = Settings(
        nodes=args.nodes,
        services=args.services,
        endpoints=args.endpoints,
        rate=args.rate,
        duration=args.duration,
        warmup=args.warmup,
        processes=args.processes,
        coalesce_ms=args.coalesce_ms,
        snapshot_timeout=args.snapshot_timeout,
        sync_timeout=args.sync_timeout,
        workdir=args.workdir,
        failover=args.failover,
        lease_wait=args.lease_wait,
        secure=not args.insecure,
    )
    result = asyncio.run(measure(settings))
    print(table(result))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nJSON: {args.json}")
    return 0 if result["agents"]["converged"] == result["agents"]["total"] else 1
