"""The agent warns once at start when pods share a bridge that netfilter does not see
(br_netfilter off): the pure finding, the node reader, the log, metric and status."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from kpng.bus.codec import Status, decode, encode
from kpng_agent.bridge import bridge_finding
from kpng_agent.netlink import bridge_addresses
from kpng_agent.startcheck import check_bridge_netfilter, read_sysctls
from kpng_agent.state import AgentState
from kpng_observer.state import ObserverState

V4 = "net/bridge/bridge-nf-call-iptables"
V6 = "net/bridge/bridge-nf-call-ip6tables"
PODS = ("10.244.0.0/16", "fd00:10:244::/56")


@pytest.mark.parametrize("value", ["0", None])
def test_a_pod_bridge_with_the_sysctl_off_or_absent_is_found(value: str | None) -> None:
    finding = bridge_finding({"cni0": ("10.244.1.1",)}, {V4: value, V6: "1"}, PODS)
    assert finding is not None
    assert finding.bridges == ("cni0",)
    shown = "absent" if value is None else "0"
    assert finding.sysctls == (f"net.bridge.bridge-nf-call-iptables={shown}",)
    assert "cni0" in finding.text() and "bridge-nf-call-iptables" in finding.text()


def test_no_finding_when_netfilter_sees_the_bridge_or_no_bridge_holds_pods() -> None:
    on = {V4: "1", V6: "1"}
    off = {V4: "0", V6: "0"}
    assert bridge_finding({"cni0": ("10.244.1.1",)}, on, PODS) is None
    assert bridge_finding({"docker0": ("172.17.0.1",)}, off, PODS) is None  # not pods
    assert bridge_finding({"cni0": ("fe80::1",)}, off) is None  # link-local only
    assert bridge_finding({"br0": ()}, off, PODS) is None
    assert bridge_finding({}, off, PODS) is None


def test_each_family_checks_its_own_sysctl() -> None:
    bridges = {"cni0": ("10.244.1.1", "fd00:10:244::1"), "docker0": ("172.17.0.1",)}
    finding = bridge_finding(bridges, {V4: "1", V6: "0"}, PODS)
    assert finding is not None
    assert finding.bridges == ("cni0",)
    assert finding.sysctls == ("net.bridge.bridge-nf-call-ip6tables=0",)


def test_without_the_pod_network_any_global_bridge_address_counts() -> None:
    finding = bridge_finding({"cbr0": ("10.0.0.1",)}, {V4: None, V6: None})
    assert finding is not None and finding.bridges == ("cbr0",)
    assert finding.sysctls == ("net.bridge.bridge-nf-call-iptables=absent",)


def test_read_sysctls_reads_values_and_absence(tmp_path: Path) -> None:
    (tmp_path / "net/bridge").mkdir(parents=True)
    (tmp_path / V4).write_text("0\n")
    assert read_sysctls(tmp_path) == {V4: "0", V6: None}


def _gauge(registry: CollectorRegistry) -> float | None:
    return registry.get_sample_value("kpng_agent_bridge_netfilter_off")


def test_the_check_logs_once_sets_the_metric_and_returns_the_status_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "net/bridge").mkdir(parents=True)
    (tmp_path / V4).write_text("0\n")
    registry = CollectorRegistry()
    with caplog.at_level(logging.WARNING):
        warnings = check_bridge_netfilter(
            "n1", PODS, registry, lambda: {"cni0": ("10.244.1.1",)}, tmp_path
        )
    assert len(warnings) == 1 and "cni0" in warnings[0]
    assert _gauge(registry) == 1.0
    logged = [r for r in caplog.records if "bridge-nf-call-iptables" in r.getMessage()]
    assert len(logged) == 1 and logged[0].levelno == logging.WARNING


def test_a_healthy_or_unreadable_node_gives_no_warning(tmp_path: Path) -> None:
    (tmp_path / "net/bridge").mkdir(parents=True)
    (tmp_path / V4).write_text("1\n")
    registry = CollectorRegistry()
    assert (
        check_bridge_netfilter("n1", PODS, registry, lambda: {"cni0": ("10.244.1.1",)}, tmp_path)
        == ()
    )
    assert _gauge(registry) == 0.0

    def unreadable() -> dict[str, tuple[str, ...]]:
        raise PermissionError("netlink refused")

    assert check_bridge_netfilter("n1", PODS, CollectorRegistry(), unreadable, tmp_path) == ()


def test_the_netlink_reader_lists_bridges_with_addresses() -> None:
    """Runs in this namespace: whatever bridges it has, each maps to its addresses."""
    found = bridge_addresses()
    assert all(isinstance(n, str) and isinstance(a, tuple) for n, a in found.items())


def test_the_warning_travels_in_the_status_to_the_observer() -> None:
    state = AgentState(warnings=("bridge(s) cni0 carry pod addresses but ...",))
    status = Status("n1", "e1", 1, "nftables", True, 1.0, warnings=state.warnings)
    decoded = decode(encode(status))
    assert decoded == status
    assert b"warnings" not in encode(replace(status, warnings=()))  # optional on the wire
    observer = ObserverState()
    assert isinstance(decoded, Status)
    observer.note_status(decoded, now=1.0)
    node = observer.node_json("n1", 1.0)
    assert node["applied"]["warnings"] == list(state.warnings)


def test_a_named_pod_bridge_is_judged_alone_whatever_its_addresses() -> None:
    """--detect-local-mode BridgeInterface names the pod bridge: it is checked even with
    addresses outside --cluster-cidr (or none), and no other bridge is."""
    off = {V4: "0", V6: "0"}
    bridges = {"cbr0": ("192.168.50.1",), "docker0": ("10.244.1.1",), "l2": ()}
    finding = bridge_finding(bridges, off, PODS, pod_bridge="cbr0")
    assert finding is not None and finding.bridges == ("cbr0",)
    assert finding.sysctls == ("net.bridge.bridge-nf-call-iptables=0",)
    bare = bridge_finding(bridges, off, PODS, pod_bridge="l2")  # no address: IPv4 assumed
    assert bare is not None and bare.bridges == ("l2",)
    assert bridge_finding(bridges, {V4: "1", V6: "0"}, PODS, pod_bridge="cbr0") is None
    assert bridge_finding(bridges, off, PODS, pod_bridge="absent") is None


def test_the_start_check_takes_the_named_pod_bridge(tmp_path: Path) -> None:
    (tmp_path / "net/bridge").mkdir(parents=True)
    (tmp_path / V4).write_text("0\n")
    read = lambda: {"cbr0": ("192.168.50.1",)}  # noqa: E731  (outside --cluster-cidr)
    assert check_bridge_netfilter("n1", PODS, CollectorRegistry(), read, tmp_path) == ()
    (warning,) = check_bridge_netfilter(
        "n1", PODS, CollectorRegistry(), read, tmp_path, pod_bridge="cbr0"
    )
    assert "cbr0" in warning
