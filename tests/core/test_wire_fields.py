"""Every field that reaches the dataplane is checked by type at decode time (issue 14):
IPs, CIDRs, ports, node names; a bad one makes the message malformed, naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from kpng.bus.codec import MalformedMessage, decode, pack_delta, packb
from kpng.bus.wire import checked_ip

SVC: dict[str, Any] = {
    "ns": "default",
    "name": "web",
    "type": "ClusterIP",
    "cluster_ips": ["10.96.0.10"],
    "ports": [{"name": "http", "proto": "TCP", "port": 80, "target": 8080, "node_port": 0}],
}
EP: dict[str, Any] = {
    "ip": "10.244.0.1",
    "ports": [["http", "TCP", 8080]],
    "node": "n1",
    "zone": "z1",
    "ready": True,
    "serving": True,
    "terminating": False,
    "internal": True,
    "external": True,
}


def delta(op: dict[str, Any]) -> bytes:
    return pack_delta("e1", 1, 0.0, None, [packb(op)])


def svc(**fields: Any) -> dict[str, Any]:
    return {"op": "svc", "svc": {**SVC, **fields}}


def port(**fields: Any) -> dict[str, Any]:
    return svc(ports=[{**SVC["ports"][0], **fields}])


def ep(**fields: Any) -> dict[str, Any]:
    return {"op": "ep", "key": "default/web", "ep": {**EP, **fields}}


def eps(row: list[Any]) -> dict[str, Any]:
    return {"op": "eps", "key": "default/web", "ports": [[["http", "TCP", 8080]]], "eps": [row]}


BAD = {
    "cluster ip": (svc(cluster_ips=["10.96.0.300"]), "svc.cluster_ips[0]"),
    "cluster ip not text": (svc(cluster_ips=["10.96.0.1 ; drop"]), "svc.cluster_ips[0]"),
    "external ip": (svc(external_ips=["example.com"]), "svc.external_ips[0]"),
    "lb ip": (svc(lb_ips=["::g"]), "svc.lb_ips[0]"),
    "source range": (svc(lb_source_ranges=["10.0.0.0/33"]), "svc.lb_source_ranges[0]"),
    "service port 0": (port(port=0), "svc.ports[0].port"),
    "service port too high": (port(port=65536), "svc.ports[0].port"),
    "node port": (port(node_port=-1), "svc.ports[0].node_port"),
    "target port": (port(target=70000), "svc.ports[0].target"),
    "target name empty": (port(target=""), "svc.ports[0].target"),
    "health check port": (svc(hc_node_port=1 << 40), "svc.hc_node_port"),
    "protocol": (port(proto="ICMP"), "svc.ports[0].proto"),
    "endpoint ip": (ep(ip="10.244.0.256"), "ep.ip"),
    "endpoint port": (ep(ports=[["http", "TCP", 1 << 20]]), "ep.ports[0]"),
    "endpoint node": (ep(node="*"), "ep.node"),
    "eps ip": (eps(["1.2.3", 1, 0]), "eps[0][0]"),
    "eps node": (eps(["10.244.0.1", 1, 0, "a b"]), "eps[0][3]"),
    "eps port": (
        {"op": "eps", "key": "k", "ports": [[["http", "TCP", -5]]], "eps": []},
        "ports[0][0]",
    ),
    "port mark not a list": (ep(port_marks=["http"]), "ep.port_marks[0]"),
    "port mark protocol": (ep(port_marks=[["http", "ICMP", 8]]), "ep.port_marks[0]"),
    "port mark flags": (ep(port_marks=[["http", "TCP", "8"]]), "ep.port_marks[0]"),
    "port mark negative flags": (ep(port_marks=[["http", "TCP", -8]]), "ep.port_marks[0]"),
    "port marked twice": (
        ep(port_marks=[["http", "TCP", 8], ["http", "TCP", 16]]),
        "ep.port_marks[1]",
    ),
    "port marks nil": (ep(port_marks=None), "ep.port_marks"),
    "eps port marks not a list": ({**eps(["10.244.0.1", 1, 0]), "port_marks": {}}, "port_marks"),
    "eps port mark row": (
        {**eps(["10.244.0.1", 1, 0]), "port_marks": [[1, "http", "TCP", 8]]},
        "port_marks[0][0]",
    ),
    "eps port mark row type": (
        {**eps(["10.244.0.1", 1, 0]), "port_marks": [["0", "http", "TCP", 8]]},
        "port_marks[0]",
    ),
    "eps port mark short": (
        {**eps(["10.244.0.1", 1, 0]), "port_marks": [[0, "http", "TCP"]]},
        "port_marks[0]",
    ),
    "eps port mark protocol": (
        {**eps(["10.244.0.1", 1, 0]), "port_marks": [[0, "http", 6, 8]]},
        "port_marks[0]",
    ),
    "eps port marked twice": (
        {**eps(["10.244.0.1", 1, 0]), "port_marks": [[0, "", "UDP", 8], [0, "", "UDP", 0]]},
        "port_marks[1]",
    ),
    "delete endpoint ip": ({"op": "-ep", "key": "default/web", "ip": "x"}, "ip"),
    "node name": ({"op": "node", "node": {"name": ">", "addresses": []}}, "node.name"),
    "node address": (
        {"op": "node", "node": {"name": "n1", "addresses": ["10.0.0.1/24"]}},
        "node.addresses[0]",
    ),
    "delete node name": ({"op": "-node", "name": "x" * 300}, "name"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_field_makes_the_message_malformed_naming_it(case: str) -> None:
    op, field = BAD[case]
    with pytest.raises(MalformedMessage) as info:
        decode(delta(op))
    assert info.value.field == f"ops[0].{field}", info.value


@pytest.mark.parametrize(
    "op",
    [
        svc(),
        svc(cluster_ips=["fd00::10"], lb_source_ranges=["10.0.0.0/8"], hc_node_port=30001),
        port(target="http"),
        ep(),
        ep(node=""),
        eps(["10.244.0.1", 1, 0]),
        eps(["fd00::1", 1, 0, "n1.example.com", "z1"]),
        ep(port_marks=[["http", "TCP", 8], ["metrics", "TCP", 24 | 64]]),
        {**eps(["10.244.0.1", 1, 0]), "port_marks": [[0, "http", "TCP", 0]]},
        {"op": "-ep", "key": "default/web", "ip": "10.244.0.1"},
        {"op": "node", "node": {"name": "n1", "addresses": ["192.168.0.1", "fd00::1"]}},
    ],
)
def test_good_fields_decode(op: dict[str, Any]) -> None:
    decode(delta(op))


def test_ipv6_must_be_canonical_as_kpng_writes_it() -> None:
    assert checked_ip("fd00::1", "x") == "fd00::1"
    for bad in [
        "FD00::1",
        "fd00:0::1",
        "1.2.3.04",
        "::ffff:1.2.3.4x",
        5,
        "fd00::1\x00",
        "fd00::\uff11",
    ]:
        with pytest.raises(MalformedMessage):
            checked_ip(bad, "x")
