"""The observer's command line: the listen policy and token sources."""

from __future__ import annotations

from pathlib import Path

import pytest

from kpng_observer.auth import InsecureListen, check_listen, is_loopback, read_token
from kpng_observer.main import main, parser


def test_open_api_only_on_loopback_unless_insecure() -> None:
    check_listen("127.0.0.1", None, insecure=False)
    check_listen("::1", None, insecure=False)
    check_listen("0.0.0.0", "t", insecure=False)
    check_listen("0.0.0.0", None, insecure=True)
    with pytest.raises(InsecureListen):
        check_listen("0.0.0.0", None, insecure=False)
    assert is_loopback("localhost") and not is_loopback("example.org")


def test_main_refuses_an_open_api_on_all_addresses() -> None:
    assert main(["--listen", "0.0.0.0:0", "--nats-insecure"]) == 2


def test_token_file_wins_and_must_not_be_empty(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("s3cret\n")
    assert read_token("other", path) == "s3cret"
    assert read_token(None, None) is None
    path.write_text("\n")
    with pytest.raises(ValueError):
        read_token(None, path)


def test_cluster_cidr_flag_is_parsed() -> None:
    args = parser().parse_args(["--cluster-cidr", "10.244.0.0/16, fd00::/48"])
    assert [str(c) for c in args.cluster_cidr] == ["10.244.0.0/16", "fd00::/48"]
    with pytest.raises(SystemExit):
        parser().parse_args(["--cluster-cidr", "nope"])


def test_detect_local_mode_flag_takes_the_agents_modes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert parser().parse_args([]).detect_local_mode == "ClusterCIDR"
    for mode in ("NodeCIDR", "BridgeInterface", "InterfaceNamePrefix"):
        assert parser().parse_args(["--detect-local-mode", mode]).detect_local_mode == mode
    with pytest.raises(SystemExit):
        parser().parse_args(["--detect-local-mode", "Bridge"])
    assert "invalid choice: 'Bridge'" in capsys.readouterr().err
