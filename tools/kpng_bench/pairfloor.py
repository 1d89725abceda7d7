"""The machine's own floor for a dual-stack full sync: two processes, each writing one
family's table of the same workload into a network namespace of its own, released at the
same instant, with nothing shared (no fork, no copy-on-write, no commit mutex), against the
IPv4 process alone. A dual-stack sync cannot do better than this layout on the machine that
measures it: it is what two families' work costs on its CPUs. Also how much two CPU-bound
loops slow each other (the CPUs' own parallelism, nothing of kpng's).

Each child builds its view, says ``ready``, waits for ``go`` on its stdin, syncs, and prints
its figures as one JSON line; ``python -m kpng_bench.pairfloor --child STACK SIZE``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

LOOP = 3_000_000  # iterations of the CPU-bound loop (~0.3 s on this project's CI machine)


def _child(stack: str, size: int) -> int:
    from kpng_bench.fullsync import close, full_sync, namespace
    from kpng_bench.workload import node_view

    view = node_view(size, 10, stack)
    with namespace() as ns:  # named after this process: each child has its own
        print("ready", flush=True)
        if sys.stdin.readline().strip() != "go":
            return 1
        b, timed, figures = asyncio.run(full_sync(ns, "netlink", view, stack))
        asyncio.run(b.close())
        close(b, timed)
    print(json.dumps({"seconds": figures["seconds"], "cpu": figures["cpu"]}), flush=True)
    return 0


def _run_together(*stacks: str, size: int) -> list[dict[str, float]]:
    """Start one child per stack, release them together once all are ready, their figures."""
    argv = [sys.executable, "-m", "kpng_bench.pairfloor", "--child"]
    children = [
        subprocess.Popen(
            [*argv, s, str(size)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        for s in stacks
    ]
    try:
        for c in children:
            assert c.stdout is not None and c.stdout.readline().strip() == "ready"
        for c in children:
            assert c.stdin is not None
            c.stdin.write("go\n")
            c.stdin.flush()
        out = []
        for c in children:
            assert c.stdout is not None
            out.append(json.loads(c.stdout.readline()))
            if c.wait(timeout=120) != 0:
                raise RuntimeError(f"a pair child exited with {c.returncode}")
        return out
    finally:
        for c in children:
            if c.poll() is None:
                c.kill()
                c.wait()
            for pipe in (c.stdin, c.stdout):
                if pipe is not None:
                    pipe.close()


def _spin() -> float:
    t0, n = time.perf_counter(), 0
    for i in range(LOOP):
        n += i * i
    return time.perf_counter() - t0


def _spin_seconds(together: int) -> float:
    """Wall time of ``together`` CPU-bound loops started at once (the slowest)."""
    argv = [sys.executable, "-m", "kpng_bench.pairfloor", "--spin"]
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) for _ in range(together)]
    times = [float(p.communicate()[0]) for p in procs]
    for p in procs:
        if p.stdout is not None:
            p.stdout.close()
    return max(times)


def measure(size: int = 10000, rounds: int = 3) -> dict[str, Any]:
    """``rounds`` of: IPv4 alone, then IPv4 and IPv6 together; medians."""
    alone, pair, dual, cpu_alone, cpu_pair = [], [], [], [], []
    spin1, spin2 = [], []
    for _ in range(rounds):
        (one,) = _run_together("ipv4", size=size)
        alone.append(one["seconds"])
        cpu_alone.append(one["cpu"])
        both = _run_together("ipv4", "ipv6", size=size)
        pair.append(max(b["seconds"] for b in both))
        cpu_pair += [b["cpu"] for b in both]
        (shipped,) = _run_together("dual", size=size)
        dual.append(shipped["seconds"])
        spin1.append(_spin_seconds(1))
        spin2.append(_spin_seconds(2))
    a, p = statistics.median(alone), statistics.median(pair)
    return {
        "services": size,
        "alone_s": alone,
        "pair_s": pair,
        "ratio": p / a,
        "dual_s": dual,
        "dual_ratio": statistics.median(dual) / a,
        "cpu_alone_s": cpu_alone,
        "cpu_pair_s": cpu_pair,
        "spin_alone_s": spin1,
        "spin_together_s": spin2,
        "spin_ratio": statistics.median(spin2) / statistics.median(spin1),
        "cpus": os.cpu_count(),
    }


def line(m: dict[str, Any]) -> str:
    a, p = statistics.median(m["alone_s"]), statistics.median(m["pair_s"])
    return (
        f"floor of a dual-stack sync here, {m['services']} services: one IPv4 and one IPv6"
        f" process at once, nothing shared, {p:.2f} s against {a:.2f} s for IPv4 alone:"
        f" {m['ratio']:.2f}x; kpng's dual-stack sync (a forked child for IPv6) in the same"
        f" conditions {statistics.median(m['dual_s']):.2f} s, {m['dual_ratio']:.2f}x"
        f" (medians of {len(m['pair_s'])}; two CPU-bound loops at once"
        f" {m['spin_ratio']:.2f}x of one, on {m['cpus']} CPUs)"
    )


def main() -> int:
    p = argparse.ArgumentParser(prog="kpng_bench.pairfloor")
    p.add_argument("--child", nargs=2, metavar=("STACK", "SIZE"))
    p.add_argument("--spin", action="store_true", help="time one CPU-bound loop")
    p.add_argument("--size", type=int, default=10000)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    if args.child:
        return _child(args.child[0], int(args.child[1]))
    if args.spin:
        print(_spin())
        return 0
    started = time.perf_counter()
    print(line(measure(args.size, args.rounds)), f"({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
