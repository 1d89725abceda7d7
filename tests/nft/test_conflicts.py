"""Two services claiming one IP:port: one keeps it, the table still programs (fake nftables,
which refuses an element whose key exists with another value, as the kernel does)."""

from __future__ import annotations

from kpng.diff import View
from kpng.model import EndpointPort, ServicePort, TransportProtocol, ViewEndpoint
from tests.nft.helpers import CONFIG, Harness, ep, svc, view
from tests.nft.test_planner import step

OUTSIDE = "192.168.0.99"
EXT, EXT2 = "172.16.1.1", "172.16.1.2"
A_EP, B_EP = "10.244.2.1", "10.244.2.2"
PORTS = (
    ServicePort("http", TransportProtocol.TCP, 80, 8080),
    ServicePort("alt", TransportProtocol.TCP, 81, 8080),
)


def both() -> View[ViewEndpoint]:
    a = svc("a", ip="10.96.0.1", external_ips=(EXT,))
    b = svc("b", ip="10.96.0.2", external_ips=(EXT, EXT2), ports=PORTS)
    b_ports = tuple(EndpointPort(p.name, p.protocol, 8080) for p in PORTS)
    return view((a, [ep(A_EP)]), (b, [ep(B_EP, ports=b_ports)]))


def only_b() -> View[ViewEndpoint]:
    v = both()
    del v.services["default/a"], v.endpoints["default/a"]
    return v


def reaches(h: Harness, ip: str, port: int) -> frozenset[str]:
    t = h.trace(OUTSIDE, ip, port)
    assert t.verdict == "dnat", (ip, port, t)
    return t.endpoint_ips


def test_full_sync_gives_the_ip_port_to_the_winner_and_the_rest_to_the_loser() -> None:
    h = Harness()
    h.full(both())  # without arbitration: "element ... exists with another value"
    assert reaches(h, EXT, 80) == {A_EP}  # default/a sorts first
    assert reaches(h, EXT, 81) == {B_EP}  # the loser's other port on that IP
    assert reaches(h, EXT2, 80) == {B_EP}  # the loser's other IP
    assert reaches(h, "10.96.0.2", 80) == {B_EP}
    [conflict] = h.planner.conflicts()
    assert conflict.claim == (EXT, "TCP", 80)
    assert "default/a" in str(conflict) and "default/b" in str(conflict)


def test_the_loser_gets_the_ip_port_when_the_winner_goes_and_loses_it_when_it_comes_back() -> None:
    h = Harness()
    h.full(both())
    step(h, only_b())  # incremental: the winner deleted
    assert reaches(h, EXT, 80) == {B_EP}
    assert h.planner.conflicts() == []
    step(h, both())  # incremental: the winner is back, and takes it again
    assert reaches(h, EXT, 80) == {A_EP}
    assert reaches(h, EXT, 81) == {B_EP}
    assert len(h.planner.conflicts()) == 1
    fresh = Harness()  # the incremental table is the full sync's (target ids apart)
    fresh.full(both())
    t = CONFIG.nft_table
    assert h.nft.dump(t).count("element") == fresh.nft.dump(t).count("element")
    for ip, port in ((EXT, 80), (EXT, 81), (EXT2, 80), (EXT2, 81), ("10.96.0.1", 80)):
        assert h.trace(OUTSIDE, ip, port) == fresh.trace(OUTSIDE, ip, port)


def test_a_conflicting_service_added_incrementally_does_not_fail_the_batch() -> None:
    h = Harness()
    b_only = only_b()
    h.full(b_only)
    # a service sorting after b claims b's IP:port: b keeps it, nothing else changes
    c = svc("c", ip="10.96.0.3", external_ips=(EXT,))
    v = view(*((s, list(b_only.endpoints[k].values())) for k, s in b_only.services.items()))
    v.services[c.key], v.endpoints[c.key] = c, {"10.244.2.3": ep("10.244.2.3")}
    step(h, v)
    assert reaches(h, EXT, 80) == {B_EP}
    assert reaches(h, "10.96.0.3", 80) == {"10.244.2.3"}
    assert [str(x.winner[2]) for x in h.planner.conflicts()] == ["b"]
