"""The arbitration of an IP:port several services claim (pure, no dataplane)."""

from __future__ import annotations

import itertools

from kpng.dataplane.claims import CLUSTER_IP, EXTERNAL, Claims
from kpng.model import Service, ServicePort, ServiceType, TransportProtocol

EXT = "203.0.113.10"


def svc(ns: str, name: str, cluster_ip: str, ext: tuple[str, ...] = (), **kw: object) -> Service:
    ports = kw.pop("ports", (ServicePort("http", TransportProtocol.TCP, 80, 8080),))
    return Service(
        ns,
        name,
        ServiceType.CLUSTER_IP,
        (cluster_ip,),
        ports,
        external_ips=ext,
        **kw,  # type: ignore[arg-type]
    )


def test_first_namespace_name_wins_whatever_the_order_of_arrival() -> None:
    services = [
        svc("b", "web", "10.96.0.1", (EXT,)),
        svc("a", "zzz", "10.96.0.2", (EXT,)),
        svc("a", "web", "10.96.0.3", (EXT,)),
    ]
    seen = set()
    for order in itertools.permutations(services):
        full = Claims()
        full.set_all({s.key: s for s in order})
        step = Claims()
        for s in order:
            step.update(s.key, s)
        for c in (full, step):
            [conflict] = c.conflicts()
            seen.add((conflict, c.lost_by("a/web"), c.lost_by("a/zzz"), c.lost_by("b/web")))
    [(conflict, lost_a, lost_z, lost_b)] = seen  # the same on every node, every order
    assert conflict.claim == (EXT, "TCP", 80)
    assert conflict.winner == (EXTERNAL, "a", "web", "http")
    assert conflict.losers == ((EXTERNAL, "a", "zzz", "http"), (EXTERNAL, "b", "web", "http"))
    assert lost_a == frozenset()
    assert lost_z == lost_b == {(EXTERNAL, "http", (EXT, "TCP", 80))}
    assert (
        "a/web" in str(conflict) and "b/web" in str(conflict) and f"{EXT}:80/TCP" in str(conflict)
    )


def test_only_the_contested_ip_port_is_lost() -> None:
    c = Claims()
    a = svc("default", "a", "10.96.0.1", (EXT,))
    b = svc(
        "default",
        "b",
        "10.96.0.2",
        (EXT, "203.0.113.11"),
        ports=(
            ServicePort("http", TransportProtocol.TCP, 80, 8080),
            ServicePort("alt", TransportProtocol.TCP, 8080, 8080),
            ServicePort("dns", TransportProtocol.UDP, 80, 53),
        ),
    )
    c.set_all({"default/a": a, "default/b": b})
    assert c.lost_by("default/b") == {(EXTERNAL, "http", (EXT, "TCP", 80))}
    assert [x.claim for x in c.conflicts()] == [(EXT, "TCP", 80)]


def test_a_cluster_ip_beats_an_external_ip_naming_it() -> None:
    c = Claims()
    c.set_all(
        {
            "a/thief": svc("a", "thief", "10.96.0.9", ("10.96.0.5",)),
            "z/victim": svc("z", "victim", "10.96.0.5"),
        }
    )
    [conflict] = c.conflicts()
    assert conflict.winner == (CLUSTER_IP, "z", "victim", "http")
    assert c.lost_by("a/thief") == {(EXTERNAL, "http", ("10.96.0.5", "TCP", 80))}


def test_the_loser_gets_the_ip_port_back_when_the_winner_releases_it() -> None:
    c = Claims()
    a, b = svc("default", "a", "10.96.0.1", (EXT,)), svc("default", "b", "10.96.0.2", (EXT,))
    c.set_all({"default/a": a, "default/b": b})
    # the winner drops the external IP: b must be rendered again, and has it
    assert c.update("default/a", svc("default", "a", "10.96.0.1")) == {"default/b"}
    assert c.lost_by("default/b") == frozenset() and c.conflicts() == []
    # the winner takes it again: b loses it again
    assert c.update("default/a", a) == {"default/b"}
    assert c.lost_by("default/b") != frozenset()
    # deleted: same
    assert c.update("default/a", None) == {"default/b"}
    assert c.lost_by("default/b") == frozenset() and c.conflicts() == []
    # a change that touches no claim re-renders nobody else
    assert (
        c.update("default/b", svc("default", "b", "10.96.0.2", (EXT,), affinity_timeout=5)) == set()
    )


def test_node_ports_and_families_are_separate_claims() -> None:
    np = (ServicePort("http", TransportProtocol.TCP, 80, 8080, 30080),)
    a = Service("default", "a", ServiceType.NODE_PORT, ("10.96.0.1",), np)
    b = Service("default", "b", ServiceType.NODE_PORT, ("fd00::2",), np)
    v4, v6 = Claims(4), Claims(6)
    for c in (v4, v6):
        c.set_all({"default/a": a, "default/b": b})
        [conflict] = c.conflicts()
        assert conflict.claim == ("", "TCP", 30080) and "node port 30080/TCP" in str(conflict)
        assert c.lost_by("default/b") == {(EXTERNAL, "http", ("", "TCP", 30080))}
