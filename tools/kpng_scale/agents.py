"""Simulated agents: many real NodeViewClients with a null backend in one process.

``python -m kpng_scale.agents --nats URL --first I --count K`` follows the views of nodes
I..I+K-1 over one NATS connection. Each delta event is "applied" when the client yields it
(the null backend programs nothing); the process records, per change batch (identified by
its trigger time), how many agents applied it and when the last one did. ``storm``
restarts every client at once (each fetches a snapshot again); ``status``, ``report`` and
``mark`` (before a failover) answer the benchmark.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import time
from dataclasses import dataclass, field

from kpng.bus import NodeViewClient
from kpng.bus.casts import CastReceiver
from kpng.bus.codec import OpCache
from kpng.bus.flags import add_bus_arguments
from kpng.bus.nats import connect
from kpng.bus.protocol import Bus
from kpng_scale import control
from kpng_scale.synth import node_name


@dataclass(slots=True)
class SimAgent:
    node: str
    task: asyncio.Task[None] | None = None
    client: NodeViewClient | None = None
    epoch: str = ""
    seq: int = -1
    services: int = 0
    snapshots: int = 0
    snapshot_at: float = 0.0


@dataclass(slots=True)
class Recorder:
    """Per batch trigger time: [agents that applied it, last apply time, sum of latencies]."""

    batches: dict[float, list[float]] = field(default_factory=dict)

    def note(self, trigger: float, applied: float) -> None:
        entry = self.batches.get(trigger)
        if entry is None:
            self.batches[trigger] = [1, applied, applied - trigger]
        else:
            entry[0] += 1
            entry[1] = max(entry[1], applied)
            entry[2] += applied - trigger


class Agents:
    def __init__(self, bus: Bus, nodes: list[str], snapshot_timeout: float) -> None:
        self.bus = bus
        self.agents = [SimAgent(n) for n in nodes]
        self.snapshot_timeout = snapshot_timeout
        self.recorder = Recorder()
        self.op_cache = OpCache()  # agents of one process decode each distinct op once
        # and hear each cast (a zone's part of their snapshots) once: one subscription
        self.casts = CastReceiver(bus, self.op_cache, keep=2)
        self.storm_at = 0.0

    def start(self) -> None:
        for agent in self.agents:
            agent.task = asyncio.create_task(self._follow(agent))

    async def stop(self) -> None:
        tasks = [a.task for a in self.agents if a.task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _follow(self, agent: SimAgent) -> None:
        client = NodeViewClient(
            self.bus,
            agent.node,
            snapshot_timeout=self.snapshot_timeout,
            op_cache=self.op_cache,
            casts=self.casts,
        )
        agent.client = client
        async for event in client:
            now = time.time()
            if event.kind == "snapshot" or event.time is None:  # full snapshot or catch-up
                agent.snapshots += 1
                agent.snapshot_at = now
            elif event.trigger_time is not None:
                self.recorder.note(event.trigger_time, now)
            agent.epoch, agent.seq = event.epoch, event.seq
            agent.services = len(event.view.services)

    async def storm(self, body: control.Json) -> control.Json:
        """Every client resyncs at once. ``warm``: each keeps its view and resyncs as after
        a reconnect (a catch-up); else (cold) every client starts over without state:
        subscribe, fetch a full snapshot, follow."""
        self.storm_at = time.time()
        if body.get("warm"):
            for agent in self.agents:
                agent.seq, agent.snapshot_at = -1, 0.0  # at the watcher's seq again once resynced
                if agent.client is not None:
                    agent.client.request_resync("benchmark: warm storm")
            return {"storm_at": self.storm_at}
        await self.stop()
        self.storm_at = time.time()
        for agent in self.agents:
            agent.seq, agent.snapshot_at = -1, 0.0
        self.start()
        return {"storm_at": self.storm_at}

    async def status(self, body: control.Json) -> control.Json:
        clients = [a.client for a in self.agents if a.client is not None]
        return {
            "agents": len(self.agents),
            "synced": sum(1 for a in self.agents if a.seq >= 0),
            "seqs": {a.node: [a.epoch, a.seq] for a in self.agents},
            "services": {a.node: a.services for a in self.agents},
            "last_snapshot_at": max((a.snapshot_at for a in self.agents), default=0.0),
            "resyncs": sum(c.stats.resyncs for c in clients),
            "full_snapshots": sum(c.stats.snapshots for c in clients),
            "catchups": sum(c.stats.catchups for c in clients),
            "rebases": sum(c.stats.rebases for c in clients),
            "snapshot_failures": sum(c.stats.snapshot_failures for c in clients),
            "casts": sum(c.stats.casts for c in clients),
            "usage": control.process_usage(),
        }

    async def mark(self, body: control.Json) -> control.Json:
        """Forget when each agent last took a snapshot (catch-up, rebase or full): the
        next ``status`` says when the last of them took one since. Also says how many
        have not computed their view's digest yet (a client computes it once its process
        took no snapshot for a while, or when first asked for, then keeps it current)."""
        for agent in self.agents:
            agent.snapshot_at = 0.0
        clients = [a.client for a in self.agents if a.client is not None]
        unknown = sum(1 for c in clients if c.view.known_digest is None)
        return {"agents": len(self.agents), "digests_unknown": unknown}

    async def report(self, body: control.Json) -> control.Json:
        return {"batches": [[t, *v] for t, v in self.recorder.batches.items()]}


async def serve(args: argparse.Namespace) -> None:
    # ~170 views in one process: their endpoint tables are shared copy-on-write, so every
    # delta leaves a few new long-lived dicts per agent, and the cyclic collector's full
    # passes over them paused the process for up to 1 s (a real agent holds one view, freezes
    # it after a full sync and changes it in place). The views are acyclic: reference
    # counting frees them, so the simulated agents run without the cyclic collector.
    gc.disable()
    nodes = [node_name(i) for i in range(args.first, args.first + args.count)]
    bus = await connect(args.nats, name=f"kpng-scale-agents-{args.first}", auth=args.auth)
    agents = Agents(bus, nodes, args.snapshot_timeout)
    try:
        for command in ("status", "report", "storm", "mark"):
            await control.serve(bus, f"{control.AGENTS}.{command}", getattr(agents, command))
        agents.start()
        await asyncio.Event().wait()
    finally:
        await agents.stop()
        await bus.close()


def main() -> int:
    p = argparse.ArgumentParser(prog="kpng_scale.agents")
    add_bus_arguments(p)
    p.add_argument("--first", type=int, required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--snapshot-timeout", type=float, default=5.0)
    return control.run_process(p, serve)


if __name__ == "__main__":
    raise SystemExit(main())
