"""``python -m kpng_bench``: what one message costs an agent (:mod:`kpng_bench.decoding`);
then full sync, one change, restart and RSS of the agent's nftables
backend (both families, as ``kpng-agent`` runs it), against kube-proxy's ruleset shape, inside
a network namespace made for the run. The process holds what an agent holds: the node view,
the backend's plans, the agent's modules. Besides the IPv4 cluster at every size, an IPv6-only
and a dual-stack cluster (``--stacks``, ``--stack-sizes``); every figure comes with the CPU
time it took (this process and its ``nft`` children), which a loaded machine changes less than
wall time."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from kpng.dataplane.nft.kernel.execnft import NftCommand
from kpng.dataplane.nft.netlink.rules import chain_messages
from kpng.dataplane.nft.objects import Table
from kpng.dataplane.nft.planner import static_planned
from kpng.diff import DeleteEndpoint, Op, SetEndpoint, View
from kpng.model import ViewEndpoint
from kpng_agent.backends.nftables import NftablesBackend
from kpng_bench.coldstart import cold_start
from kpng_bench.fullsync import close, cpu_s, event, full_sync, namespace
from kpng_bench.workload import (
    FAMILIES,
    endpoint,
    kube_proxy_shape,
    node_view,
)


async def one_change(b: NftablesBackend, v: View[ViewEndpoint], n: int, family: int = 4) -> float:
    """Median of ``n`` single endpoint additions/removals on a loaded table."""
    times = []
    key = next(iter(v.services))
    for r in range(n):
        e = endpoint(10**6 + r // 2, 0, 1, family)
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


def baseline(ns: str, v: View[ViewEndpoint], cap: float) -> tuple[float, float] | None:
    """Wall and CPU seconds (``nft``'s) of loading kube-proxy's shape; None past the cap."""
    text = kube_proxy_shape(v, "kubeproxy")
    c0, t0 = cpu_s(), time.perf_counter()
    try:
        subprocess.run(
            ["ip", "netns", "exec", ns, "nft", "-f", "-"],
            input=text.encode(),
            check=True,
            timeout=cap,
            capture_output=True,
        )
        took = time.perf_counter() - t0, cpu_s() - c0
    except subprocess.TimeoutExpired:
        return None
    finally:
        subprocess.run(
            ["ip", "netns", "exec", ns, "nft", "delete", "table", "ip", "kubeproxy"],
            capture_output=True,
            check=False,
        )
    return took


def rss_mb(field: str = "VmRSS") -> float:
    """This process's resident memory (``VmHWM``: its peak), which holds the view and the
    planner as an agent does."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def size_run(
    ns: str, services: int, cap: float, path: str, stack: str = "ipv4"
) -> dict[str, Any]:
    cmd = NftCommand(("ip", "netns", "exec", ns, "nft"))
    for family in ("ip", "ip6"):
        await cmd.delete_table(Table(family, "kpng"))
    v = node_view(services, 10, stack)
    b, timed, full = await full_sync(ns, path, v, stack)
    change = await one_change(b, v, 21, FAMILIES[stack][0])
    rss_full = rss_mb()  # an agent that programmed a new node: its view, plan, modules
    close(b, timed)
    del b, timed  # a restarted agent starts without a plan, nor what a process keeps
    static_planned.cache_clear()
    chain_messages.cache_clear()
    b, timed, restart = await full_sync(ns, path, v, stack)
    out = {
        "path": path,
        "stack": stack,
        "services": services,
        "endpoints": services * 10,
        "full_sync": full,
        "one_change_median_s": change,
        "restart": restart,
        "rss_full_sync_mb": rss_full,
        "rss_mb": rss_mb(),
        "rss_peak_mb": rss_mb("VmHWM"),
    }
    close(b, timed)
    del b, timed
    # kube-proxy's shape is written for IPv4 only: the other stacks compare with IPv4's figures
    base = baseline(ns, v, cap) if stack == "ipv4" else None
    out["kube_proxy_shape_s"] = None if base is None else base[0]
    out["kube_proxy_shape_cpu"] = None if base is None else base[1]
    for family in ("ip", "ip6"):
        await cmd.delete_table(Table(family, "kpng"))
    return out


