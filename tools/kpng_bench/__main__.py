"""``python -m kpng_bench``: what one message costs an agent (:mod:`kpng_bench.decoding`);
then full sync, one change, restart and RSS of the agent's nftables
backend (both families, as ``kpng-agent`` runs it), against kube-proxy's ruleset shape, inside
a network namespace made for the run. The process holds what an agent holds: the node view,
the backend's plans, the agent's modules."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kpng.bus.consumer import Applied
from kpng.dataplane.nft.kernel.execnft import NftCommand
from kpng.dataplane.nft.kernel.nlnft import NetlinkNftables
from kpng.dataplane.nft.objects import Table
from kpng.dataplane.nft.transaction import Nftables, Ruleset, Transaction
from kpng.diff import DeleteEndpoint, Op, SetEndpoint, View
from kpng.model import ViewEndpoint
from kpng_agent.backends.nftables import NftablesBackend, Settings
from kpng_bench import decoding
from kpng_bench.workload import NODE, NODE_IP, endpoint, kube_proxy_shape, node_view


@contextmanager
def namespace() -> Iterator[str]:
    name = f"kpng-{os.getpid()}-bench"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


@dataclass(slots=True)
class Timed:
    """The backend's nftables, timing the reads and runs of one table (the families run
    concurrently: the other family's work overlaps these)."""

    inner: Nftables
    table: Table
    read_s: float = 0.0
    read_end: float = 0.0
    run_start: float = 0.0
    run_s: float = 0.0

    async def read(self, table: Table) -> Ruleset | None:
        t0 = time.perf_counter()
        try:
            return await self.inner.read(table)
        finally:
            if table == self.table:
                self.read_end = time.perf_counter()
                self.read_s += self.read_end - t0

    async def run(self, tx: Transaction) -> None:
        t0 = time.perf_counter()
        try:
            await self.inner.run(tx)
        finally:
            if tx.table == self.table:
                self.run_start = self.run_start or t0
                self.run_s += time.perf_counter() - t0


def backend(ns: str, path: str) -> tuple[NftablesBackend, Timed]:
    settings = Settings(
        node=NODE,
        cluster_cidrs=("10.244.0.0/16",),
        nodeport_addresses=(f"{NODE_IP}/32",),
        netlink=path == "netlink",
    )
    b = NftablesBackend(settings, NftCommand(("ip", "netns", "exec", ns, "nft")), lambda: [NODE_IP])
    timed = Timed(b.nft, Table("ip", "kpng"))
    b.nft = timed
    return b, timed


def close(b: NftablesBackend, timed: Timed) -> None:
    if isinstance(timed.inner, NetlinkNftables):
        timed.inner.close()


def event(
    v: View[ViewEndpoint], seq: int, ops: tuple[Op[ViewEndpoint], ...] = ()
) -> Applied[ViewEndpoint]:
    return Applied("snapshot" if not ops else "delta", "bench", seq, v, ops)


async def full_sync(
    ns: str, path: str, v: View[ViewEndpoint]
) -> tuple[NftablesBackend, Timed, dict[str, float]]:
    b, timed = backend(ns, path)
    t0 = time.perf_counter()
    await b.program(event(v, 1), full=True)
    took = time.perf_counter() - t0
    plan = took - timed.read_s - timed.run_s
    return (
        b,
        timed,
        {
            "seconds": took,
            "read": timed.read_s,
            "plan": plan,
            "apply": timed.run_s,
            "ops": b.last_ops,
        },
    )


