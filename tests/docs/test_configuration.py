"""docs/configuration.md describes every flag of every service (and nothing that is gone)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from kpng_agent.main import parser as agent_parser
from kpng_observer.main import parser as observer_parser
from kpng_watcher.main import parser as watcher_parser

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def flags(p: argparse.ArgumentParser) -> set[str]:
    return {
        option
        for action in p._actions
        for option in action.option_strings
        if option.startswith("--") and option != "--help"
    }


def section(title: str) -> str:
    text = DOC.read_text()
    heading = f"## `{title}`" if title.startswith("kpng") else f"## {title}"
    start = text.index(heading)
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


COMMON = {
    "--nats",
    "--prefix",
    "--log-level",
    "--logging-format",
    "--config",
    "--version",
    "--nats-creds",
    "--nats-nkey",
    "--nats-token-file",
    "--nats-user",
    "--nats-password-file",
    "--nats-tls-ca",
    "--nats-tls-cert",
    "--nats-tls-key",
    "--nats-tls-server-name",
    "--nats-insecure",
}


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("kpng-watcher", watcher_parser),
        ("kpng-agent", agent_parser),
        ("kpng-observer", observer_parser),
    ],
)
def test_every_flag_is_documented_in_its_section(name: str, make: object) -> None:
    assert callable(make)
    own = flags(make()) - COMMON
    documented = set(re.findall(r"`(--[a-z0-9-]+)", section(name)))
    assert own <= documented, f"{name}: undocumented {sorted(own - documented)}"
    assert documented <= own, f"{name}: documented but gone {sorted(documented - own)}"


def test_common_flags_are_documented_and_common() -> None:
    common = set(re.findall(r"`(--[a-z0-9-]+)", section("Common to all three services")[:4000]))
    assert common == COMMON
    for make in (watcher_parser, agent_parser, observer_parser):
        assert flags(make()) >= COMMON
