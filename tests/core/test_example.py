"""examples/cluster.yaml, parsed and loaded, gives the node views its comment promises."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from kpng.fanout.cluster import ClusterState
from kpng.model import EndpointPort, Service, ServiceType, TrafficPolicy, TransportProtocol
from kpng.parse import KINDS, Ignored, parse_object

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "cluster.yaml"
NODES = ("node-a1", "node-a2", "node-b1")


def _load() -> tuple[ClusterState, list[Ignored]]:
    state, ignored = ClusterState(), []
    with EXAMPLE.open() as stream:
        for doc in yaml.safe_load_all(stream):
            if doc["kind"] not in KINDS:  # the Namespace, for kubectl apply
                continue
            parsed = parse_object(doc)
            if isinstance(parsed, Ignored):
                ignored.append(parsed)
            else:
                state.upsert(parsed)
    return state, ignored


@pytest.fixture(scope="module")
def cluster() -> tuple[ClusterState, list[Ignored]]:
    return _load()


@pytest.fixture(scope="module")
def state(cluster: tuple[ClusterState, list[Ignored]]) -> ClusterState:
    return cluster[0]


def marks(state: ClusterState, node: str, key: str) -> dict[str, tuple[bool, bool]]:
    """ip -> (internal, external) of service ``key`` in ``node``'s view."""
    view = state.node_view(node)
    assert key in view.services
    return {ip: (e.internal, e.external) for ip, e in view.endpoints_of(key).items()}


def test_objects(cluster: tuple[ClusterState, list[Ignored]]) -> None:
    state, ignored = cluster
    assert sorted(state.nodes) == list(NODES)
    assert sorted(state.services) == [
        "demo/api",
        "demo/cache",
        "demo/legacy",
        "demo/shop",
        "demo/web",
        "kube-system/kube-dns",
    ]
    assert {(i.kind, i.key) for i in ignored} == {
        ("Service", "demo/db"),
        ("Service", "demo/partner"),
        ("EndpointSlice", "demo/db-k9d2s"),
    }
    assert "demo/db-k9d2s" not in state.slices


def test_nodes(state: ClusterState) -> None:
    a1, a2, b1 = (state.nodes[n] for n in NODES)
    assert (a1.addresses, a1.zone, a1.region) == (("192.168.1.11",), "zone-a", "region-1")
    assert (a2.addresses, a2.zone) == (("192.168.1.12",), "zone-a")
    assert (b1.addresses, b1.zone) == (("192.168.2.11",), "zone-b")


@pytest.mark.parametrize("node", NODES)
def test_ignored_services_are_absent(state: ClusterState, node: str) -> None:
    view = state.node_view(node)
    assert "demo/db" not in view.services and "demo/db" not in view.endpoints
    assert "demo/partner" not in view.services
    assert "demo/db" not in state.global_view().services


@pytest.mark.parametrize("node", NODES)
def test_kube_dns_multiport_same_port_two_protocols(state: ClusterState, node: str) -> None:
    dns = state.services["kube-system/kube-dns"]
    assert [(p.name, p.protocol, p.port) for p in dns.ports] == [
        ("dns", TransportProtocol.UDP, 53),
        ("dns-tcp", TransportProtocol.TCP, 53),
        ("metrics", TransportProtocol.TCP, 9153),
    ]
    assert marks(state, node, "kube-system/kube-dns") == {
        "10.244.1.10": (True, False),
        "10.244.3.10": (True, False),
    }
    endpoint = state.node_view(node).endpoints["kube-system/kube-dns"]["10.244.1.10"]
    assert endpoint.ports == (
        EndpointPort("dns", TransportProtocol.UDP, 53),
        EndpointPort("dns-tcp", TransportProtocol.TCP, 53),
        EndpointPort("metrics", TransportProtocol.TCP, 9153),
    )


@pytest.mark.parametrize("node", NODES)
def test_web_node_port_and_affinity(state: ClusterState, node: str) -> None:
    web = state.services["demo/web"]
    assert web.type is ServiceType.NODE_PORT
    assert (web.ports[0].target_port, web.ports[0].node_port) == ("http", 30080)
    assert web.affinity_timeout == 600
    # 10.244.3.21 is neither ready nor serving: never in a view.
    assert marks(state, node, "demo/web") == {
        "10.244.1.20": (True, True),
        "10.244.2.20": (True, True),
        "10.244.3.20": (True, True),
    }


