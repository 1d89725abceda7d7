"""kpng-auth's readiness (/readyz): ready only while it answers the auth callout, confirmed by
the server, and again after every reconnection; and as a process against a real nats-server
that goes away and comes back."""

from __future__ import annotations

import asyncio
import json
import sys
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from kpng.bus.fake import FakeBus, FakeServer
from kpng.bus.protocol import BusError
from kpng.bus.subjects import Subjects
from kpng.runtime.clock import FakeClock
from kpng_apisim import ApiSimulator
from kpng_auth.callout import SUBJECT
from kpng_auth.decide import Policy
from kpng_auth.main import init_issuer
from kpng_auth.natsjwt import Signer, new_seed
from kpng_auth.readiness import CalloutReadiness, Phase, ReadyCheck, readyz
from kpng_auth.respond import CONFIRM_RETRY, AuthMetrics, Responder
from kpng_auth.reviewer import FakeReviewer
from kpng_devrun.procs import ProcessGroup, free_ports, nats_server_argv, wait_for_port
from tests.integration.harness import until
from tests.security.callout_harness import callout_files


# -- the state, pure ----------------------------------------------------------------------
def test_not_ready_until_loaded_connected_and_the_subscription_confirmed() -> None:
    r = CalloutReadiness()
    assert r.check() == ReadyCheck(False, "loading the issuer key and users")
    r.loaded()
    assert r.check() == ReadyCheck(False, "not yet connected to NATS")
    epoch = r.connected()
    assert not r.check().ready and r.phase is Phase.SUBSCRIBING
    assert r.subscribed(epoch)
    assert r.check() == ReadyCheck(True, "answering the auth callout")


def test_a_lost_connection_is_not_ready_until_back_and_confirmed_again() -> None:
    r = CalloutReadiness()
    r.loaded()
    r.subscribed(r.connected())
    r.disconnected()
    assert r.check() == ReadyCheck(False, "disconnected from NATS, reconnecting")
    epoch = r.reconnected()
    assert r.check().reason == "reconnected to NATS, subscribing to the auth callout again"
    assert not r.check().ready
    assert r.subscribed(epoch) and r.check().ready


def test_a_confirmation_counts_only_for_its_own_connection() -> None:
    """A flush asked before the connection dropped proves nothing about the next one."""
    r = CalloutReadiness()
    r.loaded()
    first = r.connected()
    r.disconnected()
    assert not r.subscribed(first) and r.phase is Phase.RECONNECTING
    second = r.reconnected()
    r.disconnected()
    third = r.reconnected()
    assert not r.subscribed(second) and not r.check().ready
    assert r.subscribed(third) and r.check().ready
    assert not r.subscribed(third)  # once


def test_stopping_is_final() -> None:
    r = CalloutReadiness()
    r.loaded()
    epoch = r.connected()
    r.stopping()
    r.disconnected()
    assert not r.subscribed(r.reconnected()) and not r.subscribed(epoch)
    assert r.check() == ReadyCheck(False, "shutting down")


def test_readyz_is_200_or_503_with_the_reason() -> None:
    ok = readyz(ReadyCheck(True, "answering the auth callout"))
    assert ok.status == 200 and ok.content_type == "application/json"
    assert json.loads(ok.body) == {"ready": True, "reason": "answering the auth callout"}
    down = readyz(ReadyCheck(False, "disconnected from NATS, reconnecting"))
    assert down.status == 503
    assert json.loads(down.body)["reason"] == "disconnected from NATS, reconnecting"


# -- the responder reports its connection ----------------------------------------------------
class GatedBus(FakeBus):
    """A fake connection whose flushes, while :attr:`held`, wait to be released one by one
    (a server slow to answer)."""

    def __init__(self, server: FakeServer) -> None:
        super().__init__(server, Subjects("kpng"), "kpng-auth")
        self.held = True
        self.flushes: list[asyncio.Event] = []  # one per flush: set, it goes on
        self.unanswered = 0  # flushes to come that time out

    async def flush(self, timeout: float = 5.0) -> None:
        answered = asyncio.Event()
        if not self.held:
            answered.set()
        self.flushes.append(answered)
        await answered.wait()
        if self.unanswered:
            self.unanswered -= 1
            raise BusError(f"flush: no answer within {timeout}s")
        await super().flush(timeout)

    def release(self) -> None:
        """Let every flush through, and those to come."""
        self.held = False
        for answered in self.flushes:
            answered.set()


def responder(bus: FakeBus, clock: FakeClock, registry: CollectorRegistry) -> Responder:
    readiness = CalloutReadiness()
    readiness.loaded()
    return Responder(
        bus,
        FakeReviewer(),
        Policy(Subjects("kpng")),
        Signer(new_seed()),
        "KPNG",
        metrics=AuthMetrics(registry),
        clock=clock,
        readiness=readiness,
    )


@dataclass
class Running:
    responder: Responder
    bus: GatedBus
    clock: FakeClock
    registry: CollectorRegistry
    task: asyncio.Task[None]

    @property
    def readiness(self) -> CalloutReadiness:
        return self.responder.readiness

    def gauge(self) -> float | None:
        return self.registry.get_sample_value("kpng_auth_ready")


@pytest.fixture
async def running() -> AsyncIterator[Running]:
    """A responder running, subscribed, its first flush waiting for the server."""
    bus, clock, registry = GatedBus(FakeServer()), FakeClock(), CollectorRegistry()
    r = responder(bus, clock, registry)
    task = asyncio.create_task(r.run())
    await until(lambda: len(bus.flushes) == 1)
    try:
        yield Running(r, bus, clock, registry, task)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await bus.close()


