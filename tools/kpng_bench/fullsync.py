"""The bench's full sync of the agent's nftables backend into a network namespace made for
it, timed (shared by ``python -m kpng_bench`` and :mod:`kpng_bench.pairfloor`)."""

from __future__ import annotations

import asyncio
import os
import resource
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from kpng.bus.consumer import Applied
from kpng.dataplane.nft.kernel.execnft import NftCommand
from kpng.dataplane.nft.kernel.nlnft import NetlinkNftables
from kpng.dataplane.nft.objects import Table
from kpng.dataplane.nft.transaction import Nftables, Ruleset, Transaction
from kpng.diff import Op, View
from kpng.model import ViewEndpoint
from kpng_agent.backends.nftables import NftablesBackend, Settings
from kpng_bench.workload import FAMILIES, NODE, NODE_IP, NODE_IP6

POD_CIDRS = {4: "10.244.0.0/16", 6: "fd00:244::/64"}
NODE_CIDRS = {4: f"{NODE_IP}/32", 6: f"{NODE_IP6}/128"}


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


def cpu_s() -> float:
    """CPU seconds of this process and of its children waited for (``nft``)."""
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def backend(ns: str, path: str, stack: str = "ipv4") -> tuple[NftablesBackend, Timed]:
    families = FAMILIES[stack]
    settings = Settings(
        node=NODE,
        cluster_cidrs=tuple(POD_CIDRS[f] for f in families),
        nodeport_addresses=tuple(NODE_CIDRS[f] for f in families),
        netlink=path == "netlink",
    )
    b = NftablesBackend(settings, NftCommand(("ip", "netns", "exec", ns, "nft")), lambda: [NODE_IP])
    timed = Timed(b.nft, Table("ip" if families[0] == 4 else "ip6", "kpng"))
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
    ns: str, path: str, v: View[ViewEndpoint], stack: str = "ipv4"
) -> tuple[NftablesBackend, Timed, dict[str, float]]:
    b, timed = backend(ns, path, stack)
    c0, t0 = cpu_s(), time.perf_counter()
    await b.program(event(v, 1), full=True)
    took = time.perf_counter() - t0
    # a family written by a forked child: its plan comes back after the sync (its CPU counts
    # once it is reaped)
    await asyncio.gather(*b.parallel.adopting.values())
    handed, cpu = time.perf_counter() - t0 - took, cpu_s() - c0
    plan = took - timed.read_s - timed.run_s
    return (
        b,
        timed,
        {
            "seconds": took,
            "cpu": cpu,
            "read": timed.read_s,
            "plan": plan,
            "apply": timed.run_s,
            "ops": b.last_ops,
            "plan_handed_back": handed,
        },
    )
