"""A family no address of the node or of a service uses has no table (no ``ip6`` skeleton
on an IPv4 cluster's node), until a service gets an address of it."""

from __future__ import annotations

from kpng.bus.consumer import Applied
from kpng.dataplane.nft.fake import FakeNftables
from kpng.dataplane.nft.objects import Table
from kpng.dataplane.nft.planner import serves
from kpng.dataplane.nft.skeleton import Config
from kpng.diff import SetService, View
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
