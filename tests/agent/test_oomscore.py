"""The agent's own OOM score (kube-proxy's --oom-score-adj): set at start, and a value that
cannot be written is a warning, never a failed start. A real agent process sets it in
tests/agent/test_agent_http.py."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from kpng_agent import oomscore
from kpng_agent.main import main as agent_main
from kpng_agent.main import parser


def test_the_value_is_written_and_none_leaves_it(tmp_path: Path) -> None:
    score = tmp_path / "oom_score_adj"
    score.write_text("0\n")
    assert oomscore.apply(None, score) == ()
    assert score.read_text() == "0\n"
    assert oomscore.apply(-999, score) == ()
    assert score.read_text() == "-999\n"


def test_a_score_it_cannot_set_is_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    (warning,) = oomscore.apply(-999, tmp_path / "no" / "oom_score_adj")
    assert "could not set the agent's oom_score_adj to -999" in warning
    assert warning in caplog.text


@pytest.mark.parametrize("value", ["-1000", "0", "1000"])
def test_the_flag_takes_kube_proxys_range(value: str) -> None:
    args = parser().parse_args(["--node", "n", "--oom-score-adj", value])
    assert args.oom_score_adj == int(value)
    assert parser().parse_args(["--node", "n"]).oom_score_adj is None


@pytest.mark.parametrize(
    ("value", "message"), [("-1001", "not within -1000..1000"), ("x", "not a whole number")]
)
def test_a_value_out_of_range_is_refused(
    value: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        parser().parse_args(["--node", "n", "--oom-score-adj", value])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_the_node_is_required_but_for_init_only(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        agent_main(["--backend", "dump", "--nats-insecure"])
    assert exc.value.code == 2
    assert "the following arguments are required: --node" in capsys.readouterr().err


def test_hostname_override_is_kube_proxys_name_for_node() -> None:
    args = parser().parse_args(["--hostname-override", "node-a"])
    assert args.node == "node-a"
