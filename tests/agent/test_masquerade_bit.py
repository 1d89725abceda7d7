"""``--masquerade-bit``: validated at start, and passed down to the rendered rules."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kpng.diff import View
from kpng.model import ViewEndpoint
from kpng_agent.backends.nftables import config_for
from kpng_agent.main import parser as agent_parser
from kpng_agent.nftflags import nftables_backend

AGENT = Path(sys.executable).parent / "kpng-agent"


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ("32", "32 is not a bit of the 32-bit mark (0..31)"),
        ("-1", "-1 is not a bit of the 32-bit mark (0..31)"),
        ("0x4000", "'0x4000' is not an integer (a bit 0..31)"),
        ("fourteen", "'fourteen' is not an integer (a bit 0..31)"),
        ("", "'' is not an integer (a bit 0..31)"),
    ],
)
def test_a_bad_masquerade_bit_is_refused_naming_the_flag(
    bad: str, why: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        agent_parser().parse_args(
            ["--node", "n1", "--backend", "nftables", "--masquerade-bit", bad]
        )
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "argument --masquerade-bit" in err and why in err, err


def test_the_agent_process_exits_non_zero_on_a_bad_masquerade_bit() -> None:
    done = subprocess.run(
        [str(AGENT), "--node", "n1", "--backend", "nftables", "--masquerade-bit", "33"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "argument --masquerade-bit: 33 is not a bit of the 32-bit mark" in done.stderr


@pytest.mark.parametrize(
    ("given", "bit"), [([], 14), (["--masquerade-bit", "0"], 0), (["--masquerade-bit", " 31 "], 31)]
)
def test_the_masquerade_bit_reaches_the_rendered_rules(given: list[str], bit: int) -> None:
    args = agent_parser().parse_args(["--node", "n1", "--backend", "nftables", *given])
    backend = nftables_backend(args)
    view: View[ViewEndpoint] = View()
    c = config_for(backend.settings, view, 4, lambda: ["192.168.0.10"])
    assert c.masquerade_bit == bit and c.masq_mark == 1 << bit
