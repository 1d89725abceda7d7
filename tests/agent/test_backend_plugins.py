"""Backends as plugins: discovery through entry points, broken and duplicate plugins, flags,
server defaults, cleanup, and lazy loading."""

from __future__ import annotations

import logging
import subprocess
import sys
from importlib.metadata import EntryPoint

import pytest

from kpng.dataplane.plugin import ENTRY_POINT_GROUP, KUBE_PROXY, SHARED_HOST, BackendPlugin
from kpng_agent import nftflags
from kpng_agent.backends import nftables
from kpng_agent.backends.dump import PLUGIN as DUMP
from kpng_agent.backends.dump import DumpBackend
from kpng_agent.backends.registry import (
    BUILTIN,
    Backends,
    PluginError,
    cleanup,
    discover,
    with_builtins,
)
from kpng_agent.main import make_backend, parser
from tests.agent import plugins_for_tests
from tests.agent.plugins_for_tests import RecordingBackend

FIXTURES = "tests.agent.plugins_for_tests"


def ep(name: str, attr: str, module: str = FIXTURES) -> EntryPoint:
    return EntryPoint(name, f"{module}:{attr}", ENTRY_POINT_GROUP)


def backends(*extra: EntryPoint) -> Backends:
    return Backends(with_builtins(extra))


def test_the_builtin_backends_are_found_and_are_plugins() -> None:
    found = discover()
    assert {"dump", "nftables"} <= set(found.names)
    assert found.broken == {}
    assert found.plugins["dump"] is DUMP and found.plugins["nftables"] is nftflags.PLUGIN
    for plugin in found.plugins.values():
        assert isinstance(plugin, BackendPlugin)


def test_builtins_are_added_only_where_the_metadata_lacks_them() -> None:
    assert with_builtins([]) == list(BUILTIN)
    # an install made after pyproject.toml declared them: nothing added twice
    declared = [EntryPoint(e.name, e.value, e.group) for e in BUILTIN]
    assert with_builtins(declared) == declared
    assert Backends(with_builtins(declared)).broken == {}
    other = ep("recording", "RECORDING")
    assert with_builtins([other]) == [other, *BUILTIN]


def test_pyproject_registers_the_builtins_as_the_fallback_table_does() -> None:
    import tomllib
    from pathlib import Path

    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    declared = tomllib.loads(pyproject.read_text())["project"]["entry-points"][ENTRY_POINT_GROUP]
    assert declared == {e.name: e.value for e in BUILTIN}


def test_a_plugin_that_fails_to_import_is_broken_by_name_and_the_others_work() -> None:
    found = backends(
        ep("ghost", "PLUGIN", "tests.agent.no_such_module"), ep("recording", "RECORDING")
    )
    assert found.names == ("dump", "ghost", "nftables", "recording")
    assert set(found.plugins) == {"dump", "nftables", "recording"}
    with pytest.raises(PluginError) as err:
        found.get("ghost")
    message = str(err.value)
    assert "backend 'ghost'" in message and "tests.agent.no_such_module:PLUGIN" in message
    assert "could not be loaded: ModuleNotFoundError" in message


@pytest.mark.parametrize(
    ("name", "attr", "why"),
    [
        ("odd", "NOT_A_PLUGIN", "is not a kpng.dataplane.plugin.BackendPlugin"),
        ("named", "MISNAMED", "calls itself 'something-else'"),
        ("absent", "NO_SUCH_ATTRIBUTE", "could not be loaded: AttributeError"),
    ],
)
def test_an_entry_point_that_is_not_a_usable_plugin_is_broken(
    name: str, attr: str, why: str
) -> None:
    found = backends(ep(name, attr))
    assert name not in found.plugins
    assert why in found.broken[name] and f"backend {name!r}" in found.broken[name]


def test_two_plugins_with_one_name_are_an_error_naming_both() -> None:
    found = backends(ep("recording", "RECORDING"), ep("recording", "FAILING"))
    with pytest.raises(PluginError) as err:
        found.get("recording")
    message = str(err.value)
    assert "backend 'recording' is registered 2 times" in message
    assert f"{FIXTURES}:RECORDING" in message and f"{FIXTURES}:FAILING" in message
    assert found.get("dump") is DUMP


