"""``python -m tests.faults.measure`` (``make reliability``): the fault matrix, measured.

Runs every fault of :mod:`tests.faults.matrix` ``--runs`` times against real processes and
prints, per fault, the seconds from the recovery until every agent held the cluster's
current view again (min, median, max), with the machine's load. docs/reliability.md reports
these figures.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
import tempfile
from pathlib import Path

from kpng_apisim import ApiSimulator
from kpng_devrun.procs import ProcessGroup
from tests.faults import matrix
from tests.integration.harness import Deployment
from tests.kube.deploy import KubeDeployment


def run_fault(name: str, workdir: Path) -> matrix.Outcome:
    with ProcessGroup(workdir / "logs") as group:
        return matrix.FAULTS[name](Deployment(workdir, group))


async def run_kube_fault(name: str, workdir: Path) -> matrix.Outcome:
    sim = ApiSimulator(kubeconfig_path=workdir / "kubeconfig", bookmark_interval=0.2)
    await sim.start()
    try:
        with ProcessGroup(workdir / "logs") as group:
            return await matrix.KUBE_FAULTS[name](
                sim, KubeDeployment(sim, Deployment(workdir, group))
            )
    finally:
        await sim.stop()


def measure(name: str, runs: int) -> list[matrix.Outcome]:
    out = []
    for i in range(runs):
        with tempfile.TemporaryDirectory(prefix="kpng-fault-") as tmp:
            if name in matrix.FAULTS:
                outcome = run_fault(name, Path(tmp))
            else:
                outcome = asyncio.run(run_kube_fault(name, Path(tmp)))
        print(f"  {name} #{i + 1}: {outcome.seconds:.2f} s", file=sys.stderr, flush=True)
        out.append(outcome)
    return out


def table(results: dict[str, list[matrix.Outcome]]) -> str:
    rows = [("fault", "converged: min / median / max", "after", "excluded (max)")]
    for name, outcomes in results.items():
        s = [o.seconds for o in outcomes]
        excluded = max(o.excluded for o in outcomes)
        rows.append(
            (
                name,
                f"{min(s):.2f} / {statistics.median(s):.2f} / {max(s):.2f} s ({len(s)} runs)",
                outcomes[0].detail,
                f"{excluded:.2f} s" if excluded else "",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m tests.faults.measure")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--only", default="", help="faults whose name contains this")
    args = p.parse_args()
    # the API simulator, stopped with watches open, logs each one cut: not the measurement
    logging.getLogger("uvicorn.error").setLevel(logging.CRITICAL)
    names = [n for n in [*matrix.FAULTS, *matrix.KUBE_FAULTS] if args.only in n]
    load = os.getloadavg()[0]
    results = {name: measure(name, args.runs) for name in names}
    print(
        f"{matrix.SERVICES} services, 2 nodes, dump agents, tick interval "
        f"{matrix.TICK_INTERVAL:.0f} s; load average {load:.1f} at the start, "
        f"{os.getloadavg()[0]:.1f} at the end, on {os.cpu_count()} CPUs"
    )
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
