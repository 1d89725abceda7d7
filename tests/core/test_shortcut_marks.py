"""Shortcut marks: with both traffic policies Local, the node view marks the cluster-wide
endpoints that pods and the node reach through the service's external addresses (kube-proxy
short-circuits them to its cluster policy chain), per family and per port; the marks on the
wire, in the digest, and what the dataplane's other readers make of them."""

from __future__ import annotations

import dataclasses
from typing import Any

from kpng.bus.codec import Delta, decode, encode, pack_delta, packb
from kpng.bus.wire import Reader, endpoints_from_wire, endpoints_to_wire, op_to_wire
from kpng.dataplane.conntrack import udp_ports
from kpng.diff import SetEndpoint
from kpng.digest import to_hex, view_digest
from kpng.fanout.views import service_view, view_variant
from kpng.model import (
    Endpoint,
    EndpointPort,
    PortMarks,
    Service,
    ServicePort,
    ServiceType,
    TrafficPolicy,
    TransportProtocol,
    ViewEndpoint,
)
from tests.objects import HTTP, HTTP_ENDPOINT_PORT, TCP, UDP

LOCAL = TrafficPolicy.LOCAL
READY: dict[str, Any] = {"ready": True, "serving": True, "terminating": False}
TERMINATING: dict[str, Any] = {"ready": False, "serving": True, "terminating": True}


def both_local(**changes: Any) -> Service:
    base = Service(
        "shop",
        "web",
        ServiceType.NODE_PORT,
        ("10.96.0.10",),
        (ServicePort("http", TCP, 80, "http", 30080),),
        internal_traffic_policy=LOCAL,
        external_traffic_policy=LOCAL,
    )
    return dataclasses.replace(base, **changes)


def ep(ip: str, node: str, zone: str = "", **changes: Any) -> Endpoint:
    return Endpoint(ip, HTTP, node, zone or f"zone-{node[-1]}", **{**READY, **changes})


def marks(view: tuple[ViewEndpoint, ...]) -> dict[str, tuple[bool, bool, bool]]:
    return {e.ip: (e.internal, e.external, e.shortcut) for e in view}


# -- the node view ---------------------------------------------------------------------------
def test_both_local_marks_the_cluster_wide_endpoints_shortcut() -> None:
    eps = (
        ep("10.244.1.5", "node-a"),
        ep("10.244.2.5", "node-b"),
        ep("10.244.2.6", "node-b", **TERMINATING),
    )
    assert marks(service_view(both_local(), eps, "node-a", "zone-a")) == {
        "10.244.1.5": (True, True, True),
        "10.244.2.5": (False, False, True),
        "10.244.2.6": (False, False, False),  # ready ones exist: not cluster-wide
    }
    # a node without any endpoint of its own still reaches them all
    assert marks(service_view(both_local(), eps, "node-c", "zone-c")) == {
        "10.244.1.5": (False, False, True),
        "10.244.2.5": (False, False, True),
        "10.244.2.6": (False, False, False),
    }
    # no ready endpoint anywhere: the serving-terminating ones, as kube-proxy falls back
    dying = (ep("10.244.2.6", "node-b", **TERMINATING),)
    assert marks(service_view(both_local(), dying, "node-a", "zone-a")) == {
        "10.244.2.6": (False, False, True)
    }


def test_no_shortcut_marks_where_a_policy_already_selects_the_cluster_wide_endpoints() -> None:
    """iTP Cluster: the internal mark is the short-circuit's set; no external address or
    eTP Cluster: no short-circuit at all. The views stay as before shortcut marks."""
    eps = (ep("10.244.1.5", "node-a"), ep("10.244.2.5", "node-b"))
    for service in (
        both_local(internal_traffic_policy=TrafficPolicy.CLUSTER),
        both_local(external_traffic_policy=TrafficPolicy.CLUSTER),
        both_local(type=ServiceType.CLUSTER_IP, ports=(ServicePort("http", TCP, 80, "http"),)),
    ):
        assert not any(e.shortcut for e in service_view(service, eps, "node-a", "zone-a"))


def test_shortcut_marks_follow_topology_hints_and_the_views_vary_by_zone() -> None:
    """The cluster-wide set is topology-filtered (kube-proxy's clusterEndpoints), so a
    node's shortcut marks depend on its zone: views are computed per zone."""
    service = both_local(traffic_distribution="PreferClose")
    eps = (
        Endpoint("10.244.1.5", HTTP, "node-a", "zone-a", zone_hints=frozenset({"zone-a"})),
        Endpoint("10.244.2.5", HTTP, "node-b", "zone-b", zone_hints=frozenset({"zone-b"})),
    )
    in_a = service_view(service, eps, "node-c", "zone-a")
    in_b = service_view(service, eps, "node-d", "zone-b")
    assert [e.ip for e in in_a if e.shortcut] == ["10.244.1.5"]
    assert [e.ip for e in in_b if e.shortcut] == ["10.244.2.5"]
    assert view_variant(service, eps, "node-c", "zone-a") == ("zone", "zone-a")
    assert view_variant(service, eps, "node-c", "zone-a") != view_variant(
        service, eps, "node-d", "zone-b"
    )


def test_shortcut_marks_are_judged_per_family() -> None:
    service = both_local(cluster_ips=("10.96.0.10", "fd00::10"))
    eps = (
        ep("10.244.2.5", "node-b"),
        ep("fd00:244:2::6", "node-b", **TERMINATING),  # the only IPv6 one
    )
    view = service_view(service, eps, "node-a", "zone-a")
    assert {e.ip for e in view if e.shortcut} == {"10.244.2.5", "fd00:244:2::6"}


