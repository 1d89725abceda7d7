"""The benchmark run: nats-server, the watcher and agent processes, then the phases.

Phases: initial sync (every agent fetches its snapshot), a short warm-up churn (the first
changes after the initial sync, reported apart), churn at R changes/s for the duration,
settle (every agent at the watcher's seq), an encoding probe, the raw nats-py publish
comparison, a warm snapshot storm (every client resyncs at once keeping its view, as after a
NATS reconnect: catch-ups) and a cold one (every client restarts without state: full
snapshots), then the same cold storm seen from the watcher's side only (every full snapshot
requested at once by one raw reader that counts the replies, see ``drain``); last the
failover: the leader watcher killed, a standby taking over, then a restart (``failover``).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

from kpng.bus.nats import connect
from kpng.bus.protocol import Bus
from kpng_devrun.procs import ProcessGroup, free_port, nats_server_argv, wait_for_port
from kpng_scale import control
from kpng_scale.access import Access, secure_access
from kpng_scale.drain import drain
from kpng_scale.failover import failover
from kpng_scale.metrics import Phase, failover_targets, summarize
from kpng_scale.settings import Settings
from kpng_scale.synth import node_name
from kpng_scale.waits import converged, wait_converged, wait_watcher

# simulated agents share a connection per process, so the server must hold more for it
NATS_CONFIG = 'max_pending: 2GB\nwrite_deadline: "120s"\n'


def _argv(module: str, *args: object) -> list[str]:
    return [sys.executable, "-m", module, *(str(a) for a in args)]


def start_processes(group: ProcessGroup, s: Settings, port: int) -> Access:
    group.workdir.mkdir(parents=True, exist_ok=True)
    if s.secure:
        access = secure_access(group.workdir / "bus", port, NATS_CONFIG)
        config = access.config
    else:
        access = Access(f"nats://127.0.0.1:{port}")
        config = group.workdir / "nats.conf"
        config.write_text(NATS_CONFIG)
    group.start("nats-server", nats_server_argv(port, config))
    wait_for_port("127.0.0.1", port)
    start_watcher(group, s, access, "watcher")
    return access


def start_watcher(
    group: ProcessGroup, s: Settings, access: Access, name: str, *extra: object
) -> None:
    """A watcher process (``extra``: its options for the failover phase)."""
    group.start(
        name,
        _argv(
            "kpng_scale.watcher",
            *access.flags("watcher"),
            *("--nodes", s.nodes, "--services", s.services),
            *("--endpoints", s.endpoints, "--coalesce-ms", s.coalesce_ms),
            *extra,
        ),
    )


def start_agents(group: ProcessGroup, s: Settings, access: Access) -> int:
    procs = max(1, min(s.processes, s.nodes))
    per = -(-s.nodes // procs)
    started = 0
    for first in range(0, s.nodes, per):
        count = min(per, s.nodes - first)
        group.start(
            f"agents-{first}",
            _argv(
                "kpng_scale.agents",
                *access.flags("agent"),
                *("--first", first, "--count", count),
                *("--snapshot-timeout", s.snapshot_timeout),
            ),
        )
        started += 1
    return started


async def phases(bus: Bus, access: Access, procs: int, s: Settings, started: float) -> control.Json:
    async def stats() -> list[control.Json]:
        return await control.request(bus, f"{control.WATCHER}.stats", timeout=60)

    out: dict[str, Phase] = {}
    before = (await stats())[0]
    statuses = await wait_converged(bus, procs, s, s.sync_timeout)
    out["initial"] = Phase(started, time.time(), before, (await stats())[0], statuses)
    # the first changes after the initial sync are slower (see docs/scale.md): measured
    # apart, so that the churn's figures are the steady state
    warm_before = (await stats())[0]
    [warmup] = await control.request(
        bus, f"{control.WATCHER}.churn", {"rate": s.rate, "duration": s.warmup}, timeout=120
    )
    warm_after = (await stats())[0]
    await wait_converged(bus, procs, s, 60.0)
    before = (await stats())[0]
    [churn] = await control.request(
        bus,
        f"{control.WATCHER}.churn",
        {"rate": s.rate, "duration": s.duration},
        timeout=s.duration + 120,
    )
    after = (await stats())[0]
    # on a busy machine the agents may take over a minute to drain the churn's backlog
    statuses = await wait_converged(bus, procs, s, s.sync_timeout)
    reports = await control.request(bus, f"{control.AGENTS}.report", replies=procs, timeout=60)
    out["churn"] = Phase(churn["started"], churn["ended"], before, after, statuses, reports)
    out["warmup"] = Phase(warmup["started"], warmup["ended"], warm_before, warm_after, [], reports)
    [probe] = await control.request(
        bus, f"{control.WATCHER}.probe", {"changes": s.probe_changes}, timeout=120
    )
    [raw] = await control.request(bus, f"{control.WATCHER}.rawbench", timeout=120)
    for name, warm in (("storm", True), ("storm_cold", False)):
        await wait_converged(bus, procs, s, 60.0)
        before = (await stats())[0]
        storms = await control.request(
            bus, f"{control.AGENTS}.storm", {"warm": warm}, replies=procs, timeout=120
        )
        storm_at = min(r["storm_at"] for r in storms)
        statuses = await wait_converged(bus, procs, s, s.sync_timeout)
        out[name] = Phase(storm_at, time.time(), before, (await stats())[0], statuses)
    [watcher] = await control.request(bus, f"{control.WATCHER}.stats", {"seqs": True}, timeout=60)
    result = summarize(s, out, probe, raw, converged(watcher, statuses, s))
    nodes = [node_name(i) for i in range(s.nodes)]
    drained = await asyncio.to_thread(
        drain, access.url, nodes, timeout=s.sync_timeout, auth=access.auth("bench")
    )
    result["storm_cold_delivery"] = {
        "seconds": drained.seconds,
        "bytes": drained.bytes,
        "replies": drained.replies,
        "gbit_per_s": drained.bytes * 8 / 1e9 / max(drained.seconds, 1e-9),
    }
    return result


async def measure(s: Settings) -> control.Json:
    workdir = s.workdir or Path(tempfile.mkdtemp(prefix="kpng-scale-"))
    with ProcessGroup(workdir) as group:
        port = free_port()
        access = start_processes(group, s, port)
        auth = access.auth("bench")
        bus = await connect(access.url, name="kpng-scale", retry_forever=False, auth=auth)
        try:
            await wait_watcher(bus, s.sync_timeout)
            started = time.time()
            procs = start_agents(group, s, access)
            result = await phases(bus, access, procs, s, started)
            if s.failover:
                start = partial(start_watcher, group, s, access)
                result["failover"] = await failover(bus, group, start, procs, s)
                result["targets"].update(failover_targets(result))
        finally:
            await bus.close()
        killed = set(result.get("failover", {}).get("killed", ()))  # on purpose
        failed = [c.name for c in group.children.values() if not c.running]
        failed = [name for name in failed if name not in killed]
        result["crashed_processes"] = failed
        result["bus_security"] = "roles+tls" if s.secure else "insecure"
        result["workdir"] = str(workdir)
    return result
