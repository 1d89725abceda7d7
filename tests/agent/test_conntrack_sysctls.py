"""The conntrack sysctls kube-proxy sets at start (kpng.dataplane.ctsysctl, applied by
kpng_agent.ctsysctl): planned as kube-proxy plans them, written on a fake /proc/sys and
/sys/module, and for real in a network namespace made for the test."""

from __future__ import annotations

import logging
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from kpng.dataplane.ctsysctl import MAX, ConntrackSettings, Write, conntrack_max, needed, writes
from kpng_agent import ctsysctl
from kpng_agent.main import parser as agent_parser
from kpng_agent.nftflags import conntrack_settings, set_conntrack_sysctls

NF = "net/netfilter"


def test_the_limit_as_kube_proxy_computes_it() -> None:
    d = ConntrackSettings()
    assert conntrack_max(d, 2) == 131072  # 2 x 32768 is under the floor
    assert conntrack_max(d, 8) == 262144
    assert conntrack_max(ConntrackSettings(max_per_core=0), 64) == 0  # leave the limit
    assert conntrack_max(ConntrackSettings(min=0), 1) == 32768


def test_the_defaults_set_the_limit_and_the_tcp_timeouts_only() -> None:
    assert writes(ConntrackSettings(), 8) == (
        Write(MAX, 262144, raise_only=True),
        Write(f"{NF}/nf_conntrack_tcp_timeout_established", 86400),
        Write(f"{NF}/nf_conntrack_tcp_timeout_close_wait", 3600),
    )
    off = ConntrackSettings(max_per_core=0, tcp_established=0, tcp_close_wait=0)
    assert writes(off, 8) == ()
    every = ConntrackSettings(tcp_be_liberal=True, udp=30, udp_stream=120)
    assert [w.name.rsplit("/", 1)[1] for w in writes(every, 1)][3:] == [
        "nf_conntrack_tcp_be_liberal",
        "nf_conntrack_udp_timeout",
        "nf_conntrack_udp_timeout_stream",
    ]


def test_the_limit_is_only_raised_the_rest_set_exactly() -> None:
    limit, timeout = Write(MAX, 1000, raise_only=True), Write("x", 60)
    assert needed(limit, 999) and not needed(limit, 1000) and not needed(limit, 5000)
    assert needed(timeout, 30) and needed(timeout, 90) and not needed(timeout, 60)
    assert needed(limit, None) and needed(timeout, None)


def _fake(tmp: Path, **values: int) -> tuple[Path, Path]:
    proc, module = tmp / "proc", tmp / "module"
    (proc / NF).mkdir(parents=True)
    (module / "nf_conntrack/parameters").mkdir(parents=True)
    for name, value in values.items():
        path = (
            module / "nf_conntrack/parameters/hashsize" if name == "hashsize" else proc / NF / name
        )
        path.write_text(f"{value}\n")
    return proc, module


def test_applied_on_a_node_raises_the_limit_and_its_hash_table(tmp_path: Path) -> None:
    proc, module = _fake(
        tmp_path,
        nf_conntrack_max=65536,
        hashsize=16384,
        nf_conntrack_tcp_timeout_established=432000,
        nf_conntrack_tcp_timeout_close_wait=60,
    )
    assert ctsysctl.apply(ConntrackSettings(), 8, proc, module) == ()
    assert (proc / NF / "nf_conntrack_max").read_text() == "262144\n"
    assert (module / "nf_conntrack/parameters/hashsize").read_text() == "65536\n"
    assert (proc / NF / "nf_conntrack_tcp_timeout_established").read_text() == "86400\n"
    assert (proc / NF / "nf_conntrack_tcp_timeout_close_wait").read_text() == "3600\n"


def test_a_larger_limit_and_hash_table_stay(tmp_path: Path) -> None:
    proc, module = _fake(tmp_path, nf_conntrack_max=1048576, hashsize=262144)
    assert (
        ctsysctl.apply(ConntrackSettings(tcp_established=0, tcp_close_wait=0), 8, proc, module)
        == ()
    )
    assert (proc / NF / "nf_conntrack_max").read_text() == "1048576\n"
    assert (module / "nf_conntrack/parameters/hashsize").read_text() == "262144\n"


def test_what_cannot_be_written_is_a_warning_naming_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The timeouts absent (nf_conntrack not loaded): warnings, and no file made for them;
    the read-only limit is the namespace test's below."""
    proc, module = _fake(tmp_path, nf_conntrack_max=65536, hashsize=16384)
    with caplog.at_level(logging.WARNING, "kpng_agent.ctsysctl"):
        said = ctsysctl.apply(ConntrackSettings(), 8, proc, module)
    assert not (proc / NF / "nf_conntrack_tcp_timeout_established").exists()
    assert (proc / NF / "nf_conntrack_max").read_text() == "262144\n"  # the rest goes on
    timeouts = [w for w in said if "timeout" in w]
    assert len(said) == len(timeouts) == 2, said
    assert timeouts[0].startswith(
        "could not set net.netfilter.nf_conntrack_tcp_timeout_established to 86400 (it is None)"
    )
    assert "absent (is the nf_conntrack module loaded?)" in timeouts[0]
    assert [r.getMessage() for r in caplog.records] == list(said)