def test_shortcut_marks_are_judged_per_port() -> None:
    """A rollout that drops the metrics port: the old pods serve it while terminating, so
    they are its cluster-wide set (a port mark), not the service-wide one."""
    metrics = EndpointPort("metrics", TCP, 9090)
    service = both_local(
        ports=(
            ServicePort("http", TCP, 80, "http", 30080),
            ServicePort("metrics", TCP, 9090, "metrics", 30090),
        )
    )
    new = Endpoint("10.244.2.5", (HTTP_ENDPOINT_PORT,), "node-b", "zone-b")
    old = Endpoint("10.244.2.6", (HTTP_ENDPOINT_PORT, metrics), "node-b", "zone-b", **TERMINATING)
    view = {e.ip: e for e in service_view(service, (new, old), "node-a", "zone-a")}
    assert view["10.244.2.5"].all_marks("http", TCP) == (False, False, True)
    assert view["10.244.2.6"].all_marks("http", TCP) == (False, False, False)
    assert view["10.244.2.6"].all_marks("metrics", TCP) == (False, False, True)
    assert view["10.244.2.6"].marks("metrics", TCP) == (False, False)  # (as before the mark)
    assert view["10.244.2.6"].port_marks == (PortMarks("metrics", TCP, False, False, True),)


# -- the wire and the digest -----------------------------------------------------------------
KEY = "shop/web"
SHORT = ViewEndpoint("10.244.2.5", HTTP, "node-b", "zone-b", shortcut=True)
MARKED = ViewEndpoint(
    "10.244.2.6", HTTP, "node-b", "zone-b", ready=False, terminating=True
).with_port_marks((PortMarks("metrics", TCP, False, False, True),))
LOCAL_EP = ViewEndpoint("10.244.1.5", HTTP, "node-a", "zone-a", internal=True, external=True)


def _decoded(data: bytes) -> tuple[ViewEndpoint, ...]:
    message = decode(data)
    assert isinstance(message, Delta)
    return tuple(op.endpoint for op in message.ops if isinstance(op, SetEndpoint))


def test_shortcut_marks_round_trip_in_both_forms() -> None:
    endpoints = (LOCAL_EP, SHORT, MARKED)
    compact = pack_delta("e1", 1, 0.0, None, [packb(endpoints_to_wire(KEY, endpoints))])
    assert _decoded(compact) == endpoints
    plain = encode(Delta("e1", 1, 0.0, None, tuple(SetEndpoint(KEY, e) for e in endpoints)))
    assert _decoded(plain) == endpoints


def test_an_older_agent_reads_the_endpoints_without_shortcut_marks() -> None:
    """An older agent masks a row's flags with 31 and a port mark's with 24, and ignores
    an "ep" key it does not know: it reads the same endpoints with shortcut off."""
    op = endpoints_to_wire(KEY, (SHORT, MARKED))
    assert [row[1] for row in op["eps"]] == [3 | 32, 2 | 4]
    assert op["port_marks"] == [[1, "metrics", "TCP", 32]]
    single = op_to_wire(SetEndpoint(KEY, SHORT))["ep"]
    assert single["shortcut"] is True
    assert "shortcut" not in op_to_wire(SetEndpoint(KEY, LOCAL_EP))["ep"]
    # the common case is the message of before shortcut marks
    assert [row[1] for row in endpoints_to_wire(KEY, (LOCAL_EP,))["eps"]] == [1 | 2 | 8 | 16]
    op["eps"] = [[row[0], row[1] & 31, *row[2:]] for row in op["eps"]]
    op["port_marks"] = [[*m[:3], m[3] & 24] for m in op["port_marks"]]
    got = [o.endpoint for o in endpoints_from_wire(Reader(op, ""), "node")]
    assert got[0] == dataclasses.replace(SHORT, shortcut=False)
    assert got[1].all_marks("metrics", TCP) == (False, False, False)


def test_shortcut_marks_count_in_the_digest_and_change_nothing_else() -> None:
    service = both_local()
    digests = {
        to_hex(view_digest({KEY: service}, {KEY: {e.ip: e}}, {}))
        for e in (
            dataclasses.replace(SHORT, shortcut=False),
            SHORT,
            MARKED,
            MARKED.with_port_marks((PortMarks("metrics", TCP, False, False, False),)),
        )
    }
    assert len(digests) == 4


# -- readers of the view ---------------------------------------------------------------------
def test_conntrack_keeps_flows_to_shortcut_endpoints() -> None:
    """A pod's UDP flow to the external address of a both-Local service goes to a
    cluster-wide endpoint elsewhere: its conntrack entry is not stale."""
    dns = ServicePort("dns", UDP, 53, 53, 30053)
    service = both_local(ports=(dns,), external_ips=("203.0.113.10",))
    remote = ViewEndpoint("10.244.2.5", (EndpointPort("dns", UDP, 53),), "node-b", shortcut=True)
    (port,) = udp_ports(service, {remote.ip: remote})
    assert port.endpoints == {"10.244.2.5"}
    marked = remote.with_port_marks((PortMarks("other", TransportProtocol.TCP, True, False),))
    marked = dataclasses.replace(marked, shortcut=True)
    (port,) = udp_ports(service, {remote.ip: marked})
    assert port.endpoints == {"10.244.2.5"}
