"""The agent reads kube-proxy's KubeProxyConfiguration: the fields that apply become its flags,
every other field that is set is an error naming it."""

from __future__ import annotations

from pathlib import Path

import pytest

from kpng.dataplane.ctsysctl import ConntrackSettings
from kpng.runtime.config import ConfigError, parse_args
from kpng_agent import kubeproxyconfig
from kpng_agent.kubeproxyconfig import duration_seconds, translate
from kpng_agent.main import parser
from kpng_agent.nftflags import conntrack_settings

HEADER = "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n"
KPC = {kubeproxyconfig.KIND: translate}


def _args(tmp_path: Path, body: str, *flags: str) -> object:
    path = tmp_path / "kube-proxy.yaml"
    path.write_text(HEADER + body)
    return parse_args(parser(), ["--config", str(path), *flags], environ={}, translations=KPC)


def test_the_fields_that_apply_become_the_agents_flags(tmp_path: Path) -> None:
    args = _args(
        tmp_path,
        "hostnameOverride: node-a\nmode: nftables\nclusterCIDR: 10.244.0.0/16,fd00::/56\n"
        "nodePortAddresses: [192.168.0.0/24, primary]\nhealthzBindAddress: 0.0.0.0:10256\n"
        "metricsBindAddress: 127.0.0.1:10249\nmasqueradeAll: true\n"
        "nftables: {masqueradeBit: 15, syncPeriod: 1m30s, masqueradeAll: false}\n"
        "iptables: {syncPeriod: 0s, masqueradeBit: null}\nconntrack: {maxPerCore: null}\n",
    )
    expected = {
        "node": "node-a",
        "backend": "nftables",
        "cluster_cidr": ("10.244.0.0/16", "fd00::/56"),
        "nodeport_addresses": ("192.168.0.0/24", "primary"),
        "healthz_bind_address": "0.0.0.0:10256",
        "metrics_bind_address": "127.0.0.1:10249",
        "masquerade_all": True,
        "masquerade_bit": 15,
        "sync_period": 90.0,
    }
    assert {k: vars(args)[k] for k in expected} == expected


def test_the_conntrack_fields_become_the_conntrack_flags(tmp_path: Path) -> None:
    """kube-proxy's conntrack block, as kubeadm writes it (nulls: kube-proxy's defaults; 0s:
    leave the node's value) and as an operator tunes it."""
    kubeadm = _args(
        tmp_path,
        "hostnameOverride: a\nconntrack: {maxPerCore: null, min: null, tcpCloseWaitTimeout: "
        "null, tcpEstablishedTimeout: null, udpStreamTimeout: 0s, udpTimeout: 0s}\n",
    )
    assert conntrack_settings(kubeadm) == ConntrackSettings()
    tuned = _args(
        tmp_path,
        "hostnameOverride: a\nconntrack: {maxPerCore: 0, min: 500000, tcpBeLiberal: true,\n"
        "  tcpEstablishedTimeout: 2h0m0s, tcpCloseWaitTimeout: 30m, udpTimeout: 45s}\n",
    )
    assert conntrack_settings(tuned) == ConntrackSettings(
        max_per_core=0,
        min=500000,
        tcp_established=7200,
        tcp_close_wait=1800,
        tcp_be_liberal=True,
        udp=45,
    )


def test_flags_override_the_kube_proxy_file(tmp_path: Path) -> None:
    args = _args(
        tmp_path, "hostnameOverride: a\nnftables: {masqueradeBit: 15}\n", "--masquerade-bit", "3"
    )
    assert (vars(args)["node"], vars(args)["masquerade_bit"]) == ("a", 3)


def test_each_unsupported_field_is_named() -> None:
    doc = {
        "apiVersion": kubeproxyconfig.API_VERSION,
        "kind": kubeproxyconfig.KIND,
        "bindAddress": "192.168.0.10",
        "ipvs": {"scheduler": "rr", "minSyncPeriod": None},
        "iptables": {"localhostNodePorts": True},
        "featureGates": {
            "SomeGate": True,
            "ServiceTrafficDistribution": False,
            "TopologyAwareHints": "yes",
            "NFTablesProxyMode": True,
        },
        "mode": "ipvs",
        "clusterCIDR": "10.0.0.0/8",
    }
    with pytest.raises(ConfigError) as err:
        translate(doc)
    message = str(err.value).split(" (kpng reads")[0]
    for field in (
        "bindAddress",
        "mode ('ipvs'",
        "iptables.localhostNodePorts",
        "featureGates.SomeGate (a gate kpng does not know)",
        "featureGates.ServiceTrafficDistribution (false: kpng always honours a Service's "
        "trafficDistribution)",
        "featureGates.TopologyAwareHints ('yes': a gate is true or false)",
    ):
        assert field in message
    # the ipvs mode's settings are not used outside it, by kube-proxy either (and that mode
    # is refused by name); a gate for what kpng does is accepted
    assert "ipvs." not in message and "clusterCIDR" not in message
    assert "NFTablesProxyMode" not in message


