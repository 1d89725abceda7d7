"""kpng-agent as a process with --nats-token-file behind the auth callout: it programs its
node's view, and picks up a rotated token without reprogramming anything."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kpng_devrun.procs import ProcessGroup, free_port
from kpng_watcher.file_source import FileSource
from kpng_watcher.publisher import Publisher, PublisherSettings
from tests.integration.harness import until
from tests.security.callout_harness import AGENT_SA, WATCHER_SA, CalloutBus, callout_bus
from tests.security.test_auth_callout import write_cluster

pytestmark = pytest.mark.integration


@pytest.fixture
async def bus(tmp_path: Path) -> AsyncIterator[CalloutBus]:
    async with callout_bus(tmp_path) as b:
        yield b


def services_in(dump: Path) -> set[str]:
    try:
        view = json.loads(dump.read_text())
    except (OSError, ValueError):
        return set()
    return set(view.get("services", {}))


async def test_agent_process_renews_its_connection_on_rotation(
    bus: CalloutBus, tmp_path: Path
) -> None:
    cluster = tmp_path / "cluster.yaml"
    write_cluster(cluster)
    conn = await bus.connect(bus.token_file(bus.sim.tokens.issue(WATCHER_SA)))
    publisher = Publisher(conn, FileSource(cluster, 0.05), PublisherSettings(0.01, 0.5))
    task = asyncio.create_task(publisher.run())
    token = bus.agent_token("node-a")
    dump = tmp_path / "node-a.json"
    argv = [
        sys.executable, "-m", "kpng_agent.main", "--node", "node-a",
        "--backend", "dump", "--dump-file", str(dump),
        "--healthz-bind-address", f"127.0.0.1:{free_port()}",
        "--metrics-bind-address", f"127.0.0.1:{free_port()}",
        "--nats", bus.url, "--nats-insecure", "--nats-token-file", str(token),
    ]  # fmt: skip
    try:
        with ProcessGroup(tmp_path / "agent-logs") as group:
            agent = group.start("agent", argv)
            await until(lambda: "default/web0" in services_in(dump), 20)
            written = dump.stat().st_mtime_ns
            token.write_text(bus.sim.tokens.issue(AGENT_SA, "node-a") + "\n")
            await until(lambda: "connection renewed" in agent.log(), 20)  # every 10 s
            await asyncio.sleep(1)
            assert dump.stat().st_mtime_ns == written, agent.log()  # nothing reprogrammed
            assert "resync" not in agent.log().split("connection renewed")[1]
            write_cluster(cluster, services=2)
            await until(lambda: "default/web1" in services_in(dump), 10)
            assert "permissions violation" not in agent.log()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await conn.close()