def test_an_unknown_name_lists_the_installed_ones() -> None:
    with pytest.raises(PluginError, match=r"no backend 'x' is installed \(installed: dump, "):
        backends().get("x")


def test_backend_lists_and_describes_the_discovered_names(
    capsys: pytest.CaptureFixture[str],
) -> None:
    p = parser(backends(ep("recording", "RECORDING")))
    action = next(a for a in p._actions if "--backend" in a.option_strings)
    assert tuple(action.choices or ()) == ("dump", "nftables", "recording")
    with pytest.raises(SystemExit):
        p.parse_args(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "recording: records what it is asked to program" in out
    assert "recording backend: records what it is asked to program --recording-label" in out


def test_a_plugin_whose_flags_clash_is_broken_and_the_parser_still_works() -> None:
    found = backends(ep("clashing", "CLASHING"), ep("recording", "RECORDING"))
    p = parser(found)
    assert "could not add its flags: ArgumentError" in found.broken["clashing"]
    args = p.parse_args(["--node", "n1", "--backend", "recording", "--recording-label", "x"])
    backend = make_backend(args, p, found)
    assert isinstance(backend, RecordingBackend) and (backend.node, backend.label) == ("n1", "x")


def test_choosing_a_broken_backend_exits_1_with_the_reason(
    capsys: pytest.CaptureFixture[str],
) -> None:
    found = backends(ep("ghost", "PLUGIN", "tests.agent.no_such_module"))
    p = parser(found)
    args = p.parse_args(["--node", "n1", "--backend", "ghost"])
    with pytest.raises(SystemExit) as exit_:
        make_backend(args, p, found)
    assert exit_.value.code == 1
    assert "kpng-agent: error: backend 'ghost'" in capsys.readouterr().err


def test_a_broken_backend_not_chosen_is_only_a_warning(
    caplog: pytest.LogCaptureFixture, tmp_path: object
) -> None:
    found = backends(ep("ghost", "PLUGIN", "tests.agent.no_such_module"))
    p = parser(found)
    args = p.parse_args(["--node", "n1", "--dump-file", f"{tmp_path}/n1.json"])
    with caplog.at_level(logging.WARNING, logger="kpng_agent"):
        assert isinstance(make_backend(args, p, found), DumpBackend)
    assert "backend 'ghost'" in caplog.text and "could not be loaded" in caplog.text


def test_a_factory_that_fails_exits_1_naming_the_backend(
    capsys: pytest.CaptureFixture[str],
) -> None:
    found = backends(ep("failing", "FAILING"))
    p = parser(found)
    with pytest.raises(SystemExit) as exit_:
        make_backend(p.parse_args(["--node", "n1", "--backend", "failing"]), p, found)
    assert exit_.value.code == 1
    err = capsys.readouterr().err
    assert "backend 'failing' could not be built: RuntimeError: no dataplane here" in err


def test_a_usage_error_of_the_factory_exits_2_with_usage(
    capsys: pytest.CaptureFixture[str],
) -> None:
    found = backends(ep("recording", "RECORDING"))
    p = parser(found)
    argv = ["--node", "n1", "--backend", "recording", "--recording-label", "missing"]
    with pytest.raises(SystemExit) as exit_:
        make_backend(p.parse_args(argv), p, found)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: kpng-agent") and "needs a real --recording-label" in err


def test_dump_without_its_file_is_still_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    found = discover()
    p = parser(found)
    with pytest.raises(SystemExit) as exit_:
        make_backend(p.parse_args(["--node", "n1"]), p, found)
    assert exit_.value.code == 2
    assert "--backend dump needs --dump-file PATH" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("backend", "given", "expected"),
    [
        ("dump", [], ("127.0.0.1:0", "127.0.0.1:0", "", "off")),
        ("recording", [], ("0.0.0.0:10256", "127.0.0.1:10249", "0.0.0.0", "on")),
        (
            "recording",
            ["--healthz-bind-address", "", "--health-check-bind-host", "127.0.0.2"],
            ("", "127.0.0.1:10249", "127.0.0.2", "on"),
        ),
        (
            "dump",
            ["--metrics-bind-address", "127.0.0.1:9999", "--conntrack-cleanup", "on"],
            ("127.0.0.1:0", "127.0.0.1:9999", "", "on"),
        ),
        (
            "recording",
            ["--conntrack-cleanup", "off"],
            ("0.0.0.0:10256", "127.0.0.1:10249", "0.0.0.0", "off"),
        ),
    ],
)
def test_the_backend_gives_the_server_defaults_and_flags_win(
    backend: str, given: list[str], expected: tuple[str, str, str, str], tmp_path: object
) -> None:
    found = backends(ep("recording", "RECORDING"))
    p = parser(found)
    argv = ["--node", "n1", "--backend", backend, "--dump-file", f"{tmp_path}/d.json", *given]
    args = p.parse_args(argv)
    make_backend(args, p, found)
    got = (
        args.healthz_bind_address,
        args.metrics_bind_address,
        args.health_check_bind_host,
        args.conntrack_cleanup,
    )
    assert got == expected


