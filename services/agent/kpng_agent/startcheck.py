"""Checks of the node made once at start: read the node (sysctls, bridges), judge with the pure
:mod:`kpng_agent.bridge`, and tell (a warning logged once, a metric, the status' warnings)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge

from kpng_agent.bridge import SYSCTL, BridgeFinding, bridge_finding

log = logging.getLogger(__name__)

PROC_SYS = Path("/proc/sys")
BridgeReader = Callable[[], Mapping[str, Sequence[str]]]


def read_sysctls(root: Path = PROC_SYS) -> dict[str, str | None]:
    """The bridge-nf-call sysctls' values; None for one that is absent (br_netfilter not
    loaded) or unreadable."""
    out: dict[str, str | None] = {}
    for name in SYSCTL.values():
        try:
            out[name] = (root / name).read_text().strip()
        except OSError:
            out[name] = None
    return out


def report_bridge_finding(
    finding: BridgeFinding | None, registry: CollectorRegistry, node: str
) -> tuple[str, ...]:
    """Logs ``finding`` (once: this runs once), sets ``kpng_agent_bridge_netfilter_off`` and
    returns the status' warnings."""
    gauge = Gauge(
        "kpng_agent_bridge_netfilter_off",
        "1 when a bridge carries pod addresses and net.bridge.bridge-nf-call-iptables (or "
        "ip6tables) is 0 or absent, as found at start",
        registry=registry,
    )
    gauge.set(0 if finding is None else 1)
    if finding is None:
        return ()
    log.warning("node %s: %s", node, finding.text())
    return (finding.text(),)


def check_bridge_netfilter(
    node: str,
    pod_cidrs: Sequence[str],
    registry: CollectorRegistry,
    read_bridges: BridgeReader,
    sysctl_root: Path = PROC_SYS,
    pod_bridge: str = "",
) -> tuple[str, ...]:
    """The start-up check: the status' warnings (empty when all is well). A node that cannot
    be read is logged and counts as well, since the check only advises. ``pod_bridge``: the
    pod bridge, when ``--detect-local-mode BridgeInterface`` names it."""
    try:
        bridges = read_bridges()
    except OSError as exc:
        log.info("node %s: bridges not read (%s); bridge netfilter not checked", node, exc)
        bridges = {}
    return report_bridge_finding(
        bridge_finding(bridges, read_sysctls(sysctl_root), pod_cidrs, pod_bridge),
        registry,
        node,
    )
