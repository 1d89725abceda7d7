"""The failover phase: the leading watcher killed (-9), another one leads; what that costs.

Two cases (issue 13): a **standby** started beforehand with the same cluster (its views
warm, its gate closed) takes over once the lease wait has passed (the bench opens its gate
as the election would on winning the lease); then that watcher, the only one left, is
killed and a new process **restarted** (one replica). Nothing changes in the cluster
meanwhile, so every agent should move to the new epoch by a rebase: the new leader ticks
every node, each agent asks for a snapshot presenting its view's digest, and gets one reply
without operations.

Per case: seconds from the new leader's start (standby: when it leads; restart: when its
initial load is complete) to every agent current at the new epoch; the same from the kill
(with the lease wait, or the new process's start and load); bytes moved per node (the new
leader's ticks and deltas, the snapshot requests it answered and its replies); and how the
agents resynced (rebases, catch-ups, full snapshots).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from kpng.bus.protocol import Bus
from kpng_devrun.procs import ProcessGroup
from kpng_scale import control
from kpng_scale.settings import Settings
from kpng_scale.waits import wait_converged, wait_watcher

STANDBY = "kpngscale.ctl.standby"  # the standby's control subjects (then the leader's)
RESTARTED = "kpngscale.ctl.restarted"  # the restarted watcher's
MOVED = ("sent_bytes", "reply_bytes", "request_bytes")
KINDS = ("rebases", "catchups", "full_snapshots", "resyncs")  # how the agents resynced
StartWatcher = Callable[..., None]  # (process name, *options)


async def failover(
    bus: Bus, group: ProcessGroup, start: StartWatcher, procs: int, s: Settings
) -> control.Json:
    changes = group.workdir / "changes.json"  # the churn so far: the new watchers replay it
    await control.request(bus, f"{control.WATCHER}.state", {"path": str(changes)}, timeout=60)
    start("watcher-standby", "--replay", changes, "--standby", "--control", STANDBY)
    await wait_watcher(bus, s.sync_timeout, STANDBY)

    async def promote() -> float:
        await asyncio.sleep(s.lease_wait)  # the standby sees the lease expire
        await control.request(bus, f"{STANDBY}.lead", timeout=60)
        return 0.0

    standby = await _case(bus, group, procs, s, "watcher", control.WATCHER, STANDBY, promote)

    async def restart() -> float:
        spawned = time.time()
        start("watcher-restarted", "--replay", changes, "--control", RESTARTED)
        await wait_watcher(bus, s.sync_timeout, RESTARTED)
        return spawned

    restarted = await _case(bus, group, procs, s, "watcher-standby", STANDBY, RESTARTED, restart)
    worst = max((standby, restarted), key=lambda case: case["seconds"])
    return {
        "standby": standby,
        "restart": restarted,
        "seconds": worst["seconds"],
        "bytes_per_node": max(standby["bytes_per_node"], restarted["bytes_per_node"]),
        "lease_wait_s": s.lease_wait,
        "killed": ["watcher", "watcher-standby"],
    }


async def _case(
    bus: Bus,
    group: ProcessGroup,
    procs: int,
    s: Settings,
    leader: str,
    leader_control: str,
    new: str,
    take_over: Callable[[], Awaitable[float]],
) -> control.Json:
    """Kill ``leader``, let ``take_over`` bring the watcher at ``new`` to lead, measure."""
    before_agents = await wait_converged(bus, procs, s, 60.0, leader_control)
    marks = await control.request(bus, f"{control.AGENTS}.mark", replies=procs, timeout=60)
    [old] = await control.request(bus, f"{leader_control}.stats", timeout=60)
    before = await _stats(bus, new)  # a standby's counters (a restart starts from zero)
    killed = time.time()
    group.children[leader].kill()
    spawned = await take_over()  # the process's start (0: a standby, started before)
    statuses = await wait_converged(bus, procs, s, s.sync_timeout, new)
    after = await _stats(bus, new)
    started = after["lead_at"] if after["lead_at"] else after["ready_at"]
    current = max(st["last_snapshot_at"] for st in statuses)
    moved = sum(after[k] - before.get(k, 0) for k in MOVED)
    return {
        "seconds": current - started,  # from the new leader's start
        "seconds_from_kill": current - killed,  # with the lease wait, or start and load
        "load_s": after["ready_at"] - spawned if spawned else 0.0,  # a restart's start-up
        "bytes_per_node": moved / s.nodes,
        "bytes": {k: after[k] - before.get(k, 0) for k in MOVED},
        "epochs": [old["epoch"], after["epoch"]],
        # agents whose view's digest was unknown before the kill: each computes it once its
        # process has been quiet for a while (kpng.bus.client.DIGEST_IDLE), else for the
        # rebase request
        "digests_computed": sum(m["digests_unknown"] for m in marks),
        **{kind: _delta(before_agents, statuses, kind) for kind in KINDS},
    }


async def _stats(bus: Bus, watcher: str) -> control.Json:
    try:
        [stats] = await control.request(bus, f"{watcher}.stats", timeout=2.0)
    except TimeoutError:  # not started yet
        return {}
    return stats


def _delta(before: list[control.Json], after: list[control.Json], kind: str) -> int:
    return int(sum(st[kind] for st in after) - sum(st[kind] for st in before))