def test_shop_load_balancer_fields(state: ClusterState) -> None:
    shop = state.services["demo/shop"]
    assert shop == Service(
        namespace="demo",
        name="shop",
        type=ServiceType.LOAD_BALANCER,
        cluster_ips=("10.96.10.2",),
        ports=shop.ports,
        external_ips=("203.0.113.10",),
        load_balancer_ips=("198.51.100.10",),  # 198.51.100.11 has ipMode Proxy
        load_balancer_source_ranges=("10.0.0.0/8", "192.168.0.0/16"),
        external_traffic_policy=TrafficPolicy.LOCAL,
        health_check_node_port=32100,
    )
    assert "198.51.100.11" not in shop.load_balancer_ips
    for node in NODES:
        assert "198.51.100.11" not in state.node_view(node).services["demo/shop"].load_balancer_ips


def test_shop_etp_local(state: ClusterState) -> None:
    # Cluster-IP traffic: the one ready endpoint, everywhere. External traffic: local only.
    assert marks(state, "node-a1", "demo/shop") == {
        "10.244.1.30": (True, True),
        "10.244.1.31": (False, False),  # terminating while a local ready one exists
        "10.244.3.30": (False, False),
    }
    assert marks(state, "node-a2", "demo/shop") == {
        "10.244.1.30": (True, False),  # no local endpoint: external traffic is dropped
        "10.244.1.31": (False, False),
        "10.244.3.30": (False, False),
    }
    assert marks(state, "node-b1", "demo/shop") == {
        "10.244.1.30": (True, False),
        "10.244.1.31": (False, False),
        "10.244.3.30": (False, True),  # local serving-and-terminating fallback
    }


def test_cache_itp_local(state: ClusterState) -> None:
    assert marks(state, "node-a1", "demo/cache") == {
        "10.244.1.40": (True, False),
        "10.244.3.40": (False, False),
    }
    assert marks(state, "node-a2", "demo/cache") == {
        "10.244.1.40": (False, False),
        "10.244.3.40": (False, False),
    }
    assert marks(state, "node-b1", "demo/cache") == {
        "10.244.1.40": (False, False),
        "10.244.3.40": (True, False),
    }


@pytest.mark.parametrize("node", ["node-a1", "node-a2"])
def test_api_topology_zone_a(state: ClusterState, node: str) -> None:
    assert marks(state, node, "demo/api") == {
        "10.244.1.50": (True, False),
        "10.244.2.50": (True, False),
        "10.244.3.50": (False, False),
    }


def test_api_topology_zone_b(state: ClusterState) -> None:
    assert marks(state, "node-b1", "demo/api") == {
        "10.244.1.50": (False, False),
        "10.244.2.50": (False, False),
        "10.244.3.50": (True, False),
    }


@pytest.mark.parametrize("node", NODES)
def test_legacy_terminating_fallback(state: ClusterState, node: str) -> None:
    endpoints = state.node_view(node).endpoints["demo/legacy"]
    # 10.244.3.60 is terminating but not serving: never used.
    assert marks(state, node, "demo/legacy") == {"10.244.2.60": (True, False)}
    e = endpoints["10.244.2.60"]
    assert (e.ready, e.serving, e.terminating) == (False, True, True)


def test_trigger_time(state: ClusterState) -> None:
    assert state.slices["kube-system/kube-dns-x7k2p"].trigger_time == 1714564800.0


def test_every_document_is_a_kubernetes_object() -> None:
    with EXAMPLE.open() as stream:
        docs: list[Any] = list(yaml.safe_load_all(stream))
    for doc in docs:
        assert {"apiVersion", "kind", "metadata"} <= set(doc)
        if doc["kind"] not in ("Node", "Namespace"):
            assert doc["metadata"]["namespace"]
    assert 300 <= len(EXAMPLE.read_text().splitlines()) <= 600
