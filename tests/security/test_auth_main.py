"""kpng-auth as a program: its issuer key, its settings, and the whole callout as a process
(nats-server, the API simulator's TokenReview, an agent's token, /metrics)."""

from __future__ import annotations

import asyncio
import stat
import sys
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kpng.bus.auth import BusAuth
from kpng.bus.identity import node_inbox
from kpng.bus.nats import connect
from kpng.bus.protocol import BusError
from kpng.bus.subjects import Subjects
from kpng_apisim import ApiSimulator
from kpng_auth.main import init_issuer, main, read_users
from kpng_auth.natsjwt import Signer
from kpng_devrun.procs import ProcessGroup, free_ports, nats_server_argv, wait_for_port
from tests.integration.harness import until
from tests.security.callout_harness import callout_files


def test_init_issuer_writes_a_private_seed_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed = tmp_path / "seed"
    assert main(["--issuer-seed", str(seed), "--init-issuer"]) == 0
    public = capsys.readouterr().out.strip()
    assert public.startswith("A") and public == Signer(seed.read_bytes()).public
    assert stat.S_IMODE(seed.stat().st_mode) == 0o600
    assert init_issuer(seed) == public  # kept, not replaced


def test_bad_settings_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "not-a-seed").write_text("hello")
    assert main(["--issuer-seed", str(tmp_path / "not-a-seed"), "--nats-insecure"]) == 2
    assert "not an nkey seed" in capsys.readouterr().err
    users = tmp_path / "users.yaml"
    users.write_text("w: {role: agent, password_file: x}\n")
    with pytest.raises(ValueError, match=r"users.yaml.w.role: expected watcher"):
        read_users(str(users))
    users.write_text("w: {role: watcher, password_file: /nonexistent}\n")
    with pytest.raises(ValueError, match=r"w\.password_file"):
        read_users(str(users))
    seed = tmp_path / "seed"
    init_issuer(seed)
    with pytest.raises(SystemExit):
        main(["--issuer-seed", str(seed), "--nats-insecure", "--role", "kube-system/x=agent"])
    assert "agents are the agent service account" in capsys.readouterr().err


def scrape(url: str) -> str:
    with urllib.request.urlopen(url) as response:
        text: str = response.read().decode()
    return text


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[ApiSimulator]:
    async with ApiSimulator(kubeconfig_path=tmp_path / "kubeconfig") as simulator:
        yield simulator


@pytest.mark.integration
async def test_kpng_auth_as_a_process_authorizes_an_agent(
    tmp_path: Path, sim: ApiSimulator
) -> None:
    seed = tmp_path / "seed"
    conf = callout_files(tmp_path, init_issuer(seed))
    port, metrics = free_ports(2)
    url = f"nats://127.0.0.1:{port}"
    token = tmp_path / "token"
    token.write_text(sim.tokens.issue("kube-system/kpng-agent", "node-a") + "\n")
    with ProcessGroup(tmp_path / "logs") as group:
        group.start("nats-server", nats_server_argv(port, conf))
        wait_for_port("127.0.0.1", port)
        argv = [
            sys.executable, "-m", "kpng_auth.main",
            "--nats", url, "--nats-insecure",
            "--nats-user", "kpng-auth", "--nats-password-file", str(tmp_path / "auth.pw"),
            "--issuer-seed", str(seed), "--kubeconfig", str(sim.kubeconfig_path),
            "--metrics-bind-address", f"127.0.0.1:{metrics}",
        ]  # fmt: skip
        auth = group.start("kpng-auth", argv)
        await until(lambda: "answering auth callout" in auth.log(), 15)
        s = Subjects()
        agent_auth = BusAuth(token_file=str(token), insecure=True)
        try:
            agent = await connect(
                url,
                auth=agent_auth,
                connect_timeout=5,
                inbox_prefix=node_inbox(s, "node-a"),
            )
        except BusError:
            pytest.fail(f"kpng-auth did not authorize the agent:\n{auth.log()}")
        assert agent.connected
        refused: list[str] = []
        agent.listeners.permission_violation.append(refused.append)
        await agent.publish(s.node_status("node-b"), b"{}")
        await agent.flush()
        await until(lambda: len(refused) == 1)
        await agent.close()
        token.write_text("forged.token.value\n")
        with pytest.raises(BusError, match="authorization violation"):
            await connect(url, auth=agent_auth, retry_forever=False, connect_timeout=2)
        text = await asyncio.to_thread(scrape, f"http://127.0.0.1:{metrics}/metrics")
        assert 'kpng_auth_granted_total{kind="node"} 1.0' in text
        assert 'kpng_auth_denied_total{reason="token-invalid"}' in text
        assert "refused kpng@127.0.0.1: token-invalid" in auth.log()
