"""kpng-nats-config: settings checked field by field, and the roles rendered for nats-server."""

from __future__ import annotations

import json
import stat
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from kpng.bus.permissions import role_permissions
from kpng.bus.subjects import Subjects
from kpng_auth.natsconfig import SettingsError, main, parse_settings
from kpng_devrun.procs import ProcessGroup, free_ports, nats_server_argv
from tests.integration.harness import wait_until

GOOD: dict[str, Any] = {
    "prefix": "kpng",
    "listen": "127.0.0.1:4222",
    "tls": {"generate": ["127.0.0.1", "nats"]},
    "users": {"watcher": {"role": "watcher"}, "dash": {"role": "consumer", "node_views": True}},
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"users": {"w": {"role": "god"}}}, "settings.users.w.role: expected one of"),
        ({"users": {"Bad Name": {"role": "agent"}}}, "settings.users.Bad Name: a user name"),
        ({"users": {}}, "settings.users: expected a mapping"),
        ({"prefix": "a b"}, "settings.prefix: invalid subject prefix"),
        ({"tls": {"cert": "c.pem"}}, "settings.tls.key: required"),
        ({"colour": "blue"}, "settings: unknown field(s) colour"),
        ({"users": {"a": {"role": "consumer", "node_views": "yes"}}}, "node_views: expected"),
        ({"cluster": {"routes": []}}, "settings.cluster.routes: expected a list of host:port"),
        ({"cluster": {"routes": ["nats-1"]}}, "settings.cluster.routes: expected a list"),
        ({"cluster": {"routes": ["a:1"], "port": 1}}, "settings.cluster: expected {name"),
    ],
)
def test_bad_settings_name_the_field(change: dict[str, Any], message: str) -> None:
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_settings({**GOOD, **change})


def test_the_agent_role_cannot_publish_views() -> None:
    agent = role_permissions("agent", Subjects("kpng"))
    assert set(agent.publish) == {"kpng.v1.node.*.status", "kpng.v1.node.*.snapshot"}
    consumer = role_permissions("consumer", Subjects("kpng"))
    assert consumer.publish == ("kpng.v1.global.snapshot",)


def test_the_generator_writes_secrets_privately_and_keeps_them(tmp_path: Path) -> None:
    settings = tmp_path / "bus.yaml"
    settings.write_text(yaml.safe_dump(GOOD))
    assert main([str(settings), "--out", str(tmp_path / "out")]) == 0
    password = tmp_path / "out/users/watcher.password"
    first = password.read_text()
    assert stat.S_IMODE(password.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "out/nats.conf").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "out/tls/ca-key.pem").stat().st_mode) == 0o600
    conf = (tmp_path / "out/nats.conf").read_text()
    assert first.strip() in conf and '"kpng.v1.node.*.delta"' in conf and "tls {" in conf
    assert main([str(settings), "--out", str(tmp_path / "out")]) == 0
    assert password.read_text() == first


def test_a_broken_settings_file_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = tmp_path / "bus.yaml"
    settings.write_text("users: {w: {role: nobody}}\n")
    assert main([str(settings), "--out", str(tmp_path / "out")]) == 2
    assert f"{settings}.users.w.role" in capsys.readouterr().err


@pytest.mark.integration
def test_a_cluster_block_makes_three_servers_route_over_tls(tmp_path: Path) -> None:
    """One generated file for every server; routes authenticate and verify each other."""
    picked = free_ports(9)  # routes, monitors, clients: all different
    cluster_ports, monitors, clients = picked[:3], picked[3:6], picked[6:]
    routes = [f"127.0.0.1:{p}" for p in cluster_ports]
    settings = tmp_path / "bus.yaml"
    settings.write_text(yaml.safe_dump({**GOOD, "cluster": {"name": "kpng", "routes": routes}}))
    assert main([str(settings), "--out", str(tmp_path / "out")]) == 0
    conf = (tmp_path / "out/nats.conf").read_text()
    password = (tmp_path / "out/cluster.password").read_text().strip()
    assert f"nats-route://route:{password}@127.0.0.1:{cluster_ports[0]}" in conf
    assert stat.S_IMODE((tmp_path / "out/cluster.password").stat().st_mode) == 0o600
    with ProcessGroup(tmp_path / "logs") as group:
        for i, (route, monitor, client) in enumerate(
            zip(cluster_ports, monitors, clients, strict=True)
        ):
            argv = nats_server_argv(client, tmp_path / "out/nats.conf")
            argv += ["--cluster", f"nats://127.0.0.1:{route}", "-n", f"s{i}", "-m", str(monitor)]
            group.start(f"nats-{i}", argv)

        def peers(monitor: int) -> set[str]:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{monitor}/routez", timeout=2) as r:
                    return {route["remote_name"] for route in json.load(r)["routes"]}
            except OSError:
                return set()

        wait_until(
            "every server routes to the two others",
            lambda: all(
                peers(m) == {f"s{j}" for j in range(3)} - {f"s{i}"} for i, m in enumerate(monitors)
            ),
            timeout=15,
        )
