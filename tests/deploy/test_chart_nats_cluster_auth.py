"""The chart's bundled NATS as a 3-server cluster with per-node identity (kpngAuth): three real
nats-servers run the rendered nats.conf, kpng-auth answers the auth callout from one of them,
and the watcher and the agents connect to the others. Every connection is authorized across
the routes; an agent gets its own node's subjects only, its snapshot (as a cast) and deltas
come from a watcher on another server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from kpng.bus.auth import BusAuth
from kpng.bus.client import NodeViewClient
from kpng.bus.identity import node_inbox
from kpng.bus.nats import NatsBus, connect
from kpng.bus.protocol import BusError
from kpng.bus.subjects import Subjects
from kpng_apisim import ApiSimulator
from kpng_auth.decide import Policy
from kpng_auth.kube import KubeReviewer, api_client
from kpng_auth.natsjwt import Signer, new_seed
from kpng_auth.respond import Responder
from kpng_devrun.procs import ProcessGroup, free_ports
from kpng_watcher.file_source import FileSource
from kpng_watcher.publisher import Publisher, PublisherSettings
from tests.deploy.test_chart_nats_cluster import HOSTS, server_conf, start_three
from tests.integration.harness import until
from tests.leaks import cancel_all
from tests.security.callout_harness import AGENT_SA, WATCHER_SA
from tests.security.test_auth_callout import write_cluster

VALUES = "nats-cluster-auth"
ISSUER = "ABJHLOVMPA4CI6R5KLNGOB4GSLNIY7IOUPAJC4YFNDLQVIOBYQGUWVLA"  # the values file's


@pytest.mark.integration
async def test_agents_are_authorized_and_served_across_a_cluster_of_three(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    picked = free_ports(2 * len(HOSTS))
    ports = list(zip(picked[::2], picked[1::2], strict=True))
    signer = Signer(new_seed())
    conf = server_conf(tmp_path, ports, VALUES)
    text = conf.read_text()
    assert f'issuer: "{ISSUER}"' in text and "auth_callout" in text
    conf.write_text(text.replace(ISSUER, signer.public))
    monkeypatch.setenv("KPNG_AUTH_PASSWORD", "auth-secret")
    (tmp_path / "auth.pw").write_text("auth-secret\n")
    ca = str(tmp_path / "tls" / "ca.pem")
    urls = [f"tls://127.0.0.1:{client}" for client, _ in ports]
    policy = Policy(Subjects(), agent=AGENT_SA, roles={WATCHER_SA: "watcher"}, max_lifetime=600)
    cluster = tmp_path / "cluster.yaml"
    write_cluster(cluster)
    with ProcessGroup(tmp_path / "logs") as group:
        start_three(group, conf, ports)
        async with ApiSimulator(kubeconfig_path=tmp_path / "kubeconfig") as sim:
            tokens = 0

            async def with_token(url: str, account: str, node: str = "") -> NatsBus:
                nonlocal tokens
                tokens += 1
                path = tmp_path / f"token-{tokens}"
                path.write_text(sim.tokens.issue(account, node) + "\n")
                return await connect(
                    url,
                    name=f"kpng-agent-{node}" if node else "kpng-watcher",
                    auth=BusAuth(token_file=str(path), tls_ca=ca),
                    retry_forever=False,
                    connect_timeout=3,
                    inbox_prefix=node_inbox(Subjects(), node) if node else "",
                )

            auth = BusAuth(user="kpng-auth", password_file=str(tmp_path / "auth.pw"), tls_ca=ca)
            auth_bus = await connect(urls[0], name="kpng-auth", auth=auth, retry_forever=False)
            api = await api_client(str(sim.kubeconfig_path))
            responder = Responder(auth_bus, KubeReviewer(api), policy, signer, "KPNG")
            tasks = [asyncio.create_task(responder.run())]
            buses = [auth_bus]
            try:
                await auth_bus.flush()
                # the routes may still be forming: a connect refused meanwhile is retried
                watcher_bus = await _until_admitted(lambda: with_token(urls[1], WATCHER_SA))
                buses.append(watcher_bus)
                publisher = Publisher(
                    watcher_bus, FileSource(cluster, 0.05), PublisherSettings(0.01, 0.5)
                )
                publisher.fanout.casts.min_size = 1  # the zone's part as a cast, however small
                tasks.append(asyncio.create_task(publisher.run()))
                await publisher.ready.wait()
                agent = await _until_admitted(lambda: with_token(urls[2], AGENT_SA, "node-a"))
                buses.append(agent)
                refused: list[str] = []
                agent.listeners.permission_violation.append(refused.append)
                client = NodeViewClient(agent, "node-a")
                tasks.append(asyncio.create_task(_follow(client)))
                await until(lambda: client.consumer.synced, timeout=20)
                assert "default/web0" in client.view.services
                assert client.stats.casts == 1  # the snapshot's zone part, published once
                write_cluster(cluster, services=2)  # a delta, from server 1 to server 2
                await until(lambda: "default/web1" in client.view.services, timeout=20)
                # node-b's subjects stay closed to node-a's agent on every server
                await agent.subscribe(agent.subjects.node_delta("node-b"), lambda d, s, r: None)
                await agent.flush()
                await until(lambda: len(refused) == 1)
                assert responder.metrics.granted.labels("node")._value.get() == 1
            finally:
                await cancel_all(tasks)
                for bus in reversed(buses):
                    await bus.close()
                await api.close()
        logs = "".join(c.log() for c in group.children.values())
        assert "TLS route" in logs or "Route connection created" in logs, logs[-2000:]


async def _until_admitted(make: Callable[[], Awaitable[NatsBus]]) -> NatsBus:
    """``make()`` until a connection is admitted (for 20 s at most)."""
    deadline = time.monotonic() + 20
    while True:
        try:
            return await make()
        except BusError:  # refused while the routes and the callout's interest propagate
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def _follow(client: NodeViewClient) -> None:
    async for _ in client:
        pass
