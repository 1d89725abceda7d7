"""The packet mark through kpng's NAT path, with real nftables and real traffic.

A table the test owns (``ip marktest``, in the node namespace only) stands for a CNI: before
kpng's chains it ORs its own bit (0x10000) into the mark of service traffic, and after them
(filter forward, nat postrouting after kpng's SNAT) it counts new service connections that
still carry it. kpng must leave that bit alone, keep its own register off the packet mark,
and clear its masquerade bit once used.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator

import pytest

from kpng.dataplane.nft.kernel.execnft import NftCommand
from kpng_agent.backends.nftables import NftablesBackend, Settings
from tests.e2e.netns import Cluster, sh
from tests.e2e.test_dataplane import NODE, A, B, Driver, local
from tests.nft.helpers import svc, view

pytestmark = pytest.mark.netns
CNI_BIT = 0x10000
SERVICE = "ip daddr { 10.96.0.10, 192.168.50.1 } tcp dport { 80, 30080 }"

# priorities: mangle (-150) marks before kpng's dnat (-100); the checks run in filter forward
# (0) and after kpng's srcnat (100) in postrouting (200, a filter chain: a later nat
# chain does not see a connection an earlier one masqueraded)
CNI_TABLE = f"""
table ip marktest {{
  counter forward_kept {{}}
  counter post_kept {{}}
  counter post_all {{}}
  counter post_masq_bit {{}}
  counter post_ct_mark {{}}
  chain mark_in {{
    type filter hook prerouting priority -150; policy accept;
    ct state new {SERVICE} meta mark set meta mark | {CNI_BIT:#x}
  }}
  chain mark_out {{
    type route hook output priority -150; policy accept;
    ct state new {SERVICE} meta mark set meta mark | {CNI_BIT:#x}
  }}
  chain forward {{
    type filter hook forward priority 0; policy accept;
    ct state new ct status dnat meta mark & {CNI_BIT:#x} == {CNI_BIT:#x} counter name forward_kept
  }}
  chain post {{
    type filter hook postrouting priority 200; policy accept;
    ct state new ct status dnat counter name post_all
    ct state new ct status dnat meta mark & {CNI_BIT:#x} == {CNI_BIT:#x} counter name post_kept
    ct state new ct status dnat meta mark & 0x4000 != 0x0 counter name post_masq_bit
    ct state new ct status dnat ct mark != 0x0 counter name post_ct_mark
  }}
}}
"""


def load(c: Cluster, script: str) -> None:
    """The test's own table, in the node namespace only."""
    nft = ("ip", "netns", "exec", c.node, "nft", "-f", "/dev/stdin")
    subprocess.run(nft, input=script, text=True, check=True, timeout=30)


def counter(ns: str, name: str, table: str = "marktest") -> int:
    out = json.loads(sh("nft", "-j", "list", "counter", "ip", table, name, ns=ns))
    return int(next(o["counter"]["packets"] for o in out["nftables"] if "counter" in o))


def programmed(c: Cluster, table: str) -> MarkDriver:
    """pod-a and pod-b, the test's ``table``, and kpng serving web (NodePort 30080) on pod-a."""
    c.pod("pod-a", A)
    c.pod("pod-b", B)
    load(c, table)
    d = MarkDriver(c)
    d.program(view((svc("web", np=30080), [local(A)])), full=True)
    return d


class MarkDriver(Driver):
    bit = 14

    def new_backend(self) -> NftablesBackend:
        settings = Settings(
            NODE, cluster_cidrs=("10.244.0.0/16",), families=(4,), masquerade_bit=self.bit
        )
        return NftablesBackend(settings, NftCommand(self.c.nft_argv()), lambda: [self.c.node_ip])


@pytest.fixture
def md(cluster: Cluster) -> Iterator[MarkDriver]:
    cluster.pod("pod-a", A)
    cluster.pod("pod-b", B)
    load(cluster, CNI_TABLE)
    driver = MarkDriver(cluster)
    yield driver
    asyncio.run(driver.backend.close())


def test_another_components_mark_bit_survives_kpngs_nat_path(md: MarkDriver) -> None:
    c = md.c
    md.program(view((svc("web", np=30080), [local(A)])), full=True)
    # off the pod network to a cluster IP, and to a NodePort: masqueraded (SNAT needs the bit)
    assert c.request(c.client, "10.96.0.10", 80) == "pod-a 10.244.1.1"
    assert c.request(c.client, c.node_ip, 30080) == "pod-a 10.244.1.1"
    # a pod on the pod network: not masqueraded; a hairpin (pod-a to itself): masqueraded
    assert c.request(c.namespaces[3], "10.96.0.10", 80) == f"pod-a {B}"
    assert c.request(c.namespaces[2], "10.96.0.10", 80) == "pod-a 10.244.1.1"
    # the node itself (output path)
    assert c.request(c.node, "10.96.0.10", 80).split()[0] == "pod-a"
    assert counter(c.node, "post_all") == 5
    assert counter(c.node, "forward_kept") == 4  # the node's own connection is not forwarded
    assert counter(c.node, "post_kept") == 5, "kpng's NAT path changed another bit of the mark"
    assert counter(c.node, "post_masq_bit") == 0, "kpng left its masquerade bit set"
    assert counter(c.node, "post_ct_mark") == 0, "kpng left its register in the ct mark"


def test_a_masquerade_bit_given_moves_the_bit_kpng_uses(cluster: Cluster) -> None:
    """With ``masquerade_bit=20``, a 0x4000 another component sets is not kpng's business:
    a pod's connection that carries it keeps its source, and the bit."""
    cluster.pod("pod-a", A)
    cluster.pod("pod-b", B)
    load(cluster, CNI_TABLE.replace(f"mark | {CNI_BIT:#x}", f"mark | {CNI_BIT | 0x4000:#x}"))
    MarkDriver.bit = 20
    try:
        d = MarkDriver(cluster)
    finally:
        MarkDriver.bit = 14
    try:
        d.program(view((svc("web", np=30080), [local(A)])), full=True)
        assert cluster.request(cluster.namespaces[3], "10.96.0.10", 80) == f"pod-a {B}"
        assert cluster.request(cluster.client, "10.96.0.10", 80) == "pod-a 10.244.1.1"
        assert counter(cluster.node, "post_all") == 2
        assert counter(cluster.node, "post_masq_bit") == 2  # 0x4000 is left as it came
        assert counter(cluster.node, "post_kept") == 2
        assert counter(cluster.node, "post_ct_mark") == 0
    finally:
        asyncio.run(d.backend.close())


# another component's conntrack mark on new connections, set before kpng's dnat: the bits of
# kpng's flags (masquerade 0x40000000, cluster 0x20000000, eTP Local 0x10000000) and an id
FOREIGN_CT = 0x70000001
CT_TABLE = f"""
table ip cttest {{
  counter post_ct_kept {{}}
  chain ct_in {{
    type filter hook prerouting priority -150; policy accept;
    ct state new tcp dport {{ 8080, 30080 }} ct mark set ct mark | {FOREIGN_CT:#x}
  }}
  chain post {{
    type filter hook postrouting priority 200; policy accept;
    ct state new tcp dport 8080 ct mark == {FOREIGN_CT:#x} counter name post_ct_kept
  }}
}}
"""


def test_another_components_conntrack_mark_is_not_read_as_kpngs_flags(
    cluster: Cluster,
) -> None:
    """A connection that is not to a service keeps its conntrack mark and is not
    masqueraded for bits that look like kpng's flags; a NodePort connection that arrives
    with one still reaches the service."""
    d = programmed(cluster, CT_TABLE)
    try:
        # straight to a pod, through the node: the pod sees the client, not the node
        assert cluster.request(cluster.client, B, 8080) == f"pod-b {cluster.client_ip}"
        kept = counter(cluster.node, "post_ct_kept", "cttest")
        assert kept == 1, "kpng changed the conntrack mark of a connection not to a service"
        assert cluster.request(cluster.client, cluster.node_ip, 30080) == "pod-a 10.244.1.1"
    finally:
        asyncio.run(d.backend.close())


# another component's own DNAT (a hostPort plugin, Docker's port mappings) with a conntrack
# mark of its own, in a nat chain before kpng's: kpng never sees the connection
DNAT_TABLE = f"""
table ip dnattest {{
  counter post_kept {{}}
  chain pre {{
    type nat hook prerouting priority -150; policy accept;
    tcp dport 9090 ct mark set 0x5 dnat to {B}:8080
  }}
  chain post {{
    type filter hook postrouting priority 200; policy accept;
    ct state new ct status dnat tcp dport 8080 ct mark == 0x5 counter name post_kept
  }}
}}
"""


def test_a_connection_another_component_dnats_keeps_its_conntrack_mark(
    cluster: Cluster,
) -> None:
    d = programmed(cluster, DNAT_TABLE)
    try:
        answer = cluster.request(cluster.client, cluster.node_ip, 9090)
        assert answer == f"pod-b {cluster.client_ip}"
        kept = counter(cluster.node, "post_kept", "dnattest")
        assert kept == 1, "kpng cleared the conntrack mark of a connection it did not DNAT"
        assert cluster.request(cluster.client, "10.96.0.10", 80) == "pod-a 10.244.1.1"
    finally:
        asyncio.run(d.backend.close())