def test_the_flags_and_their_checks() -> None:
    base = ["--node", "n1", "--backend", "nftables"]
    args = agent_parser().parse_args(base)
    assert conntrack_settings(args) == ConntrackSettings()
    given = agent_parser().parse_args(
        [*base, "--conntrack-max-per-core", "0", "--conntrack-tcp-timeout-established", "2h0m0s"]
    )
    assert conntrack_settings(given).max_per_core == 0
    assert conntrack_settings(given).tcp_established == 7200
    for flag, bad in (
        ("--conntrack-min", "-1"),
        ("--conntrack-udp-timeout", "30"),
        ("--conntrack-udp-timeout", "1.5s"),
    ):
        with pytest.raises(SystemExit):
            agent_parser().parse_args([*base, flag, bad])


APPLY_IN_NETNS = """
import sys
from pathlib import Path
from kpng.dataplane.ctsysctl import ConntrackSettings
from kpng_agent import ctsysctl
settings = ConntrackSettings(
    max_per_core=1 << 28, tcp_established=4321, tcp_close_wait=123, udp=31
)  # a limit above any node's: it must be written, and cannot be in this namespace
said = ctsysctl.apply(settings, 4)
print("\\n".join(said))
"""


def read(name: str, where: str | None = None) -> str:
    """A netfilter sysctl, on the host or in the network namespace ``where``."""
    cmd = ["cat", f"/proc/sys/{NF}/{name}"]
    run = ["ip", "netns", "exec", where, *cmd] if where else cmd
    return subprocess.run(run, capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.netns
def test_in_a_network_namespace_the_timeouts_are_set_and_the_limit_is_read_only() -> None:
    """For real, in a namespace of the test's own: the per-namespace timeouts are written;
    nf_conntrack_max, the node's, is read-only there: a warning, and the node's value is
    untouched (as the host's timeouts)."""
    ns = f"kpng-ct-{uuid.uuid4().hex[:8]}"
    host = {n: read(n) for n in ("nf_conntrack_max", "nf_conntrack_tcp_timeout_established")}
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        done = subprocess.run(
            ["ip", "netns", "exec", ns, sys.executable, "-c", APPLY_IN_NETNS],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        warnings = done.stdout.strip().splitlines()
        assert len(warnings) == 1 and "nf_conntrack_max" in warnings[0], warnings
        assert "read-only here" in warnings[0]
        assert read("nf_conntrack_tcp_timeout_established", ns) == "4321"
        assert read("nf_conntrack_tcp_timeout_close_wait", ns) == "123"
        assert read("nf_conntrack_udp_timeout", ns) == "31"
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
    assert {n: read(n) for n in host} == host


def test_only_the_nftables_backend_sets_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """Another backend (a plugin, dump) owns its node as it sees fit: the agent leaves the
    sysctls alone for it, though the flags are parsed for every backend."""
    applied: list[ConntrackSettings] = []
    monkeypatch.setattr(ctsysctl, "apply", lambda s: applied.append(s) or ("said",))
    for backend in ("dump", "nftables"):
        args = agent_parser().parse_args(["--node", "n1", "--backend", backend])
        said = set_conntrack_sysctls(args)
        assert said == (() if backend == "dump" else ("said",))
    assert applied == [ConntrackSettings()]
    args.backend = "counts"  # a plugin's name
    assert set_conntrack_sysctls(args) == () and len(applied) == 1


def test_init_only_sets_them_and_exits_without_the_bus(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """kube-proxy's --init-only: the privileged step, then exit; no bus credentials asked for
    (the init container has none), no connection tried."""
    from kpng_agent import main as agent_main

    applied: list[ConntrackSettings] = []
    monkeypatch.setattr(ctsysctl, "apply", lambda s: applied.append(s) or ("no room",))
    monkeypatch.setattr(agent_main, "bus_auth", lambda *a: pytest.fail("the bus was asked for"))
    caplog.set_level(logging.INFO)
    flags = ["--node", "n1", "--backend", "nftables", "--conntrack-max-per-core", "0"]
    assert agent_main.main(["--init-only", *flags]) == 0
    assert applied == [ConntrackSettings(max_per_core=0)]
    assert "--init-only: initialization done for the nftables backend, with 1 warning" in (
        caplog.text
    )
    assert agent_main.main(["--init-only", "--node", "n1", "--backend", "dump"]) == 0
    assert len(applied) == 1  # another backend's node is its own
    # as kube-proxy's: no node name needed to set a node's sysctls
    assert agent_main.main(["--init-only", "--backend", "nftables"]) == 0
    assert len(applied) == 2


@pytest.mark.netns
def test_init_only_for_real_in_a_network_namespace() -> None:
    """The agent's command as a privileged init container runs it: the timeouts written in
    the namespace, the limit it cannot write a warning, and exit 0."""
    ns = f"kpng-ci-{uuid.uuid4().hex[:8]}"
    agent = Path(sys.executable).with_name("kpng-agent")
    argv = [str(agent), "--init-only", "--node", "n1", "--backend", "nftables"]
    argv += ["--conntrack-max-per-core", str(1 << 28)]
    argv += ["--conntrack-tcp-timeout-established", "1h2m3s"]
    argv += ["--conntrack-tcp-timeout-close-wait", "77s"]
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        done = subprocess.run(
            ["ip", "netns", "exec", ns, *argv],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert "nf_conntrack_max" in done.stderr and "read-only here" in done.stderr
        assert "initialization done" in done.stderr
        assert read("nf_conntrack_tcp_timeout_established", ns) == str(3600 + 120 + 3)
        assert read("nf_conntrack_tcp_timeout_close_wait", ns) == "77"
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