async def test_ready_once_the_server_confirms_the_subscription(running: Running) -> None:
    bus = running.bus
    assert [s.subject for s in bus.server._subs] == [SUBJECT]  # subscribed...
    assert running.readiness.phase is Phase.SUBSCRIBING and running.gauge() == 0.0  # unconfirmed
    bus.release()
    await until(lambda: running.readiness.check().ready)
    assert running.gauge() == 1.0


async def test_not_ready_while_disconnected_and_ready_again_once_resubscribed(
    running: Running,
) -> None:
    bus = running.bus
    bus.release()
    await until(lambda: running.readiness.check().ready)
    bus.disconnect()
    assert running.readiness.phase is Phase.RECONNECTING and running.gauge() == 0.0
    bus.held = True
    bus.reconnect()
    await until(lambda: len(bus.flushes) == 2)
    assert running.readiness.phase is Phase.RESUBSCRIBING  # not before the server confirms
    bus.release()
    await until(lambda: running.readiness.check().ready)
    assert running.gauge() == 1.0


async def test_a_flush_that_straddles_a_lost_connection_proves_nothing(
    running: Running,
) -> None:
    bus = running.bus
    bus.disconnect()  # while the first flush waits for the server
    bus.reconnect()
    await until(lambda: len(bus.flushes) == 2)
    first, second = bus.flushes
    first.set()  # the first connection's flush comes back (it cannot in nats-py: it fails)
    await asyncio.sleep(0.05)
    assert running.readiness.phase is Phase.RESUBSCRIBING
    second.set()
    await until(lambda: running.readiness.check().ready)


async def test_a_flush_that_fails_is_retried_while_connected(running: Running) -> None:
    """A server slow to answer (or a connection lost before run() listened, no event
    coming): the flush fails and is asked again, until it is answered."""
    bus = running.bus
    bus.unanswered = 2
    bus.release()
    await until(lambda: running.readiness.check().ready)
    assert len(bus.flushes) == 3 and running.clock.sleeps == [CONFIRM_RETRY, CONFIRM_RETRY]


async def test_stopped_it_is_no_longer_ready_nor_listening(running: Running) -> None:
    bus = running.bus
    bus.release()
    await until(lambda: running.readiness.check().ready)
    running.task.cancel()
    await asyncio.gather(running.task, return_exceptions=True)
    assert running.readiness.check() == ReadyCheck(False, "shutting down")
    assert bus.listeners.disconnected == [] and bus.listeners.reconnected == []
    assert bus.server._subs == []


# -- the process, against a real nats-server -------------------------------------------------
def readiness_of(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            status: int = response.status
            body = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        status, body = exc.code, json.loads(exc.read())
    except OSError:
        return 0, "no answer"
    return status, str(body["reason"])


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=2) as response:
        text: str = response.read().decode()
    return text


@pytest.mark.integration
async def test_readyz_follows_the_nats_connection(tmp_path: Path) -> None:
    seed = tmp_path / "seed"
    conf = callout_files(tmp_path, init_issuer(seed))
    port, metrics = free_ports(2)
    readyz_url = f"http://127.0.0.1:{metrics}/readyz"

    async def status() -> tuple[int, str]:
        return await asyncio.to_thread(readiness_of, readyz_url)

    async def becomes(code: int, timeout: float = 10) -> str:
        seen: list[tuple[int, str]] = []

        async def poll() -> None:
            while not seen or seen[-1][0] != code:
                seen.append(await status())
                await asyncio.sleep(0.05)

        try:
            await asyncio.wait_for(poll(), timeout)
        except TimeoutError:
            pytest.fail(f"/readyz never {code}: {seen[-3:]}\n{auth.log()}")
        return seen[-1][1]

    async with ApiSimulator(kubeconfig_path=tmp_path / "kubeconfig") as sim:
        with ProcessGroup(tmp_path / "logs") as group:
            argv = [
                sys.executable, "-m", "kpng_auth.main",
                "--nats", f"nats://127.0.0.1:{port}", "--nats-insecure",
                "--nats-user", "kpng-auth", "--nats-password-file", str(tmp_path / "auth.pw"),
                "--issuer-seed", str(seed), "--kubeconfig", str(sim.kubeconfig_path),
                "--metrics-bind-address", f"127.0.0.1:{metrics}",
            ]  # fmt: skip
            auth = group.start("kpng-auth", argv)  # before NATS is there
            assert await becomes(503) == "not yet connected to NATS"
            await asyncio.sleep(0.5)  # trying to connect meanwhile
            assert await status() == (503, "not yet connected to NATS")
            nats = group.start("nats-server", nats_server_argv(port, conf))
            wait_for_port("127.0.0.1", port)
            assert await becomes(200) == "answering the auth callout"
            nats.stop()
            assert "disconnected from NATS" in await becomes(503)
            scraped = await asyncio.to_thread(scrape, f"http://127.0.0.1:{metrics}/metrics")
            assert "kpng_auth_ready 0.0" in scraped  # alive (the liveness probe's /metrics)
            assert "process_resident_memory_bytes" in scraped  # the process's own, too
            nats.start()
            wait_for_port("127.0.0.1", port)
            assert await becomes(200) == "answering the auth callout"
            assert auth.running
