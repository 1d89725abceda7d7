"""``--detect-local-mode`` and its interface flags: validated at start, naming the flag, and
passed down to the rendered rules (kpng.dataplane.detectlocal)."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from kpng.dataplane.nft.skeleton import chains
from kpng.dataplane.plugin import BackendArgumentError
from kpng.diff import View
from kpng.model import Node, ViewEndpoint
from kpng.runtime.config import parse_args
from kpng_agent import kubeproxyconfig
from kpng_agent.backends.nftables import config_for
from kpng_agent.main import parser as agent_parser
from kpng_agent.nftflags import nftables_backend

AGENT = Path(sys.executable).parent / "kpng-agent"
BASE = ["--node", "n1", "--backend", "nftables"]


def _config(
    *flags: str, family: int = 4, node: Node | None = None
) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """(pod_interface, pod_cidrs, the dispatch_service and local_ext rules) of the flags,
    with ``node`` as the view's Node n1."""
    backend = nftables_backend(agent_parser().parse_args([*BASE, *flags]))
    view: View[ViewEndpoint] = View()
    if node is not None:
        view.nodes[node.name] = node
    c = config_for(backend.settings, view, family, lambda: ["192.168.0.10"])
    rules = tuple(
        r for ch in chains(c) if ch.name in ("dispatch_service", "local_ext") for r in ch.rules
    )
    return c.pod_interface, c.pod_cidrs, rules