def test_what_kpng_has_or_has_no_use_for_is_accepted(tmp_path: Path) -> None:
    """kube-proxy's own OOM score; its unused portRange, Windows' service flag; the gates of
    features kpng always has, switched on, and the logging gates either way."""
    args = _args(
        tmp_path,
        "hostnameOverride: a\noomScoreAdj: -999\nportRange: 30000-32767\n"
        "windowsRunAsService: true\nfeatureGates: {NFTablesProxyMode: true, "
        "PreferSameTrafficDistribution: true, KubeProxyDrainingTerminatingNodes: true, "
        "ContextualLogging: false, LoggingBetaOptions: true}\n",
    )
    assert vars(args)["oom_score_adj"] == -999
    kubeadm = _args(tmp_path, "hostnameOverride: a\noomScoreAdj: null\nfeatureGates: {}\n")
    assert vars(kubeadm)["oom_score_adj"] is None


# the ConfigMap kubeadm writes for kube-proxy (v1.31), as `kubeadm init` makes it
KUBEADM = """bindAddress: 0.0.0.0
bindAddressHardFail: false
clientConnection:
  acceptContentTypes: ""
  burst: 0
  contentType: ""
  kubeconfig: /var/lib/kube-proxy/kubeconfig.conf
  qps: 0
clusterCIDR: 10.244.0.0/16
configSyncPeriod: 0s
conntrack:
  maxPerCore: null
  min: null
  tcpBeLiberal: false
  tcpCloseWaitTimeout: null
  tcpEstablishedTimeout: null
  udpStreamTimeout: 0s
  udpTimeout: 0s
detectLocal:
  bridgeInterface: ""
  interfaceNamePrefix: ""
detectLocalMode: ""
enableProfiling: false
healthzBindAddress: ""
hostnameOverride: ""
iptables:
  localhostNodePorts: null
  masqueradeAll: false
  masqueradeBit: null
  minSyncPeriod: 0s
  syncPeriod: 0s
ipvs:
  excludeCIDRs: null
  minSyncPeriod: 0s
  scheduler: ""
  strictARP: false
  syncPeriod: 0s
  tcpFinTimeout: 0s
  tcpTimeout: 0s
  udpTimeout: 0s
logging:
  flushFrequency: 0
  options:
    json:
      infoBufferSize: "0"
    text:
      infoBufferSize: "0"
  verbosity: 0
metricsBindAddress: ""
mode: ""
nftables:
  masqueradeAll: false
  masqueradeBit: null
  minSyncPeriod: 0s
  syncPeriod: 0s
nodePortAddresses: null
oomScoreAdj: null
portRange: ""
showHiddenMetricsForVersion: ""
winkernel:
  enableDSR: false
  forwardHealthCheckVip: false
  networkName: ""
  rootHnsEndpointName: ""
  sourceVip: ""
"""


def test_the_file_kubeadm_writes_for_kube_proxy_is_read_as_it_is(tmp_path: Path) -> None:
    """Replacing kube-proxy with its own ConfigMap: what kubeadm writes is read unchanged,
    its defaults and zeros unset, what kpng has no use for (the API server's connection,
    log buffers, Windows, ipvs, minSyncPeriod) not used."""
    args = _args(tmp_path, KUBEADM, "--node", "node-a")
    assert vars(args)["cluster_cidr"] == ("10.244.0.0/16",)
    assert conntrack_settings(args) == ConntrackSettings()
    assert vars(args)["sync_period"] == parser().parse_args(["--node", "x"]).sync_period
    # a tuned one: what applies is taken, and a minSyncPeriod is still not used
    tuned = KUBEADM.replace(
        "  minSyncPeriod: 0s\n  syncPeriod: 0s", "  minSyncPeriod: 1s\n  syncPeriod: 45s"
    )
    tuned = tuned.replace('mode: ""', "mode: nftables")
    args = _args(tmp_path, tuned, "--node", "node-a")
    assert (vars(args)["backend"], vars(args)["sync_period"]) == ("nftables", 45.0)


def test_a_bad_value_names_the_flag_and_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        _args(tmp_path, "hostnameOverride: a\niptables: {masqueradeBit: 99}\n")
    assert "kube-proxy.yaml: --masquerade-bit: 99 is not a bit" in capsys.readouterr().err


def test_another_api_version_is_refused() -> None:
    with pytest.raises(ConfigError, match="apiVersion"):
        translate({"apiVersion": "v1", "kind": kubeproxyconfig.KIND})


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30.0), ("1m0s", 60.0), ("1h2m", 3720.0), ("500ms", 0.5)]
)
def test_go_durations(text: str, seconds: float) -> None:
    assert duration_seconds(text, "syncPeriod") == seconds


@pytest.mark.parametrize("text", ["30", "1x", "s", "1m 2s"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ConfigError, match="syncPeriod"):
        duration_seconds(text, "syncPeriod")
