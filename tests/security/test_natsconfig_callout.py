"""kpng-nats-config with ``callout``: nats-server's auth callout for kpng-auth (an external
NATS, or compose), the users checked by kpng-auth from the file it writes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from kpng.bus.auth import BusAuth
from kpng.bus.nats import connect
from kpng.bus.protocol import BusError
from kpng.bus.subjects import Subjects
from kpng_auth.decide import Policy
from kpng_auth.main import read_users
from kpng_auth.natsconfig import SettingsError, generate, parse_settings
from kpng_auth.natsjwt import Signer, new_seed
from kpng_auth.respond import Responder
from kpng_auth.reviewer import FakeReviewer
from kpng_devrun.procs import ProcessGroup, free_port, nats_server_argv, wait_for_port
from tests.integration.harness import until

USERS = {"watcher": {"role": "watcher"}, "dash": {"role": "consumer", "node_views": True}}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"callout": {"issuer": "not-a-key"}}, r"settings\.callout\.issuer: not an nkey"),
        ({"callout": {"key": "x"}}, r"settings\.callout: expected \{issuer"),
        ({"nodes": ["n1"]}, "agents present tokens to kpng-auth"),
        ({"users": {"a": {"role": "agent"}}}, "agents present tokens to kpng-auth"),
        ({"users": {"w": {"role": "watcher", "also": {"publish": ["x"]}}}}, "drop also"),
    ],
)
def test_callout_settings_are_checked(change: dict[str, object], message: str) -> None:
    raw = {"users": USERS, "callout": {"issuer": Signer(new_seed()).public}, **change}
    with pytest.raises(SettingsError, match=message):
        parse_settings(raw)


@pytest.mark.integration
async def test_generated_callout_config_lets_kpng_auth_check_the_users(tmp_path: Path) -> None:
    signer = Signer(new_seed())
    port = free_port()
    raw = {"listen": f"127.0.0.1:{port}", "users": USERS, "callout": {"issuer": signer.public}}
    conf = generate(parse_settings(raw), tmp_path / "bus")
    assert "auth_callout" in conf.read_text() and "users = [" not in conf.read_text()
    users = read_users(str(tmp_path / "bus" / "kpng-auth-users.yaml"))
    assert users["dash"].role == "consumer" and users["dash"].node_views
    with ProcessGroup(tmp_path / "logs") as group:
        group.start("nats-server", nats_server_argv(port, conf))
        wait_for_port("127.0.0.1", port)
        url = f"nats://127.0.0.1:{port}"
        pw = tmp_path / "bus" / "users"
        auth_bus = await connect(
            url,
            retry_forever=False,
            auth=BusAuth(
                user="kpng-auth", password_file=str(pw / "kpng-auth.password"), insecure=True
            ),
        )
        responder = Responder(
            auth_bus, FakeReviewer(), Policy(Subjects(), users=users), signer, "KPNG"
        )
        task = asyncio.create_task(responder.run())
        try:
            await asyncio.sleep(0.2)
            watcher = await connect(
                url,
                retry_forever=False,
                auth=BusAuth(
                    user="watcher", password_file=str(pw / "watcher.password"), insecure=True
                ),
            )
            assert watcher.connected
            await watcher.publish(Subjects().global_delta, b"d")  # the watcher's role
            await watcher.publish("elsewhere", b"x")
            await watcher.flush()
            await until(lambda: watcher.permission_violations == 1, 15)
            await watcher.close()
            wrong = tmp_path / "wrong"
            wrong.write_text("nope\n")
            with pytest.raises(BusError, match="authorization violation"):
                await connect(
                    url,
                    retry_forever=False,
                    connect_timeout=2,
                    auth=BusAuth(user="watcher", password_file=str(wrong), insecure=True),
                )
            assert responder.metrics.denied.labels("password")._value.get() >= 1
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await auth_bus.close()