def table(results: list[dict[str, Any]]) -> str:
    rows = [
        (
            "stack",
            "services x 10 eps",
            "full sync (first family: read+plan+apply; cpu)",
            "1 change (median)",
            "restart (first family: read+plan, ops)",
            "RSS MB (full sync, restart)",
            "kube-proxy shape (cpu)",
            "ratio (cpu)",
        )
    ]
    for r in results:
        full = r["full_sync"]["seconds"]
        rows.append(
            (
                r["stack"],
                str(r["services"]),
                f"{full:.2f} s ({r['full_sync']['read']:.2f}+{r['full_sync']['plan']:.2f}"
                f"+{r['full_sync']['apply']:.2f}; {r['full_sync']['cpu']:.2f})",
                f"{r['one_change_median_s'] * 1000:.1f} ms",
                f"{r['restart']['seconds']:.2f} s ({r['restart']['read']:.2f}"
                f"+{r['restart']['plan']:.2f}, {r['restart']['ops']})",
                f"{r['rss_full_sync_mb']:.0f}, {r['rss_mb']:.0f}",
                _baseline(r),
                _ratio(r),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows
    )


def stack_ratios(results: list[dict[str, Any]]) -> list[str]:
    """Each other stack's full sync against IPv4's at the same size (issue 18: within 1.3x)."""
    ipv4 = {r["services"]: r["full_sync"] for r in results if r["stack"] == "ipv4"}
    out = []
    for r in results:
        base = ipv4.get(r["services"])
        if r["stack"] == "ipv4" or base is None:
            continue
        full = r["full_sync"]
        handed = full.get("plan_handed_back", 0.0)
        after = (
            f"; a forked family's plan handed back {handed:.2f} s later" if handed > 0.001 else ""
        )
        out.append(
            f"{r['stack']} {r['services']}: full sync {full['seconds'] / base['seconds']:.2f}x"
            f" of IPv4's ({full['seconds']:.2f} s against {base['seconds']:.2f} s; CPU"
            f" {full['cpu'] / base['cpu']:.2f}x{after})"
        )
    return out


def _baseline(r: dict[str, Any]) -> str:
    base = r["kube_proxy_shape_s"]
    if r["stack"] != "ipv4":
        return "-"
    return "did not finish" if base is None else f"{base:.2f} s ({r['kube_proxy_shape_cpu']:.2f})"


def _ratio(r: dict[str, Any]) -> str:
    base, full = r["kube_proxy_shape_s"], r["full_sync"]
    if r["stack"] != "ipv4":
        return "-"
    if base is None:
        return ">cap"
    return f"{base / full['seconds']:.1f}x ({r['kube_proxy_shape_cpu'] / full['cpu']:.1f}x)"


def _sizes(text: str) -> list[int]:
    """``"100,10000"`` as sizes; ``none`` (or nothing): none."""
    return [int(s) for s in text.split(",") if s and s != "none"]


def main() -> int:
    p = argparse.ArgumentParser(prog="kpng_bench")
    p.add_argument("--sizes", default="100,1000,10000", help="IPv4 cluster sizes")
    p.add_argument("--stacks", default="ipv6,dual", help="other stacks (ipv6, dual), or none")
    p.add_argument("--stack-sizes", default="10000", help="sizes of the other stacks")
    p.add_argument(
        "--cold-start",
        default="100,10000",
        help="sizes at which to time kpng-agent from exec to programmed (none: skip)",
    )
    p.add_argument(
        "--cold-start-dual",
        default="10000",
        help="sizes at which to time a dual-stack agent's cold start, with the second family "
        "written by a child and without (--parallel-families-above 0); none: skip",
    )
    p.add_argument(
        "--pair-floor",
        default="10000",
        help="sizes at which to time one IPv4 and one IPv6 process writing at once, nothing "
        "shared (the machine's floor for a dual-stack sync), beside kpng's own, all in fresh "
        "processes (kpng_bench.pairfloor); none: skip",
    )
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
    if args.decode_only:
        _decoding()
        return 0
    if os.geteuid() != 0:
        print("kpng_bench needs root (it runs nft in a network namespace it creates)")
        return 1
    runs = [("ipv4", int(s)) for s in args.sizes.split(",") if s]
    stacks = [s for s in args.stacks.split(",") if s and s != "none"]
    runs += [(st, int(s)) for st in stacks for s in args.stack_sizes.split(",") if s]
    cold_sizes, dual_sizes = _sizes(args.cold_start), _sizes(args.cold_start_dual)
    results = []
    starts = []
    with namespace() as ns:
        for stack, size in runs:
            results.append(asyncio.run(size_run(ns, size, args.cap, args.path, stack)))
            print(f"done {stack} {size}", file=sys.stderr, flush=True)
        with tempfile.TemporaryDirectory(prefix="kpng-bench-") as work:
            for size in cold_sizes:
                starts.append(cold_start(ns, size, Path(work)))
                print(f"done cold start {size}", file=sys.stderr, flush=True)
            for size in dual_sizes:
                for extra in ((), ("--parallel-families-above", "0")):
                    starts.append(cold_start(ns, size, Path(work), stack="dual", agent_args=extra))
                    print(f"done dual cold start {size} {extra}", file=sys.stderr, flush=True)
    floors = []
    for size in _sizes(args.pair_floor):
        from kpng_bench import pairfloor

        floors.append(pairfloor.measure(size))
        print(f"done pair floor {size}", file=sys.stderr, flush=True)
    load = os.getloadavg()[0]
    # after the dataplane's figures: its heap (~20 MB kept) is not what an agent holds
    _decoding()
    print(f"element path: {args.path}; load average {load:.1f} on {os.cpu_count()} CPUs")
    print(table(results))
    for line in stack_ratios(results):
        print(line)
    for f in floors:
        from kpng_bench import pairfloor

        print(pairfloor.line(f))
    for c in starts:
        what = "" if c["stack"] == "ipv4" else f", {c['stack']}"
        what += f" ({' '.join(c['agent_args'])})" if c["agent_args"] else ""
        print(
            f"cold start, {c['services']} services{what}: exec to programmed"
            f" {c['exec_to_programmed_s']:.2f} s, {c['cpu_s']:.2f} s of CPU, peak RSS"
            f" {c['peak_rss_mb']:.0f} MB (medians of {len(c['runs_s'])}; of it the first full"
            f" sync {c['first_sync_s']:.2f} s)"
        )
    document = {"sizes": results, "cold_start": starts, "pair_floor": floors}
    Path(args.out).write_text(json.dumps(document, indent=1) + "\n")
    print(f"results written to {args.out}")
    return 0


def _decoding() -> None:
    from kpng_bench import decoding  # only here: what it imports is no agent's memory

    print(f"one message as large as a message may be; load average {os.getloadavg()[0]:.1f}")
    print(decoding.table(decoding.measure()), flush=True)


if __name__ == "__main__":
    sys.exit(main())