async def one_change(b: NftablesBackend, v: View[ViewEndpoint], n: int) -> float:
    """Median of ``n`` single endpoint additions/removals on a loaded table."""
    times = []
    key = next(iter(v.services))
    for r in range(n):
        e = endpoint(10**6 + r // 2, 0, 1)
        op: Op[ViewEndpoint] = SetEndpoint(key, e) if r % 2 == 0 else DeleteEndpoint(key, e.ip)
        eps = dict(v.endpoints[key])
        if r % 2 == 0:
            eps[e.ip] = e
        else:
            eps.pop(e.ip)
        v.endpoints[key] = eps
        t0 = time.perf_counter()
        await b.program(event(v, 2 + r, (op,)), full=False)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def baseline(ns: str, v: View[ViewEndpoint], cap: float) -> float | None:
    text = kube_proxy_shape(v, "kubeproxy")
    t0 = time.perf_counter()
    try:
        subprocess.run(
            ["ip", "netns", "exec", ns, "nft", "-f", "-"],
            input=text.encode(),
            check=True,
            timeout=cap,
            capture_output=True,
        )
    except subprocess.TimeoutExpired:
        return None
    finally:
        subprocess.run(
            ["ip", "netns", "exec", ns, "nft", "delete", "table", "ip", "kubeproxy"],
            capture_output=True,
            check=False,
        )
    return time.perf_counter() - t0


def rss_mb(field: str = "VmRSS") -> float:
    """This process's resident memory (``VmHWM``: its peak), which holds the view and the
    planner as an agent does."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def size_run(ns: str, services: int, cap: float, path: str) -> dict[str, Any]:
    cmd = NftCommand(("ip", "netns", "exec", ns, "nft"))
    for family in ("ip", "ip6"):
        await cmd.delete_table(Table(family, "kpng"))
    v = node_view(services, 10)
    b, timed, full = await full_sync(ns, path, v)
    change = await one_change(b, v, 21)
    close(b, timed)
    del b, timed  # a restarted agent starts without a plan
    b, timed, restart = await full_sync(ns, path, v)
    out = {
        "path": path,
        "services": services,
        "endpoints": services * 10,
        "full_sync": full,
        "one_change_median_s": change,
        "restart": restart,
        "rss_mb": rss_mb(),
        "rss_peak_mb": rss_mb("VmHWM"),
    }
    close(b, timed)
    del b, timed
    out["kube_proxy_shape_s"] = baseline(ns, v, cap)
    for family in ("ip", "ip6"):
        await cmd.delete_table(Table(family, "kpng"))
    return out


def table(results: list[dict[str, Any]]) -> str:
    rows = [
        (
            "services x 10 eps",
            "full sync (ip: read+plan+apply)",
            "1 change (median)",
            "restart (ip: read+plan, ops)",
            "RSS MB",
            "kube-proxy shape",
            "ratio",
        )
    ]
    for r in results:
        base = r["kube_proxy_shape_s"]
        full = r["full_sync"]["seconds"]
        rows.append(
            (
                str(r["services"]),
                f"{full:.2f} s ({r['full_sync']['read']:.2f}+{r['full_sync']['plan']:.2f}"
                f"+{r['full_sync']['apply']:.2f})",
                f"{r['one_change_median_s'] * 1000:.1f} ms",
                f"{r['restart']['seconds']:.2f} s ({r['restart']['read']:.2f}"
                f"+{r['restart']['plan']:.2f}, {r['restart']['ops']})",
                f"{r['rss_mb']:.0f}",
                "did not finish" if base is None else f"{base:.2f} s",
                ">cap" if base is None else f"{base / full:.1f}x",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows
    )


def main() -> int:
    p = argparse.ArgumentParser(prog="kpng_bench")
    p.add_argument("--sizes", default="100,1000,10000")
    p.add_argument("--cap", type=float, default=60.0, help="seconds before the baseline gives up")
    p.add_argument("--out", default="kpng-bench.json")
    p.add_argument(
        "--path", choices=("netlink", "text"), default="netlink", help="element path to measure"
    )
    p.add_argument(
        "--decode-only",
        action="store_true",
        help="only what one message costs an agent (decode + apply; no root needed)",
    )
    args = p.parse_args()
    print(f"one message as large as a message may be; load average {os.getloadavg()[0]:.1f}")
    print(decoding.table(decoding.measure()), flush=True)
    if args.decode_only:
        return 0
    if os.geteuid() != 0:
        print("kpng_bench needs root (it runs nft in a network namespace it creates)")
        return 1
    results = []
    with namespace() as ns:
        for size in (int(s) for s in args.sizes.split(",")):
            results.append(asyncio.run(size_run(ns, size, args.cap, args.path)))
            print(f"done {size}", file=sys.stderr, flush=True)
    load = os.getloadavg()[0]
    print(f"element path: {args.path}; load average {load:.1f} on {os.cpu_count()} CPUs")
    print(table(results))
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    print(f"results written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