def test_the_builtins_keep_their_server_defaults() -> None:
    assert DUMP.servers == SHARED_HOST and nftflags.PLUGIN.servers == KUBE_PROXY
    assert KUBE_PROXY.healthz == "0.0.0.0:10256" and KUBE_PROXY.metrics == "127.0.0.1:10249"


def test_cleanup_runs_the_chosen_backends_command_with_the_rest_of_the_arguments() -> None:
    plugins_for_tests.CLEANED.clear()
    found = backends(ep("recording", "RECORDING"))
    assert cleanup(["--backend", "recording", "--anything", "x"], found) == 3
    assert plugins_for_tests.CLEANED == [["--anything", "x"]]


def test_cleanup_defaults_to_nftables() -> None:
    plugins_for_tests.CLEANED.clear()
    found = Backends([ep("nftables", "CLEANUP_AS_NFTABLES"), BUILTIN[0]])
    assert cleanup(["--table-name", "t"], found) == 3
    assert plugins_for_tests.CLEANED == [["--table-name", "t"]]


def test_cleanup_of_a_backend_without_one_is_a_no_op(capsys: pytest.CaptureFixture[str]) -> None:
    assert cleanup(["--backend", "dump"], discover()) == 0
    assert "backend 'dump' leaves nothing to clean up" in capsys.readouterr().err


def test_cleanup_of_a_broken_backend_says_why(capsys: pytest.CaptureFixture[str]) -> None:
    found = backends(ep("ghost", "PLUGIN", "tests.agent.no_such_module"))
    with pytest.raises(SystemExit) as exit_:
        cleanup(["--backend", "ghost"], found)
    assert exit_.value.code == 2
    assert "backend 'ghost'" in capsys.readouterr().err


def test_the_nftables_flags_know_the_backends_primary() -> None:
    assert nftflags.PRIMARY == nftables.PRIMARY


def test_loading_the_plugins_and_running_dump_imports_no_nftables_code(tmp_path: object) -> None:
    """The agent loads every plugin to build its parser: a dump agent must not pay for
    nftables (pyroute2, the netlink codecs, the planner)."""
    program = f"""
import sys
from kpng_agent.backends.registry import discover
from kpng_agent.main import make_backend, parser
found = discover()
p = parser(found)
args = p.parse_args(["--node", "n1", "--dump-file", "{tmp_path}/n1.json"])
make_backend(args, p, found)
assert set(found.plugins) >= {{"dump", "nftables"}}
heavy = [m for m in sys.modules if m.startswith(
    ("pyroute2", "kpng.dataplane.nft", "kpng_agent.netlink", "kpng_agent.backends.nftables"))]
print(heavy)
"""
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout


def test_docs_backends_md_lists_the_plugin_protocol_as_it_is() -> None:
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "backends.md").read_text()
    block = doc[doc.index("class BackendPlugin(Protocol):") :]
    block = block[: block.index("```")]
    documented = set(re.findall(r"^    (?:def )?(\w+)", block, re.MULTILINE))
    members = {m for m in dir(BackendPlugin) if not m.startswith("_") and m not in dir(object)}
    assert documented == members
    assert f'[project.entry-points."{ENTRY_POINT_GROUP}"]' in doc
