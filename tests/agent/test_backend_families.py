"""A family no address of the node or of a service uses has no table (no ``ip6`` skeleton
on an IPv4 cluster's node), until a service gets an address of it."""

from __future__ import annotations

from kpng.bus.consumer import Applied
from kpng.dataplane.nft.fake import FakeNftables
from kpng.dataplane.nft.objects import Table
from kpng.dataplane.nft.planner import serves
from kpng.dataplane.nft.skeleton import Config
from kpng.diff import SetNode, SetService, View
from kpng.model import Node, Service, ServicePort, ServiceType, TransportProtocol, ViewEndpoint
from kpng_agent.backends.nftables import NftablesBackend, Settings
from tests.objects import view

NODE = "node-a"
IP4, IP6 = Table("ip", "kpng"), Table("ip6", "kpng")
PORT = (ServicePort("http", TransportProtocol.TCP, 80, 8080),)


def web(name: str, *ips: str, external: tuple[str, ...] = ()) -> Service:
    return Service("default", name, ServiceType.CLUSTER_IP, ips, PORT, external)


def on_node(v: View[ViewEndpoint], *addresses: str) -> View[ViewEndpoint]:
    v.nodes[NODE] = Node(NODE, addresses)
    return v


def test_a_table_serves_with_node_port_addresses_or_a_service_address_of_its_family() -> None:
    v4, v6 = Config(family=4), Config(family=6)
    assert serves(v4, [web("a", "10.96.0.1")]) and not serves(v6, [web("a", "10.96.0.1")])
    assert serves(v6, [web("a", "10.96.0.1", external=("2001:db8::1",)), None])
    assert serves(v6, [web("a", "fd00::1")]) and not serves(v4, [web("a", "fd00::1")])
    assert serves(Config(family=6, nodeport_cidrs=("fd00::1/128",)), [])
    assert not serves(v4, [])


async def test_an_ipv4_cluster_has_no_ip6_table_until_a_service_has_an_ipv6_address() -> None:
    nft = FakeNftables()
    backend = NftablesBackend(Settings(NODE), nft, list)
    v = on_node(view((web("a", "10.96.0.1"), [])), "192.168.0.10")
    await backend.program(Applied("snapshot", "e1", 1, v, ()), full=True)
    assert set(nft.tables) == {IP4}
    b = web("b", "10.96.0.2")
    v.services[b.key] = b
    await backend.program(Applied("delta", "e1", 2, v, (SetService(b),)), full=False)
    assert set(nft.tables) == {IP4}
    dual = web("c", "10.96.0.3", "fd00:96::3")
    v.services[dual.key] = dual
    await backend.program(Applied("delta", "e1", 3, v, (SetService(dual),)), full=False)
    assert set(nft.tables) == {IP4, IP6}
    assert "fd00:96::3" in nft.dump(IP6) and "10.96.0.2" not in nft.dump(IP6)


async def test_a_full_sync_removes_a_table_no_longer_used_and_a_node_address_keeps_it() -> None:
    nft = FakeNftables()
    backend = NftablesBackend(Settings(NODE), nft, list)
    v = on_node(view((web("a", "10.96.0.1", "fd00:96::1"), [])), "192.168.0.10")
    await backend.program(Applied("snapshot", "e1", 1, v, ()), full=True)
    assert set(nft.tables) == {IP4, IP6}
    v = on_node(view((web("a", "10.96.0.1"), [])), "192.168.0.10")
    await backend.program(Applied("snapshot", "e1", 2, v, ()), full=True)
    assert set(nft.tables) == {IP4} and 6 not in backend.planners
    v = on_node(view((web("a", "10.96.0.1"), [])), "192.168.0.10", "fd00:77::1")
    await backend.program(Applied("snapshot", "e1", 3, v, ()), full=True)
    assert set(nft.tables) == {IP4, IP6}  # the node's IPv6 address takes node ports


async def test_node_cidr_mode_writes_the_nodes_pod_cidrs_when_they_come_and_change() -> None:
    """--detect-local-mode NodeCIDR: a Node's pod CIDRs that come (or change) in a delta are
    a new configuration: the family's table is written again with them, each family's own;
    --cluster-cidr is not what tells pods then."""
    nft = FakeNftables()
    settings = Settings(NODE, cluster_cidrs=("10.0.0.0/8",), detect_local="NodeCIDR")
    backend = NftablesBackend(settings, nft, list)
    v = on_node(view((web("a", "10.96.0.1", "fd00:96::1"), [])), "192.168.0.10")
    await backend.program(Applied("snapshot", "e1", 1, v, ()), full=True)
    assert "@pod_cidrs" not in nft.dump(IP4)  # no pod CIDRs yet: no rule reads the set
    assert backend.without_pod_cidrs
    for seq, cidrs in enumerate((("10.244.3.0/24", "fd00:3::/64"), ("10.244.4.0/24",)), 2):
        node = Node(NODE, ("192.168.0.10",), pod_cidrs=cidrs)
        v.nodes[NODE] = node
        await backend.program(Applied("delta", "e1", seq, v, (SetNode(node),)), full=False)
        for table, family in ((IP4, 4), (IP6, 6)):
            config = backend.planners[family].config
            assert config.pod_cidrs == tuple(c for c in cidrs if (":" in c) == (family == 6))
            dump = nft.dump(table)
            written = [line for line in dump.splitlines() if line.startswith("element pod_cidrs")]
            assert [w.split()[2] for w in written] == list(config.pod_cidrs), (table, written)
            assert ("saddr @pod_cidrs" in dump) == bool(config.pod_cidrs)
    assert not backend.without_pod_cidrs
