"""The --leader-elect flags: the timing they make, and the combinations refused."""

from __future__ import annotations

import pytest

from kpng_watcher.election import ElectionTiming
from kpng_watcher.leader_flags import election_timing
from kpng_watcher.main import parser

BASE = ["--nats-insecure"]


def timing(*argv: str) -> ElectionTiming | None:
    p = parser()
    return election_timing(p.parse_args([*BASE, *argv]), p)


def test_off_by_default_and_kube_style_defaults() -> None:
    assert timing("--source", "kube") is None
    assert timing("--source", "kube", "--leader-elect") == ElectionTiming(15.0, 10.0, 2.0)
    args = parser().parse_args([*BASE, "--source", "kube"])
    assert args.leader_elect_resource_name == "kpng-watcher"
    short = timing(
        "--source",
        "kube",
        "--leader-elect",
        "--leader-elect-lease-duration=3",
        "--leader-elect-renew-deadline=2",
        "--leader-elect-retry-period=0.5",
    )
    assert short == ElectionTiming(3.0, 2.0, 0.5)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--source", "file:/x.yaml", "--leader-elect"], "--leader-elect needs --source kube"),
        (
            ["--source", "kube", "--leader-elect", "--leader-elect-renew-deadline=20"],
            "renew deadline < lease duration",
        ),
    ],
)
def test_usage_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        timing(*argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err
