"""The bundled NATS as the chart configures it, against a real nats-server: the nats.conf the
chart renders (users per role, kpng's permissions, TLS) refuses strangers and forged deltas."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from kpng.bus.auth import BusAuth
from kpng.bus.nats import connect
from kpng.bus.protocol import Bus, BusError
from kpng.bus.subjects import Subjects
from kpng_auth.pki import TlsFiles, make_tls
from kpng_devrun.procs import ProcessGroup, free_port, nats_server_argv, wait_for_port
from tests.deploy.helm import manifests, rendered
from tests.integration.harness import until

pytestmark = pytest.mark.integration

PREFIX = "kpng.blue"  # tests/deploy/values/bundled-nats.yaml
PASSWORDS = {"watcher": "w-secret", "agent": "a-secret", "observer": "o-secret"}


class ChartNats:
    def __init__(self, url: str, directory: Path, tls: TlsFiles) -> None:
        self.url, self.directory, self.tls = url, directory, tls

    async def connect(self, role: str = "") -> Bus:
        if not role:
            auth = BusAuth(tls_ca=str(self.tls.ca), insecure=True)
        else:
            password = self.directory / f"{role}.password"
            password.write_text(PASSWORDS[role] + "\n")
            auth = BusAuth(
                user=f"kpng-{role}", password_file=str(password), tls_ca=str(self.tls.ca)
            )
        return await connect(
            self.url, retry_forever=False, connect_timeout=2, auth=auth, prefix=PREFIX
        )


@pytest.fixture
def chart_nats(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ChartNats]:
    (cm,) = [o for o in manifests(rendered("bundled-nats")) if o["kind"] == "ConfigMap"]
    tls = make_tls(tmp_path / "tls", ["127.0.0.1"])
    text = yaml.safe_load(yaml.safe_dump(cm))["data"]["nats.conf"]
    text = text.replace("/etc/nats/tls/tls.crt", str(tls.cert))
    text = text.replace("/etc/nats/tls/tls.key", str(tls.key))
    config = tmp_path / "nats.conf"
    config.write_text(text)
    # what the chart's Deployment passes from the Secret
    for role, password in PASSWORDS.items():
        monkeypatch.setenv(f"KPNG_{role.upper()}_PASSWORD", password)
    port = free_port()
    with ProcessGroup(tmp_path / "logs") as group:
        # -p after -c: the test's free port instead of the chart's
        group.start("nats-server", [*nats_server_argv(port, config), "-p", str(port), "-m", "0"])
        wait_for_port("127.0.0.1", port)
        yield ChartNats(f"tls://127.0.0.1:{port}", tmp_path, tls)


async def test_strangers_are_refused(chart_nats: ChartNats) -> None:
    with pytest.raises(BusError, match="authorization violation"):
        await chart_nats.connect()


async def test_agent_may_not_publish_deltas_but_the_watcher_may(chart_nats: ChartNats) -> None:
    subjects = Subjects(PREFIX)
    agent = await chart_nats.connect("agent")
    watcher = await chart_nats.connect("watcher")
    refused: list[str] = []
    agent.listeners.permission_violation.append(refused.append)
    try:
        await agent.publish(subjects.node_delta("n1"), b"forged")
        await agent.publish(subjects.global_delta, b"forged")
        await agent.publish(subjects.node_status("n1"), b"{}")  # its role's own subject
        await agent.flush()
        await until(lambda: len(refused) == 2)
        await watcher.publish(subjects.node_delta("n1"), b"x")
        await watcher.flush()
        assert watcher.permission_violations == 0
        assert agent.permission_violations == 2
    finally:
        await agent.close()
        await watcher.close()
