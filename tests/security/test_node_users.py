"""Per-node identity without Kubernetes: kpng-nats-config's per-node users, enforced by a
real nats-server (the same scope kpng-auth grants from a token)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from kpng.bus.auth import BusAuth
from kpng.bus.identity import node_inbox
from kpng.bus.nats import connect
from kpng.bus.subjects import Subjects
from kpng_auth.natsconfig import Settings, SettingsError, UserSpec, generate, parse_settings
from kpng_devrun.bus import secure_bus
from kpng_devrun.procs import ProcessGroup, free_port, nats_server_argv, wait_for_port
from tests.integration.harness import until


def test_nodes_are_checked_as_node_names() -> None:
    base = {"users": {"w": {"role": "watcher"}}}
    assert parse_settings({**base, "nodes": ["a1", "a1", "b.example"]}).nodes == ("a1", "b.example")
    with pytest.raises(SettingsError, match=r"settings\.nodes: 'Bad_Node'"):
        parse_settings({**base, "nodes": ["Bad_Node"]})
    with pytest.raises(SettingsError, match=r"settings\.nodes: expected a list"):
        parse_settings({**base, "nodes": "a1"})


def test_make_run_gives_each_agent_its_node_user(tmp_path: Path) -> None:
    bus = secure_bus(tmp_path / "bus", "127.0.0.1", 4222, nodes=["n1"])
    flags = bus.node_flags("n1")
    assert flags[flags.index("--nats-user") + 1] == "node-n1"
    assert Path(flags[flags.index("--nats-password-file") + 1]).exists()
    assert '"kpng.v1.node.n1.status"' in bus.config.read_text()


@pytest.mark.integration
async def test_a_node_user_reaches_only_its_node(tmp_path: Path) -> None:
    port = free_port()
    settings = Settings(
        "kpng", f"127.0.0.1:{port}", (UserSpec("watcher", "watcher"),), nodes=("node-a",)
    )
    config = generate(settings, tmp_path / "bus")
    with ProcessGroup(tmp_path / "logs") as group:
        group.start("nats-server", nats_server_argv(port, config))
        wait_for_port("127.0.0.1", port)
        url = f"nats://127.0.0.1:{port}"
        password = str(tmp_path / "bus" / "nodes" / "node-a.password")
        auth = BusAuth(user="node-node-a", password_file=password, insecure=True)
        s = Subjects()
        agent = await connect(
            url, auth=auth, retry_forever=False, inbox_prefix=node_inbox(s, "node-a")
        )
        watcher_auth = BusAuth(
            user="watcher",
            password_file=str(tmp_path / "bus" / "users" / "watcher.password"),
            insecure=True,
        )
        watcher = await connect(url, auth=watcher_auth, retry_forever=False)
        got: list[str] = []
        refused: list[str] = []
        agent.listeners.permission_violation.append(refused.append)
        try:
            await agent.subscribe(s.node_delta("node-a"), lambda d, subj, r: got.append(subj))
            await agent.subscribe(s.node_delta("node-b"), lambda d, subj, r: got.append(subj))
            await agent.subscribe(agent.new_inbox(), lambda d, subj, r: got.append("inbox"))
            await agent.publish(s.node_status("node-a"), b"{}")
            await agent.publish(s.node_status("node-b"), b"{}")
            await agent.publish(s.node_snapshot("node-b"), b"", reply=agent.new_inbox())
            await agent.flush()
            await until(lambda: agent.connected and watcher.connected, 15)
            await until(lambda: len(refused) == 3, 15)
            for _ in range(100):  # until node-a's delta is in (a busy machine may be slow)
                for node in ("node-b", "node-a"):
                    await watcher.publish(s.node_delta(node), b"d")
                await watcher.flush()
                await asyncio.sleep(0.1)
                if got:
                    break
            await asyncio.sleep(0.2)
            assert got and set(got) == {s.node_delta("node-a")}
        finally:
            await agent.close()
            await watcher.close()
