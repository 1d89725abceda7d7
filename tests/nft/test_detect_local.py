"""Pod traffic told by input interface (``--detect-local-mode``), traced through the rules.

kube-proxy's BridgeInterface (``iifname "cbr0"``) and InterfaceNamePrefix (``iifname
"pod*"``) modes, without ``--cluster-cidr``: pod traffic to a cluster IP keeps its source
while the node's and outside traffic is masqueraded, and a pod's connection to an eTP Local
load-balancer IP short-circuits to the cluster-wide endpoints.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from kpng.dataplane.nft.skeleton import Config, chains
from kpng.model import TrafficPolicy
from tests.nft.helpers import CONFIG, NODE, NODE_IP, Harness, ep, svc, view

BRIDGE = Config(node=NODE, nodeport_cidrs=(f"{NODE_IP}/32",), pod_interface="cbr0")
PREFIX = replace(BRIDGE, pod_interface="pod*")
# (config, a pod's input interface, interfaces that are not a pod's)
MODES = [
    pytest.param(BRIDGE, "cbr0", ("eth0", "cbr01", "cbr"), id="BridgeInterface"),
    pytest.param(PREFIX, "pod3", ("eth0", "po", "xpod1"), id="InterfaceNamePrefix"),
]
POD = "10.244.1.5"
VPC_POD = "172.31.7.9"  # a pod address in no pod CIDR (as AWS VPC CNI gives)
OUTSIDE = "172.16.0.9"
LB_IP = "172.16.2.2"


def _dispatch_rules(c: Config) -> dict[str, tuple[str, ...]]:
    return {ch.name: ch.rules for ch in chains(c) if ch.name in ("dispatch_service", "local_ext")}


def test_the_two_pod_rules_match_the_input_interface_as_nft_lists_them() -> None:
    for c, pod, other in ((BRIDGE, '"cbr0"', '!= "cbr0"'), (PREFIX, '"pod*"', '!= "pod*"')):
        rules = _dispatch_rules(c)
        assert (
            f"ct mark & 0x20000000 != 0x0 iifname {other} meta mark set meta mark | 0x4000"
            in (rules["dispatch_service"])
        )
        assert rules["local_ext"] == (
            "fib saddr type local goto local_ext_node",
            f"iifname {pod} ct mark set ct mark & 0xffffff map @shortcuts",
        )
        assert not any("pod_cidrs" in r for rs in rules.values() for r in rs)
    # --cluster-cidr given too: the interface still decides
    both = _dispatch_rules(replace(PREFIX, pod_cidrs=("10.244.0.0/16",)))
    assert both == _dispatch_rules(PREFIX)
    by_address = _dispatch_rules(CONFIG)
    assert (
        "ip saddr @pod_cidrs ct mark set ct mark & 0xffffff map @shortcuts"
        in (by_address["local_ext"])
    )
    assert not any("iifname" in r for rs in by_address.values() for r in rs)


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        ("", None),
        ("cbr0", None),
        ("abcdefghijklmno", None),
        ("abcdefghijklmn*", None),
        ("abcdefghijklmnop", "16 bytes long"),
        ("abcdefghijklmno*", "15 bytes long"),
        ('cbr" accept', "'\"'"),
        ("a/b", "'/'"),
        ("*", "is empty"),
    ],
)
def test_the_config_refuses_a_pattern_that_is_no_interface_name(
    pattern: str, why: str | None
) -> None:
    if why is None:
        assert Config(pod_interface=pattern).pod_interface == pattern
        return
    with pytest.raises(ValueError, match=why):
        Config(pod_interface=pattern)


@pytest.mark.parametrize(("config", "pod_iif", "others"), MODES)
def test_pod_traffic_to_a_cluster_ip_keeps_its_source_and_other_traffic_is_masqueraded(
    config: Config, pod_iif: str, others: tuple[str, ...]
) -> None:
    h = Harness(config)
    h.full(view((svc("a"), [ep("10.244.2.1")])))
    for src in (POD, VPC_POD):  # whatever the pod's address
        t = h.trace(src, "10.96.0.10", 80, origin="pod", iif=pod_iif)
        assert t.endpoints == {("10.244.2.1", 8080)} and not t.masquerade
    assert h.trace(NODE_IP, "10.96.0.10", 80, origin="node").masquerade  # iif ""
    for iif in others:
        assert h.trace(POD, "10.96.0.10", 80, iif=iif).masquerade, iif
        assert h.trace(OUTSIDE, "10.96.0.10", 80, iif=iif).masquerade, iif


def etp_local_lb(config: Config) -> Harness:
    """An eTP Local load balancer whose only endpoint is on another node."""
    h = Harness(config)
    s = svc(
        "a",
        np=30080,
        load_balancer_ips=(LB_IP,),
        type="LoadBalancer",
        external_traffic_policy=TrafficPolicy.LOCAL,
    )
    h.full(view((s, [ep("10.244.2.1", internal=True, external=False)])))
    return h


@pytest.mark.parametrize(("config", "pod_iif", "others"), MODES)
def test_a_pod_short_circuits_an_etp_local_lb_ip_without_local_endpoints(
    config: Config, pod_iif: str, others: tuple[str, ...]
) -> None:
    h = etp_local_lb(config)
    for src in (POD, VPC_POD):
        t = h.trace(src, LB_IP, 80, origin="pod", iif=pod_iif)
        assert t.verdict == "dnat" and t.endpoint_ips == {"10.244.2.1"} and not t.masquerade
    t = h.trace(NODE_IP, LB_IP, 80, origin="node")  # the node short-circuits too, masqueraded
    assert t.endpoint_ips == {"10.244.2.1"} and t.masquerade
    for iif in others:  # external traffic: no local endpoint, dropped
        assert h.trace(OUTSIDE, LB_IP, 80, iif=iif).verdict == "drop", iif
        assert h.trace(POD, LB_IP, 80, iif=iif).verdict == "drop", iif


def test_by_address_the_input_interface_does_not_count() -> None:
    h = Harness()
    h.full(view((svc("a"), [ep("10.244.2.1")])))
    assert not h.trace(POD, "10.96.0.10", 80, iif="eth0").masquerade
    assert h.trace(VPC_POD, "10.96.0.10", 80, iif="cbr0").masquerade
    h = etp_local_lb(CONFIG)
    assert h.trace(POD, LB_IP, 80, iif="eth0").endpoint_ips == {"10.244.2.1"}
    assert h.trace(VPC_POD, LB_IP, 80, iif="pod3").verdict == "drop"


def test_an_agent_switched_between_modes_converges_its_table() -> None:
    """A restarted agent with another mode reads the table the last one left: the two chains'
    digests differ, so they are rewritten; once written, a full sync has nothing to do."""
    s = svc("a", external_traffic_policy=TrafficPolicy.LOCAL, load_balancer_ips=(LB_IP,))
    v = view((s, [ep("10.244.2.1", internal=True, external=False)]))
    nft = Harness(CONFIG).nft
    for config in (CONFIG, PREFIX, BRIDGE, CONFIG, BRIDGE):
        h = Harness(config)
        h.nft = nft
        assert h.full(v) > 0
        live = nft.state(config.nft_table).chains
        assert {n: live[n].rules for n in ("dispatch_service", "local_ext")} == (
            _dispatch_rules(config)
        )
        again = Harness(config)
        again.nft = nft
        assert again.full(v) == 0, config
        pod_iif = {BRIDGE: "cbr0", PREFIX: "pod3"}.get(config, "eth0")
        t = h.trace(POD, "10.96.0.10", 80, origin="pod", iif=pod_iif)
        assert not t.masquerade, config
        t = h.trace(VPC_POD, "10.96.0.10", 80, origin="pod", iif=pod_iif)
        assert t.masquerade == (config == CONFIG), config