@pytest.mark.parametrize(
    ("flags", "why"),
    [
        (["--detect-local-mode", "NodeCIDRs"], "'NodeCIDRs' is not a detect-local mode"),
        (["--detect-local-mode", "clustercidr"], "'clustercidr' is not a detect-local mode"),
        (["--detect-local-mode", "Bridge"], "'Bridge' is not a detect-local mode"),
        (["--pod-bridge-interface", ""], "argument --pod-bridge-interface: '' is empty"),
        (
            ["--pod-bridge-interface", "a-sixteen-byte-x"],
            "argument --pod-bridge-interface: 'a-sixteen-byte-x' is 16 bytes long: "
            "an interface name has at most 15",
        ),
        (["--pod-bridge-interface", "br/0"], "'br/0' has '/': not in an interface name"),
        (["--pod-bridge-interface", "br 0"], "'br 0' has ' ': not in an interface name"),
        (["--pod-bridge-interface", 'br"0'], "has '\"': not in an interface name"),
        (["--pod-bridge-interface", "cbr*"], "has '*': not in an interface name"),
        (["--pod-bridge-interface", ".."], "'..' is not an interface name"),
        (
            ["--pod-interface-name-prefix", "fifteen-bytes-x"],
            "argument --pod-interface-name-prefix: 'fifteen-bytes-x' is 15 bytes long: "
            "a prefix has at most 14",
        ),
        (["--pod-interface-name-prefix", "ve'th"], 'has "\'": not in an interface name'),
        (["--pod-interface-name-prefix", "veth\t"], "has '\\t': not in an interface name"),
    ],
)
def test_a_bad_mode_or_interface_is_refused_naming_the_flag(
    flags: list[str], why: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        agent_parser().parse_args([*BASE, *flags])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert why in err, err


@pytest.mark.parametrize(
    ("flags", "why"),
    [
        (
            ["--detect-local-mode", "BridgeInterface"],
            "--detect-local-mode BridgeInterface needs --pod-bridge-interface",
        ),
        (
            ["--detect-local-mode", "InterfaceNamePrefix"],
            "--detect-local-mode InterfaceNamePrefix needs --pod-interface-name-prefix",
        ),
        (
            ["--pod-bridge-interface", "cbr0"],
            "--pod-bridge-interface is used by --detect-local-mode BridgeInterface only "
            "(the mode is ClusterCIDR)",
        ),
        (
            [
                *("--detect-local-mode", "BridgeInterface", "--pod-bridge-interface", "cbr0"),
                *("--pod-interface-name-prefix", "veth"),
            ],
            "--pod-interface-name-prefix is used by --detect-local-mode InterfaceNamePrefix "
            "only (the mode is BridgeInterface)",
        ),
    ],
)
def test_an_interface_flag_is_required_by_its_mode_and_refused_by_the_others(
    flags: list[str], why: str
) -> None:
    with pytest.raises(BackendArgumentError) as exc:
        nftables_backend(agent_parser().parse_args([*BASE, *flags]))
    assert str(exc.value) == why


def test_the_agent_process_exits_with_usage_on_a_mode_without_its_flag() -> None:
    done = subprocess.run(
        [str(AGENT), *BASE, "--nats-insecure", "--detect-local-mode", "InterfaceNamePrefix"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "needs --pod-interface-name-prefix" in done.stderr, done.stderr


def test_each_mode_reaches_the_rendered_rules() -> None:
    pod, cidrs, rules = _config("--cluster-cidr", "10.244.0.0/16")
    assert (pod, cidrs) == ("", ("10.244.0.0/16",))
    assert any("ip saddr != @pod_cidrs" in r for r in rules)
    without = _config()[2]  # without --cluster-cidr: neither rule
    assert len(without) == len(rules) - 2
    assert not any("pod_cidrs" in r or "iifname" in r for r in without)

    bridge = ["--detect-local-mode", "BridgeInterface", "--pod-bridge-interface", "cbr0"]
    pod, cidrs, rules = _config(*bridge, "--cluster-cidr", "10.244.0.0/16,fd00::/64")
    assert (pod, cidrs) == ("cbr0", ("10.244.0.0/16",))  # still given, not matched
    assert any('iifname != "cbr0" meta mark set' in r for r in rules)
    assert any(r.startswith('iifname "cbr0" ct mark set') for r in rules)
    assert not any("pod_cidrs" in r for r in rules)

    prefix = ["--detect-local-mode", "InterfaceNamePrefix", "--pod-interface-name-prefix", "pod"]
    for family in (4, 6):
        pod, _, rules = _config(*prefix, family=family)
        assert pod == "pod*"
        assert any('iifname != "pod*" meta mark set' in r for r in rules)
        assert any(r.startswith('iifname "pod*" ct mark set') for r in rules)


def test_node_cidr_tells_pods_by_the_nodes_own_pod_cidrs() -> None:
    """NodeCIDR: the rules match the source against the Node's spec.podCIDRs of each family
    (--cluster-cidr is not read); without them (no Node yet, or none given) neither rule."""
    mode = ["--detect-local-mode", "NodeCIDR", "--cluster-cidr", "10.244.0.0/16,fd00::/48"]
    node = Node("n1", ("192.168.0.10",), pod_cidrs=("10.244.3.0/24", "fd00:0:0:3::/64"))
    pod, cidrs, rules = _config(*mode, node=node)
    assert (pod, cidrs) == ("", ("10.244.3.0/24",))
    assert any("ip saddr != @pod_cidrs meta mark set" in r for r in rules)
    assert any(r.startswith("ip saddr @pod_cidrs ct mark set") for r in rules)
    assert _config(*mode, node=node, family=6)[1] == ("fd00:0:0:3::/64",)
    single = Node("n1", pod_cidrs=("10.244.3.0/24",))  # an IPv4 node: nothing for IPv6
    assert _config(*mode, node=single, family=6)[1:] == ((), _config()[2])
    for missing in (None, Node("n1", ("192.168.0.10",))):
        _, cidrs, rules = _config(*mode, node=missing)
        assert cidrs == () and rules == _config()[2]
        assert not any("pod_cidrs" in r for r in rules)


def test_node_cidr_warns_while_the_node_has_no_pod_cidrs(caplog: pytest.LogCaptureFixture) -> None:
    backend = nftables_backend(
        agent_parser().parse_args([*BASE, "--detect-local-mode", "NodeCIDR"])
    )
    view: View[ViewEndpoint] = View()
    with caplog.at_level(logging.INFO, "kpng_agent.backends.nftables"):
        backend._note_pod_cidrs(view)
        backend._note_pod_cidrs(view)  # said once
        view.nodes["n1"] = Node("n1", pod_cidrs=("10.244.3.0/24",))
        backend._note_pod_cidrs(view)
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 2, said
    assert said[0].startswith("--detect-local-mode NodeCIDR: node n1 is not known yet"), said
    assert said[1] == "--detect-local-mode NodeCIDR: pods told by 10.244.3.0/24"


def test_the_config_files_set_the_mode(tmp_path: Path) -> None:
    flags = tmp_path / "agent.yaml"
    flags.write_text(
        "node: n1\nbackend: nftables\ndetect-local-mode: InterfaceNamePrefix\n"
        "pod-interface-name-prefix: cali\n"
    )
    args = parse_args(agent_parser(), ["--config", str(flags)], environ={})
    assert (args.detect_local_mode, args.pod_interface_name_prefix) == (
        "InterfaceNamePrefix",
        "cali",
    )
    kube = tmp_path / "kube-proxy.yaml"
    kube.write_text(
        f"apiVersion: {kubeproxyconfig.API_VERSION}\nkind: {kubeproxyconfig.KIND}\n"
        "hostnameOverride: n1\nmode: nftables\ndetectLocalMode: BridgeInterface\n"
        "detectLocal: {bridgeInterface: cbr0, interfaceNamePrefix: ''}\n"
    )
    translations = {kubeproxyconfig.KIND: kubeproxyconfig.translate}
    args = parse_args(
        agent_parser(), ["--config", str(kube)], environ={}, translations=translations
    )
    assert nftables_backend(args).settings.pod_interface == "cbr0"


def test_a_config_file_with_a_bad_mode_is_refused_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text("detect-local-mode: PodCIDR\n")
    with pytest.raises(SystemExit):
        parse_args(agent_parser(), [*BASE, "--config", str(path)], environ={})
    err = capsys.readouterr().err
    assert f"--config {path}: --detect-local-mode: 'PodCIDR' is not a detect-local mode" in err


def test_a_kube_proxy_configuration_sets_node_cidr(tmp_path: Path) -> None:
    kube = tmp_path / "kube-proxy.yaml"
    kube.write_text(
        f"apiVersion: {kubeproxyconfig.API_VERSION}\nkind: {kubeproxyconfig.KIND}\n"
        "hostnameOverride: n1\nmode: nftables\ndetectLocalMode: NodeCIDR\n"
    )
    translations = {kubeproxyconfig.KIND: kubeproxyconfig.translate}
    args = parse_args(
        agent_parser(), ["--config", str(kube)], environ={}, translations=translations
    )
    settings = nftables_backend(args).settings
    assert (settings.detect_local, settings.pod_interface) == ("NodeCIDR", "")
