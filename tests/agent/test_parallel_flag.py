"""``--parallel-families-above``: validated at start, and passed down to the backend."""

from __future__ import annotations

import pytest

from kpng_agent.main import parser as agent_parser
from kpng_agent.nftflags import nftables_backend


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ("-1", "-1 is negative (0 turns the child off)"),
        ("many", "'many' is not a number of services"),
        ("2e3", "'2e3' is not a number of services"),
    ],
)
def test_a_bad_threshold_is_refused_naming_the_flag(
    bad: str, why: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        agent_parser().parse_args(
            ["--node", "n1", "--backend", "nftables", "--parallel-families-above", bad]
        )
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "argument --parallel-families-above" in err and why in err, err


@pytest.mark.parametrize(("given", "above"), [([], 2000), (["--parallel-families-above", "0"], 0)])
def test_the_threshold_reaches_the_backend(given: list[str], above: int) -> None:
    args = agent_parser().parse_args(["--node", "n1", "--backend", "nftables", *given])
    backend = nftables_backend(args)
    assert backend.settings.fork_above == above and backend.parallel.above == above
