"""--config FILE and KPNG_* variables under every program's flags: file < environment < flags,
every value through the flag's own type, errors naming the flag and where the value came from."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from kpng.runtime.config import apply_settings, env_name, package_version, parse_args
from kpng.runtime.process import add_common_arguments, host_port, positive_float
from kpng_agent.main import parser as agent_parser
from kpng_auth.natsconfig import main as natsconfig_main
from kpng_cli.main import main as cli_main
from kpng_observer.main import parser as observer_parser
from kpng_watcher.main import parser as watcher_parser


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kpng-test")
    p.add_argument("--node", required=True)
    p.add_argument("--coalesce-ms", type=positive_float, default=100.0)
    p.add_argument("--listen", type=host_port, default=("127.0.0.1", 8080))
    p.add_argument("--cluster-cidr", default="")
    p.add_argument("--masquerade-all", action="store_true")
    p.add_argument("--conntrack-cleanup", choices=("auto", "on", "off"), default="auto")
    add_common_arguments(p)
    return p


def _file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "kpng.yaml"
    path.write_text(text)
    return str(path)


def test_env_name_is_kpng_and_the_flag_in_upper_snake_case() -> None:
    assert env_name("--metrics-bind-address") == "KPNG_METRICS_BIND_ADDRESS"
    assert env_name("--nats") == "KPNG_NATS"


def test_the_file_sets_flags_by_name_through_their_types(tmp_path: Path) -> None:
    config = _file(
        tmp_path,
        "node: n1\ncoalesce-ms: 5\nlisten: 0.0.0.0:9000\n"
        "cluster-cidr: [10.0.0.0/16, fd00::/64]\nmasquerade-all: true\nlog-level: debug\n",
    )
    args = parse_args(_parser(), ["--config", config], environ={})
    assert args.node == "n1"  # a required flag the file gives is no longer required
    assert args.coalesce_ms == 5.0
    assert args.listen == ("0.0.0.0", 9000)
    assert args.cluster_cidr == "10.0.0.0/16,fd00::/64"
    assert args.masquerade_all is True
    assert args.log_level == "debug"


def test_precedence_file_then_environment_then_flags(tmp_path: Path) -> None:
    config = _file(tmp_path, "node: from-file\ncoalesce-ms: 5\nlisten: 127.0.0.1:1\n")
    env = {"KPNG_COALESCE_MS": "7", "KPNG_LISTEN": "127.0.0.1:2"}
    args = parse_args(_parser(), ["--config", config, "--listen", "127.0.0.1:3"], environ=env)
    assert args.node == "from-file"  # only in the file
    assert args.coalesce_ms == 7.0  # the environment over the file
    assert args.listen == ("127.0.0.1", 3)  # the command line over both


def test_kpng_config_names_the_file(tmp_path: Path) -> None:
    config = _file(tmp_path, "node: n2\n")
    args = parse_args(_parser(), [], environ={"KPNG_CONFIG": config, "KPNG_MASQUERADE_ALL": "1"})
    assert (args.node, args.masquerade_all) == ("n2", True)


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ("node: n\ncoalesce-ms: -1\n", {}, "kpng.yaml: --coalesce-ms: '-1' must not be negative"),
        ("node: n\nlisten: nowhere\n", {}, "kpng.yaml: --listen: 'nowhere' is not HOST:PORT"),
        ("node: n\nconntrack-cleanup: maybe\n", {}, "--conntrack-cleanup: 'maybe' is not one"),
        ("node: n\nmasquerade-all: perhaps\n", {}, "--masquerade-all: 'perhaps' is not true"),
        ("node: n\nnodes: [a]\nbogus: 1\n", {}, "unknown key(s) bogus, nodes"),
        ("node: n\n", {"KPNG_COALESCE_MS": "x"}, "$KPNG_COALESCE_MS: --coalesce-ms: 'x'"),
        ("- a list\n", {}, "expected a mapping of flag names"),
        ("kind: Other\n", {}, "kind 'Other' is not read here"),
        ("node: [\n", {}, "kpng.yaml"),
    ],
)
def test_a_bad_setting_is_a_usage_error_naming_flag_and_source(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    text: str,
    env: dict[str, str],
    message: str,
) -> None:
    config = _file(tmp_path, text)
    with pytest.raises(SystemExit) as exit_:
        parse_args(_parser(), ["--config", config], environ=env)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_a_missing_file_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        parse_args(_parser(), ["--config", str(tmp_path / "nope.yaml")], environ={})
    assert "nope.yaml" in capsys.readouterr().err


@pytest.mark.parametrize("make", [watcher_parser, agent_parser, observer_parser])
def test_every_program_takes_config_and_version(
    make: object, capsys: pytest.CaptureFixture[str]
) -> None:
    assert callable(make)
    p = make()
    with pytest.raises(SystemExit) as exit_:
        parse_args(p, ["--version"], environ={})
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(p.prog + " ") and out.strip() != p.prog


@pytest.mark.parametrize("make", [watcher_parser, agent_parser, observer_parser])
def test_every_switch_of_every_program_reads_its_variable(make: object) -> None:
    """Each program's switches (the bus's --nats-insecure among them) turn on by KPNG_<FLAG>,
    and --log-level takes its variable's value."""
    assert callable(make)
    switches = [
        a.option_strings[-1] for a in make()._actions if isinstance(a, argparse._StoreTrueAction)
    ]
    assert "--nats-insecure" in switches
    for flag in [*switches, "--log-level"]:
        p = make()
        value = "error" if flag == "--log-level" else "yes"
        apply_settings(p, {}, "", {env_name(flag): value})
        dest = flag.removeprefix("--").replace("-", "_")
        assert p.get_default(dest) == ("error" if flag == "--log-level" else True), flag


def test_kpng_nats_config_and_kpng_print_their_version(capsys: pytest.CaptureFixture[str]) -> None:
    for main, prog in ((natsconfig_main, "kpng-nats-config"), (cli_main, "kpng")):
        with pytest.raises(SystemExit) as exit_:
            main(["--version"])
        assert exit_.value.code == 0
        assert capsys.readouterr().out == f"{prog} {package_version()}\n"
    assert package_version()[0].isdigit()
