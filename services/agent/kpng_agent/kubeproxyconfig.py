"""kube-proxy's ``KubeProxyConfiguration`` (kubeproxy.config.k8s.io/v1alpha1) as agent flags.

The fields that mean the same thing for kpng become the agent's flag keys. The fields that
say nothing of where packets go and that kpng has no use for (how kube-proxy reaches the API
server, its profiling and log buffers, the settings of other platforms and of the ipvs mode,
the minimum interval between syncs) are accepted and not used, so that the file kubeadm
writes for kube-proxy is read as it is. Every other field that is set (not null, empty, zero
or kube-proxy's default) is an error naming it, so that a setting is never silently dropped;
so is a feature gate that kpng does not know, or one switched off whose feature kpng always
has.
Pure: a document in, flag keys out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from kpng.runtime.config import ConfigError

API_VERSION = "kubeproxy.config.k8s.io/v1alpha1"
KIND = "KubeProxyConfiguration"

# field path -> the agent flag it sets (durations become seconds)
FIELDS: dict[str, str] = {
    "hostnameOverride": "node",
    "clusterCIDR": "cluster-cidr",
    "nodePortAddresses": "nodeport-addresses",
    "healthzBindAddress": "healthz-bind-address",
    "metricsBindAddress": "metrics-bind-address",
    "masqueradeAll": "masquerade-all",
    "iptables.masqueradeAll": "masquerade-all",
    "iptables.masqueradeBit": "masquerade-bit",
    "nftables.masqueradeAll": "masquerade-all",
    "nftables.masqueradeBit": "masquerade-bit",
    "logging.format": "logging-format",
    "detectLocalMode": "detect-local-mode",
    "detectLocal.bridgeInterface": "pod-bridge-interface",
    "detectLocal.interfaceNamePrefix": "pod-interface-name-prefix",
    "syncPeriod": "sync-period",
    "iptables.syncPeriod": "sync-period",
    "nftables.syncPeriod": "sync-period",
    # the conntrack sysctls set at start; timeouts stay Go durations, as the flags take them
    "conntrack.maxPerCore": "conntrack-max-per-core",
    "conntrack.min": "conntrack-min",
    "conntrack.tcpEstablishedTimeout": "conntrack-tcp-timeout-established",
    "conntrack.tcpCloseWaitTimeout": "conntrack-tcp-timeout-close-wait",
    "conntrack.tcpBeLiberal": "conntrack-tcp-be-liberal",
    "conntrack.udpTimeout": "conntrack-udp-timeout",
    "conntrack.udpStreamTimeout": "conntrack-udp-timeout-stream",
    "oomScoreAdj": "oom-score-adj",
}
DURATIONS = frozenset({"syncPeriod", "iptables.syncPeriod", "nftables.syncPeriod"})
# accepted and not used: nothing of where packets go (a field path, or a prefix ending in ".")
NOT_USED = (
    "clientConnection.",  # the agent reads the bus, not the API server
    "configSyncPeriod",  # the same: no informers
    "enableProfiling",
    "logging.",  # but logging.format: kpng's own --log-level
    "showHiddenMetricsForVersion",
    "winkernel.",  # Windows
    "ipvs.",  # the ipvs mode's, unused by kube-proxy in other modes (mode: ipvs is refused)
    "iptables.minSyncPeriod",  # kpng programs each change as it comes, in milliseconds
    "nftables.minSyncPeriod",
    "bindAddressHardFail",
    "portRange",  # kube-proxy's own documentation: "now unused"
    "windowsRunAsService",
)
# kube-proxy's feature gates for what kpng always does: true is accepted; false (kube-proxy
# without the feature) is refused by name, as kpng cannot do without it
GATES_KPNG_HAS = {
    "NFTablesProxyMode": "programs nftables",
    "ServiceTrafficDistribution": "honours a Service's trafficDistribution",
    "PreferSameTrafficDistribution": "honours trafficDistribution PreferSameZone and "
    "PreferSameNode",
    "TopologyAwareHints": "honours topology hints",
    "KubeProxyDrainingTerminatingNodes": "fails /healthz on a node being deleted",
    "LoadBalancerIPMode": "leaves load-balancer IPs of ipMode Proxy alone",
}
# gates of how kube-proxy logs: nothing of where packets go, whatever their value
GATES_NOT_USED = frozenset({"ContextualLogging", "LoggingAlphaOptions", "LoggingBetaOptions"})
GATES = "featureGates."
# kube-proxy's defaults, as kubeadm writes them: the same as unset
DEFAULTS = {"bindAddress": ("0.0.0.0", "::")}
_HEADER = ("apiVersion", "kind")
_UNIT = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(h|ms|m|s|us|µs|ns)")


def translate(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The agent flag keys a ``KubeProxyConfiguration`` sets; a :class:`ConfigError` naming
    each unsupported field that is set."""
    if doc.get("apiVersion") != API_VERSION:
        raise ConfigError(f"apiVersion {doc.get('apiVersion')!r}: expected {API_VERSION}")
    out: dict[str, Any] = {}
    unsupported: list[str] = []
    for path, value in _leaves(doc):
        if path in _HEADER:
            continue
        if path.startswith(GATES):
            problem = _gate_problem(path, value)
            if problem:
                unsupported.append(problem)
            continue
        if path == "mode":
            if value not in ("", "nftables"):
                unsupported.append(f"mode ({value!r}: kpng programs nftables)")
            elif value:
                out["backend"] = "nftables"
            continue
        flag = FIELDS.get(path)
        if flag is None:
            if _is_set(value) and not _not_used(path) and value not in DEFAULTS.get(path, ()):
                unsupported.append(path)
            continue
        if value is None or value is False or value == "":
            continue  # unset: kube-proxy's default, and the agent's
        if path in DURATIONS:
            value = duration_seconds(str(value), path)
            if value == 0:
                continue  # 0s: unset, as in kubeadm's generated files
        out[flag] = value
    if unsupported:
        raise ConfigError(
            f"{KIND}: unsupported field(s) {', '.join(unsupported)} (kpng reads "
            f"{', '.join(FIELDS)}, mode)"
        )
    return out


def _gate_problem(path: str, value: Any) -> str:
    """What is wrong with a feature gate's setting, or "" (accepted)."""
    name = path[len(GATES) :]
    if type(value) is not bool:
        return f"{path} ({value!r}: a gate is true or false)"
    if name in GATES_NOT_USED:
        return ""
    if name in GATES_KPNG_HAS:
        return "" if value else f"{path} (false: kpng always {GATES_KPNG_HAS[name]})"
    return f"{path} (a gate kpng does not know)"


def _leaves(doc: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, value in doc.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and path not in FIELDS:
            out.extend(_leaves(value, path + "."))
        else:
            out.append((path, value))
    return out


def _not_used(path: str) -> bool:
    return any(path == f or (f.endswith(".") and path.startswith(f)) for f in NOT_USED)


def _is_set(value: Any) -> bool:
    """Not null, empty, zero or false; a string zero (``"0"``, a ``0s`` duration) is zero."""
    if isinstance(value, str) and value:
        try:
            return duration_seconds(value, "") != 0
        except ConfigError:
            return True  # not a duration: a value
    return value not in (None, "", 0, False, [], {})


def duration_seconds(text: str, field: str) -> float:
    """A Go duration (``30s``, ``1m0s``, ``500ms``) in seconds."""
    if text in ("0", ""):
        return 0.0
    parts = _PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ConfigError(f"{field}: {text!r} is not a duration (such as 30s or 1m0s)")
    return sum(float(n) * _UNIT[u] for n, u in parts)
