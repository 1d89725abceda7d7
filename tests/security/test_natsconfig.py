"""kpng-nats-config: settings checked field by field, and the roles rendered for nats-server."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest
import yaml

from kpng.bus.permissions import role_permissions
from kpng.bus.subjects import Subjects
from kpng_auth.natsconfig import SettingsError, main, parse_settings

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
