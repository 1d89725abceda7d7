"""The fault matrix (issue 14): each fault run against real processes, timed from recovery.

A scenario starts nats-server, a watcher and two dump agents on a cluster of
:data:`SERVICES` services, waits until both agents hold their views, does its fault,
recovers, and returns how long after the recovery both agents held the cluster's current
view again (every service, endpoint and node: nothing lost). It raises if they don't within
:data:`CONVERGE_TIMEOUT`. The tests (test_fault_matrix.py) run each once and assert that;
``python -m tests.faults.measure`` (``make reliability``) runs each several times and prints
the figures docs/reliability.md reports.

The watcher runs with its default tick interval (1 s), so the waits that are configured show
as they are configured.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from kpng.bus.codec import Delta, MalformedMessage, Message, Tick, decode
from kpng.bus.nats import connect
from kpng.bus.subjects import Subjects
from kpng_apisim import ApiSimulator
from kpng_devrun.procs import Child, free_port, nats_server_argv, wait_for_port
from tests.faults.proxy import DroppingProxy
from tests.integration.harness import Deployment, node, service, slice_, wait_until
from tests.kube import objects as kube_objects
from tests.kube.deploy import KubeDeployment, eventually

NODES = ("n1", "n2")
SERVICES = 40
TICK_INTERVAL = 1.0  # the watcher's default
CONVERGE_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class Outcome:
    """``seconds`` from the recovery until every agent held the current view.

    For a restarted process, recovery is when it is up (its first log line after its
    imports); for the API server, when the watcher's next retry reaches it. ``excluded``:
    the seconds before that (the process's startup, the retry backoff), not counted."""

    seconds: float
    detail: str = ""
    excluded: float = 0.0


def up_at(child: Child, marker: str, since: float = 0.0, timeout: float = 30.0) -> float:
    """The wall-clock time of the first line of ``child``'s log holding ``marker`` logged
    at ``since`` or later, from the timestamp the line carries (logging's local time, in
    milliseconds, as :func:`time.time` counts)."""
    found: list[float] = []

    def check() -> bool:
        for line in child.log().splitlines():
            if marker in line:
                stamp = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
                if stamp >= since - 0.002:
                    found.append(stamp)
                    return True
        return False

    wait_until(f"{child.name} to log {marker!r}", check, timeout)
    return found[0]


def cluster(version: int) -> list[dict[str, Any]]:
    """Two nodes, :data:`SERVICES` services with an endpoint on each node; ``version`` moves
    one endpoint of ``s0`` and renames one service (an add and a delete per edit)."""
    objects: list[dict[str, Any]] = [
        node("n1", "z1", "192.168.0.1"),
        node("n2", "z2", "192.168.0.2"),
    ]
    for i in range(SERVICES):
        name = f"s{i}"
        eps = [(f"10.244.1.{i}", "n1"), (f"10.244.2.{i}", "n2")]
        if i == 0:
            eps[0] = (f"10.244.3.{version % 250}", "n1")
        objects += [service(name, f"10.96.1.{i}"), slice_(name, eps)]
    edited = f"edit-{version}"
    objects += [service(edited, "10.96.2.1"), slice_(edited, [(f"10.244.4.{version % 250}", "n2")])]
    return objects


def converge(d: Deployment, since: float) -> float:
    """Seconds from ``since`` (wall clock) until every agent's dump equals its view of the
    cluster file."""
    d.wait_converged(*NODES, timeout=CONVERGE_TIMEOUT)
    return time.time() - since


def start(d: Deployment, nats_config: str = "", agent_urls: dict[str, str] | None = None) -> None:
    """nats-server (with ``nats_config`` if any), the watcher and the agents, converged."""
    d.tick_interval = TICK_INTERVAL
    d.write_cluster(cluster(0))
    if nats_config:
        d.nats_port = d.nats_port or free_port()
        path = d.workdir / "nats.conf"
        path.write_text(nats_config)
        d.group.start("nats-server", nats_server_argv(d.nats_port, path))
        wait_for_port("127.0.0.1", d.nats_port)
    else:
        d.start_nats()
    d.start_watcher()
    for name in NODES:
        d.start_agent(name, (agent_urls or {}).get(name, ""))
    d.wait_converged(*NODES, timeout=CONVERGE_TIMEOUT)


# -- the faults ---------------------------------------------------------------------------
def watcher_kill(d: Deployment) -> Outcome:
    """kill -9 of the watcher, an edit while it is away: agents keep their state, then take
    the new watcher's epoch (a rebase, or a snapshot where the view changed)."""
    start(d)
    before = {n: d.dump(n) for n in NODES}
    d.group.children["watcher"].kill()
    d.write_cluster(cluster(1))
    time.sleep(3 * TICK_INTERVAL + 0.5)  # the agents see no tick for three intervals
    assert {n: d.dump(n) for n in NODES} == before, "agents must keep their state"
    assert all(d.agents[n].running for n in NODES)
    restarted = time.time()
    watcher = d.start_watcher("watcher-2")
    seconds = converge(d, up := up_at(watcher, "waiting for the initial load"))
    epochs = {(d.dump(n) or {}).get("epoch") for n in NODES}
    assert not epochs & {(b or {}).get("epoch") for b in before.values()}, "a new epoch"
    return Outcome(seconds, "from the new watcher up", up - restarted)


def nats_kill(d: Deployment, away: float = 5.0) -> Outcome:
    """kill -9 of nats-server for ``away`` seconds with an edit meanwhile."""
    start(d)
    d.group.children["nats-server"].kill()
    d.write_cluster(cluster(1))
    time.sleep(away)
    d.start_nats()  # the same port
    restarted = time.time()
    seconds = converge(d, restarted)
    assert all(d.agents[n].running for n in NODES)
    return Outcome(seconds, f"from the server's restart, {away:.0f} s away")


def agent_kill(d: Deployment, edits_per_second: float = 10.0) -> Outcome:
    """kill -9 of one agent while the cluster changes ``edits_per_second``; the changes go
    on until it is restarted. The other agent follows them throughout."""
    start(d)
    stop = threading.Event()
    version = [0]

    def edit() -> None:
        while not stop.is_set():
            version[0] += 1
            d.write_cluster(cluster(version[0]))
            stop.wait(1 / edits_per_second)

    editor = threading.Thread(target=edit, daemon=True)
    editor.start()
    try:
        time.sleep(1.0)
        d.agents["n1"].kill()
        time.sleep(1.0)
        restarted = time.time()
        agent = d.start_agent("n1")
        up = up_at(agent, "healthz on", since=restarted)
    finally:
        stop.set()
        editor.join()
    seconds = converge(d, up)
    return Outcome(seconds, f"from the agent up, edits until then ({version[0]})", up - restarted)


def lost_delta(d: Deployment) -> Outcome:
    """One delta to n1 lost on its way (a proxy between n1's agent and the server drops it),
    then the cluster stays quiet: the next tick shows the gap, the agent catches up. The
    wait for that tick (``--tick-interval``) is excluded."""
    d.nats_port = free_port()
    with DroppingProxy(d.nats_port) as proxy:
        start(d, agent_urls={"n1": f"nats://127.0.0.1:{proxy.port}"})
        subject = Subjects().node_delta("n1")
        proxy.drop_next(partial(_is, Delta, subject))
        d.write_cluster(cluster(1))
        wait_until("the delta lost", lambda: bool(proxy.dropped), 10)
        lost = proxy.dropped[0][1]
        proxy.watch(partial(_is, Tick, subject))
        wait_until("a tick", lambda: any(t > lost for _, t in proxy.seen), 10)
        ticked = min(t for _, t in proxy.seen if t > lost)
        seconds = converge(d, time.time() - (time.monotonic() - ticked))
        assert "catch-up from seq" in d.agents["n1"].log()
    return Outcome(seconds, "from the next tick (its wait excluded)", ticked - lost)


def _is(kind: type[Message], subject: str, got: str, payload: bytes) -> bool:
    """A message of ``kind`` on ``subject`` (a node's subject carries deltas and ticks)."""
    try:
        return got == subject and isinstance(decode(payload), kind)
    except MalformedMessage:
        return False


SLOW_CONSUMER_CONFIG = 'max_pending: 2097152\nwrite_deadline: "2s"\n'


def slow_consumer(d: Deployment, flood_mb: int = 24) -> Outcome:
    """n1's agent stopped (SIGSTOP) while ``flood_mb`` MB are published to it and the
    cluster changes: the server cuts it off as a slow consumer; resumed, it reconnects and
    resyncs."""
    start(d, nats_config=SLOW_CONSUMER_CONFIG)
    agent = d.agents["n1"]
    assert agent.process is not None
    os.killpg(agent.process.pid, signal.SIGSTOP)
    try:
        d.write_cluster(cluster(1))
        asyncio.run(_flood(d.url, Subjects().node_delta("n1"), flood_mb))
        nats_log = d.group.children["nats-server"].log
        wait_until("the server to drop the consumer", lambda: "Slow Consumer" in nats_log(), 15)
    finally:
        os.killpg(agent.process.pid, signal.SIGCONT)
    resumed = time.time()
    seconds = converge(d, resumed)
    return Outcome(seconds, "from the agent's resumption")


async def _flood(url: str, subject: str, megabytes: int) -> None:
    bus = await connect(url, retry_forever=False)
    try:
        junk = b"\x00" * 65536
        for _ in range(megabytes * 16):
            await bus.publish(subject, junk)
        await bus.flush()
    finally:
        await bus.close()


FAULTS: dict[str, Callable[[Deployment], Outcome]] = {
    "watcher kill -9": watcher_kill,
    "NATS kill -9, 5 s away": nats_kill,
    "agent kill -9 under 10 edits/s": agent_kill,
    "a lost delta": lost_delta,
    "a slow consumer": slow_consumer,
}


# -- the Kubernetes API server ------------------------------------------------------------
def kube_cluster(sim: ApiSimulator) -> None:
    sim.store.create("nodes", kube_objects.node("n1", "z1", "192.168.0.1"))
    sim.store.create("nodes", kube_objects.node("n2", "z2", "192.168.0.2"))
    for i in range(SERVICES):
        sim.store.create("services", kube_objects.service(f"s{i}", f"10.96.1.{i}"))
        eps = [(f"10.244.1.{i}", "n1"), (f"10.244.2.{i}", "n2")]
        sim.store.create("endpointslices", kube_objects.endpoint_slice(f"s{i}", eps))


def kube_edit(sim: ApiSimulator, version: int) -> None:
    """One service deleted, one added (with an endpoint): changes a relist must find."""
    sim.store.delete("services", f"s{version - 1}", "default")
    name = f"added-{version}"
    sim.store.create("services", kube_objects.service(name, f"10.96.2.{version}"))
    eps = [(f"10.244.5.{version}", "n1")]
    sim.store.create("endpointslices", kube_objects.endpoint_slice(name, eps))


async def kube_start(sim: ApiSimulator, kube: KubeDeployment) -> None:
    kube.base.tick_interval = TICK_INTERVAL
    kube_cluster(sim)
    kube.start(*NODES)
    await kube.wait_converged(*NODES, timeout=CONVERGE_TIMEOUT)


async def kube_converge(kube: KubeDeployment, since: float) -> float:
    await kube.wait_converged(*NODES, timeout=CONVERGE_TIMEOUT)
    return time.time() - since


async def api_gone(sim: ApiSimulator, kube: KubeDeployment) -> Outcome:
    """The watches cut, changes made, the history compacted: every resume is answered 410
    Gone, the watcher relists."""
    await kube_start(sim, kube)
    sim.cut_watches()
    kube_edit(sim, 1)
    sim.compact()
    compacted = time.time()
    seconds = await kube_converge(kube, compacted)
    assert sim.request_count("list", "services") >= 2, "a relist"
    return Outcome(seconds, "from the compaction (410 on resume)")


async def api_away(sim: ApiSimulator, kube: KubeDeployment, away: float = 5.0) -> Outcome:
    """The API server gone for ``away`` seconds, changes made and the history compacted
    meanwhile: back, it answers the watcher's resumes 410 Gone, the watcher relists."""
    await kube_start(sim, kube)
    await sim.stop()
    kube_edit(sim, 1)
    sim.compact()
    await asyncio.sleep(away)
    before = _served(sim)
    await sim.start()  # the same port
    back = time.time()
    # each kind's watch retries on its own backoff: recovery is when all three are back
    await eventually("every kind's retry", lambda: _retried(sim, before), CONVERGE_TIMEOUT)
    retried = time.time()
    seconds = await kube_converge(kube, retried)
    assert sim.request_count("list", "services") >= 2, "a relist"
    return Outcome(seconds, "from the watcher's retries (backoff excluded)", retried - back)


KINDS = ("services", "endpointslices", "nodes")


def _served(sim: ApiSimulator) -> dict[str, int]:
    """Requests served so far, by resource."""
    out = dict.fromkeys(KINDS, 0)
    for (_, resource), count in sim.requests.items():
        if resource in out:
            out[resource] += count
    return out


def _retried(sim: ApiSimulator, before: dict[str, int]) -> bool:
    now = _served(sim)
    return all(now[kind] > before[kind] for kind in KINDS)


KUBE_FAULTS: dict[str, Callable[[ApiSimulator, KubeDeployment], Awaitable[Outcome]]] = {
    "API server: 410 Gone": api_gone,
    "API server away 5 s (410 on return)": api_away,
}
