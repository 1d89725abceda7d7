"""Two watchers with --leader-elect on the simulator: failover under churn, and fencing.

Short timings (lease 3 s, renew deadline 2 s, retry 0.5 s); real nats-server, dump agents.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from dataclasses import dataclass, field

import pytest

from kpng.bus.codec import Delta, MalformedMessage, Tick, decode
from kpng.bus.nats import connect
from kpng.bus.protocol import Bus
from kpng_apisim import ApiSimulator
from kpng_devrun.procs import Child

from .deploy import KubeDeployment, eventually
from .objects import endpoint_slice, node, service

pytestmark = pytest.mark.kube

ELECTION = (
    "--leader-elect",
    "--leader-elect-lease-duration=3",
    "--leader-elect-renew-deadline=2",
    "--leader-elect-retry-period=0.5",
    "--leader-elect-resource-namespace=kube-system",
)


def start_watcher(kube: KubeDeployment, name: str) -> Child:
    extra = ("--kubeconfig", str(kube.sim.kubeconfig_path), "--watch-idle-timeout", "2")
    return kube.base.start_watcher(name=name, source="kube", extra_args=(*extra, *ELECTION))


def found(child: Child, pattern: str) -> str:
    match = re.search(pattern, child.log())
    return match.group(1) if match else ""


def holder(sim: ApiSimulator) -> str:
    try:
        lease = sim.store.get("leases", "kpng-watcher", "kube-system")
    except Exception:
        return ""
    return str(lease["spec"].get("holderIdentity", ""))


def identity(child: Child) -> str:
    return found(child, r"candidate (\S+) for the lease")


def epoch(child: Child) -> str:
    return found(child, r"watcher epoch ([0-9a-f]+)")


def ips(count: int) -> list[tuple[str, str]]:
    return [(f"10.244.{i // 250}.{i % 250 + 1}", "n1") for i in range(count)]


async def two_watchers(sim: ApiSimulator, kube: KubeDeployment) -> tuple[Child, Child]:
    """n1 serving default/web; watcher a leads, b is its standby; n1's agent converged."""
    sim.store.create("nodes", node("n1"))
    sim.store.create("services", service("web", "10.96.0.10"))
    sim.store.create("endpointslices", endpoint_slice("web", ips(1)))
    kube.base.start_nats()
    a = start_watcher(kube, "watcher-a")
    await eventually("a leads", lambda: identity(a) != "" and holder(sim) == identity(a))
    b = start_watcher(kube, "watcher-b")
    await eventually("b is a candidate", lambda: identity(b) != "" and epoch(b) != "")
    kube.base.start_agent("n1")
    await kube.wait_converged("n1")
    return a, b


@dataclass
class Messages:
    """Every delta and tick sent to n1, with the epoch it carries and when it arrived."""

    seen: list[tuple[float, str]] = field(default_factory=list)
    bus: Bus | None = None

    async def start(self, url: str) -> None:
        self.bus = await connect(url, retry_forever=False)
        await self.bus.subscribe(self.bus.subjects.node_delta("n1"), self._on)

    async def _on(self, data: bytes, subject: str, reply: str) -> None:
        try:
            message = decode(data, "node")
        except MalformedMessage:
            return
        if isinstance(message, Delta | Tick):
            self.seen.append((time.monotonic(), message.epoch))

    def from_epoch(self, epoch: str, after: float) -> int:
        return sum(1 for at, e in self.seen if e == epoch and at > after)

    async def close(self) -> None:
        if self.bus is not None:
            await self.bus.close()


def endpoint_count(kube: KubeDeployment) -> int:
    entry = (kube.dump("n1") or {}).get("services", {}).get("default/web")
    return len(entry["endpoints"]) if entry else 0


async def test_kill_9_of_the_leader_under_churn_loses_nothing(
    sim: ApiSimulator, kube: KubeDeployment
) -> None:
    a, b = await two_watchers(sim, kube)
    assert holder(sim) == identity(a) != identity(b)
    counts: list[int] = []
    stop = asyncio.Event()

    async def churn() -> None:  # one more endpoint every 100 ms
        for n in range(2, 80):
            sim.store.upsert("endpointslices", endpoint_slice("web", ips(n)))
            await asyncio.sleep(0.1)
        stop.set()

    async def sample() -> None:
        while not stop.is_set():
            counts.append(endpoint_count(kube))
            await asyncio.sleep(0.02)

    tasks = [asyncio.create_task(churn()), asyncio.create_task(sample())]
    await asyncio.sleep(1.5)
    killed = time.monotonic()
    a.kill(signal.SIGKILL)
    await eventually("b leads", lambda: holder(sim) == identity(b), timeout=10)
    takeover = time.monotonic() - killed
    await asyncio.gather(*tasks)
    await kube.wait_converged("n1", timeout=10)
    assert endpoint_count(kube) == 79
    # the lease expired first: at least lease duration minus a retry period after the kill
    assert 2.4 <= takeover <= 3.0 + 0.5 + 2.0, takeover
    # applied in order: the view never went back to fewer endpoints
    assert counts == sorted(counts), counts
    assert "leading: ticked every node" in b.log()


async def test_a_paused_leader_publishes_nothing_once_it_lost_the_lease(
    sim: ApiSimulator, kube: KubeDeployment
) -> None:
    a, b = await two_watchers(sim, kube)
    messages = Messages()
    await messages.start(kube.base.url)
    try:
        assert a.process is not None
        os.killpg(a.process.pid, signal.SIGSTOP)
        await eventually("b leads", lambda: holder(sim) == identity(b), timeout=10)
        sim.store.upsert("endpointslices", endpoint_slice("web", ips(2)))
        await eventually("2 endpoints via b", lambda: endpoint_count(kube) == 2)
        resumed = time.monotonic()
        os.killpg(a.process.pid, signal.SIGCONT)
        for n in range(3, 13):  # changes a sees through its watches, and would publish
            sim.store.upsert("endpointslices", endpoint_slice("web", ips(n)))
            await asyncio.sleep(0.2)
        await kube.wait_converged("n1", timeout=10)
        await asyncio.sleep(1.5)  # several of a's tick intervals and retry periods
        assert messages.from_epoch(epoch(b), resumed) > 0
        assert messages.from_epoch(epoch(a), resumed) == 0
        assert holder(sim) == identity(b)
        assert "is no longer the leader" in a.log()
    finally:
        await messages.close()


async def test_a_stopped_leader_hands_over_without_the_lease_wait(
    sim: ApiSimulator, kube: KubeDeployment
) -> None:
    a, b = await two_watchers(sim, kube)
    stopped = time.monotonic()
    assert a.process is not None
    os.killpg(a.process.pid, signal.SIGTERM)  # a rolling update (the loop must keep serving)
    await eventually("b leads", lambda: holder(sim) == identity(b), timeout=10)
    assert time.monotonic() - stopped < 2.0  # not the 3 s lease: the lease was released
    await eventually("a exits", lambda: not a.running)
    assert "released the lease" in a.log()
    sim.store.upsert("endpointslices", endpoint_slice("web", ips(5)))
    await eventually("b publishes", lambda: endpoint_count(kube) == 5)
