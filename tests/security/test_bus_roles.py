"""Bus security against a real nats-server configured by kpng-nats-config: who may connect,
what each role may publish, and TLS that fails clearly when it does not match."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from kpng.bus.auth import BusAuth
from kpng.bus.client import GlobalViewClient, NodeViewClient
from kpng.bus.codec import Delta, Status, encode
from kpng.bus.nats import connect
from kpng.bus.protocol import Bus, BusError
from kpng.diff import SetService
from kpng.model import Service, ServicePort, ServiceType, TransportProtocol
from kpng.runtime.metrics import render
from kpng_agent.backends.dump import DumpBackend
from kpng_agent.wiring import build_agent, build_parts
from kpng_auth.natsconfig import Settings, UserSpec, generate
from kpng_devrun.procs import ProcessGroup, free_port, nats_server_argv, wait_for_port
from kpng_watcher.file_source import FileSource
from kpng_watcher.publisher import Publisher, PublisherSettings
from tests.integration.harness import node, service, slice_, until

pytestmark = pytest.mark.integration

USERS = (
    UserSpec("watcher", "watcher"),
    UserSpec("agent", "agent"),
    UserSpec("observer", "observer"),
    UserSpec("reader", "consumer"),
    UserSpec("oldagent", "agent"),  # configured as before casts (see secure_nats)
)
FORGED = Service(
    "evil",
    "forged",
    ServiceType.CLUSTER_IP,
    ("10.96.6.6",),
    (ServicePort("http", TransportProtocol.TCP, 80, 80),),
)


@dataclass
class SecureNats:
    directory: Path
    url: str

    def auth(self, user: str = "", **tls: Any) -> BusAuth:
        ca = str(self.directory / "tls" / "ca.pem")
        if not user:
            return BusAuth(tls_ca=ca, insecure=True, **tls)
        password = str(self.directory / "users" / f"{user}.password")
        return BusAuth(user=user, password_file=password, **{"tls_ca": ca, **tls})

    async def connect(self, user: str = "", **tls: Any) -> Bus:
        auth = self.auth(user, **tls)
        return await connect(self.url, retry_forever=False, connect_timeout=2, auth=auth)


@pytest.fixture
def secure_nats(tmp_path: Path) -> Iterator[SecureNats]:
    port = free_port()
    settings = Settings("kpng", f"127.0.0.1:{port}", USERS, tls_generate=("127.0.0.1",))
    config = generate(settings, tmp_path / "bus")
    # an external NATS set up from the docs of before casts: its agents may not hear them
    lines = config.read_text().splitlines(keepends=True)
    old = [i for i, line in enumerate(lines) if '{user: "oldagent"' in line]
    lines[old[0]] = lines[old[0]].replace('"kpng.v1.cast.*", ', "")
    config.write_text("".join(lines))
    with ProcessGroup(tmp_path / "logs") as group:
        group.start("nats-server", nats_server_argv(port, config))
        wait_for_port("127.0.0.1", port)
        yield SecureNats(tmp_path / "bus", f"tls://127.0.0.1:{port}")


@pytest.fixture
async def watcher(secure_nats: SecureNats, tmp_path: Path) -> AsyncIterator[Publisher]:
    import yaml

    cluster = tmp_path / "cluster.yaml"
    web = [node("n1", "z1", "192.168.0.1"), service("web", "10.96.0.10")]
    cluster.write_text(yaml.safe_dump_all([*web, slice_("web", [("10.244.1.1", "n1")])]))
    bus = await secure_nats.connect("watcher")
    publisher = Publisher(bus, FileSource(cluster, 0.05), PublisherSettings(0.01, 0.5))
    task = asyncio.create_task(publisher.run())
    await publisher.ready.wait()
    yield publisher
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await bus.close()


async def follow(client: NodeViewClient | GlobalViewClient) -> None:
    async for _ in client:
        pass


async def test_nobody_connects_without_credentials(secure_nats: SecureNats) -> None:
    with pytest.raises(BusError, match="authorization violation"):
        await secure_nats.connect()
    with pytest.raises(BusError, match="authorization violation"):
        bad = secure_nats.auth("agent")
        wrong = secure_nats.directory / "wrong.password"
        wrong.write_text("not-the-password\n")
        await connect(
            secure_nats.url,
            retry_forever=False,
            auth=BusAuth(user="agent", password_file=str(wrong), tls_ca=bad.tls_ca),
        )


async def test_agent_credentials_cannot_forge_a_delta(
    secure_nats: SecureNats, watcher: Publisher, tmp_path: Path
) -> None:
    agent_bus = await secure_nats.connect("agent")
    client = NodeViewClient(agent_bus, "n1")
    task = asyncio.create_task(follow(client))
    attacker = await secure_nats.connect("agent")
    refused: list[str] = []
    attacker.listeners.permission_violation.append(refused.append)
    try:
        await until(lambda: client.consumer.synced and client.view.services)
        seq = client.consumer.seq
        forged = Delta(client.consumer.epoch, seq + 1, 0.0, None, (SetService(FORGED),))
        subjects = attacker.subjects
        for subject in (subjects.node_delta("n1"), subjects.global_delta, "_INBOX.stolen"):
            await attacker.publish(subject, encode(forged))
        status = Status(node="n2", epoch="e", seq=1, backend="dump", healthy=True, time=0.0)
        await attacker.publish(subjects.node_status("n2"), encode(status))  # allowed: shared role
        await attacker.flush()
        await until(lambda: len(refused) == 3)
        await asyncio.sleep(0.3)
        assert "evil/forged" not in client.view.services
        assert client.consumer.seq == seq
        assert attacker.permission_violations == 3
        assert all("permissions violation for publish" in r for r in refused)
        # counted where operators look: the metric, and an agent's status on that connection
        registry = CollectorRegistry()
        parts = build_parts(
            attacker, "n2", DumpBackend("n2", tmp_path / "n2.json"), registry=registry
        )
        text = render(registry)[0].decode()
        assert "kpng_bus_permission_violations_total 3.0" in text
        agent = build_agent(attacker, DumpBackend("n2", tmp_path / "x.json"), parts)
        assert agent.status().counts["permission_violations"] == 3
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await attacker.close()
        await agent_bus.close()


async def test_agents_take_the_zone_part_as_a_cast_and_cannot_forge_one(
    secure_nats: SecureNats, watcher: Publisher
) -> None:
    watcher.fanout.casts.min_size = 1  # this small view as a cast too
    agent_bus = await secure_nats.connect("agent")
    client = NodeViewClient(agent_bus, "n1")
    task = asyncio.create_task(follow(client))
    attacker = await secure_nats.connect("agent")
    try:
        await until(lambda: client.consumer.synced and "default/web" in client.view.services)
        assert client.stats.casts == 1 and watcher.fanout.stats.cast_rounds == 1
        (id,) = watcher.fanout.casts._casts
        heard: list[bytes] = []
        await attacker.subscribe(attacker.subjects.cast(id), lambda d, s, r: heard.append(d))
        await attacker.publish(attacker.subjects.cast(id), b"forged")
        await attacker.flush()
        await until(lambda: attacker.permission_violations == 1)
        await asyncio.sleep(0.2)
        assert heard == []  # refused by the server: nobody hears it
        assert agent_bus.permission_violations == 0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await attacker.close()
        await agent_bus.close()


async def test_an_agent_whose_nats_predates_casts_falls_back_to_inline(
    secure_nats: SecureNats, watcher: Publisher
) -> None:
    watcher.fanout.casts.min_size = 1
    bus = await secure_nats.connect("oldagent")
    client = NodeViewClient(bus, "n1", max_backoff=0.2)
    task = asyncio.create_task(follow(client))
    try:
        await until(lambda: client.consumer.synced and "default/web" in client.view.services)
        assert client.stats.casts == 0 and client.stats.snapshot_failures == 1
        assert client.casts is None  # never asks for one again
        assert bus.permission_violations == 1
        client.request_resync("test")
        await until(lambda: client.stats.snapshots == 2 or client.stats.catchups == 1)
        assert bus.permission_violations == 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await bus.close()


async def test_consumer_follows_the_global_view_and_publishes_nothing(
    secure_nats: SecureNats, watcher: Publisher
) -> None:
    bus = await secure_nats.connect("reader")
    client = GlobalViewClient(bus)
    task = asyncio.create_task(follow(client))
    try:
        await until(lambda: "default/web" in client.view.services)
        for subject in (
            bus.subjects.global_delta,
            bus.subjects.node_delta("n1"),
            bus.subjects.node_status("n1"),
        ):
            await bus.publish(subject, b"x")
        await bus.flush()
        await until(lambda: bus.permission_violations == 3)
        # nor may it read node views (not granted in this deployment's settings)
        await bus.subscribe(bus.subjects.node_delta("n1"), lambda d, s, r: None)
        await bus.flush()
        await until(lambda: bus.permission_violations == 4)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await bus.close()


async def test_tls_with_a_wrong_ca_or_name_fails_clearly(
    secure_nats: SecureNats, tmp_path: Path
) -> None:
    from kpng_auth.pki import make_tls

    other = make_tls(tmp_path / "other-ca", ["127.0.0.1"])
    with pytest.raises(BusError, match=r"TLS: the server's certificate was not accepted"):
        await secure_nats.connect("observer", tls_ca=str(other.ca))
    with pytest.raises(BusError, match=r"TLS: .*(match|not valid)"):
        await secure_nats.connect("observer", tls_server_name="nats.elsewhere.example")
    bus = await secure_nats.connect("observer")
    assert bus.connected
    await bus.close()
