"""kpng.fanout.views: every rule of "Choosing endpoints" in the kube-proxy reference."""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from kpng.fanout.views import (
    TOPOLOGY_NODE,
    TOPOLOGY_NONE,
    TOPOLOGY_ZONE,
    merge_slices,
    service_view,
    special_nodes,
    topology_mode,
    uses_cluster_endpoints,
    uses_local_endpoints,
    view_variant,
)
from kpng.model import Endpoint, EndpointPort, EndpointSlice, Service, ServiceType, TrafficPolicy
from tests.objects import HTTP, UDP, http_port

from .strategies import NODES, endpoint_lists, endpoint_slices, services, zone_of

LOCAL, CLUSTER = TrafficPolicy.LOCAL, TrafficPolicy.CLUSTER


def svc(**changes: Any) -> Service:
    base = Service(
        namespace="shop",
        name="web",
        type=ServiceType.CLUSTER_IP,
        cluster_ips=("10.96.0.10",),
        ports=(http_port(),),
    )
    return dataclasses.replace(base, **changes)


def nodeport(**changes: Any) -> Service:
    return svc(
        type=ServiceType.NODE_PORT,
        ports=(http_port(30080),),
        **changes,
    )


def ep(ip: str, node: str = "", **changes: Any) -> Endpoint:
    return Endpoint(ip=ip, ports=HTTP, node=node, zone=zone_of(node), **changes)


READY: dict[str, Any] = {"ready": True, "serving": True, "terminating": False}
TERMINATING: dict[str, Any] = {"ready": False, "serving": True, "terminating": True}
UNREADY: dict[str, Any] = {"ready": False, "serving": False, "terminating": False}
DYING: dict[str, Any] = {"ready": False, "serving": False, "terminating": True}
NOT_READY_SERVING: dict[str, Any] = {"ready": False, "serving": True, "terminating": False}


def marks(
    service: Service, endpoints: tuple[Endpoint, ...], node: str, zone: str | None = None
) -> dict[str, tuple[bool, bool]]:
    """ip -> (internal, external) of the service's view on ``node``."""
    view = service_view(service, endpoints, node, zone_of(node) if zone is None else zone)
    return {e.ip: (e.internal, e.external) for e in view}


# -- ready, serving and terminating -------------------------------------------------------
def test_ready_endpoints_are_used() -> None:
    endpoints = (ep("10.244.1.5", "node-a1"), ep("10.244.2.5", "node-b1"))
    assert marks(svc(), endpoints, "node-a1") == {
        "10.244.1.5": (True, False),
        "10.244.2.5": (True, False),
    }


def test_view_endpoint_copies_the_endpoint() -> None:
    (view,) = service_view(nodeport(), (ep("10.244.1.5", "node-a1", **TERMINATING),), "n", "")
    assert (view.ip, view.ports, view.node, view.zone) == ("10.244.1.5", HTTP, "node-a1", "zone-a")
    assert (view.ready, view.serving, view.terminating) == (False, True, True)
    assert (view.internal, view.external) == (True, True)


def test_ready_first_terminating_ignored_while_any_ready() -> None:
    endpoints = (
        ep("10.244.1.5", "node-a1", **READY),
        ep("10.244.1.6", "node-a1", **TERMINATING),
        ep("10.244.2.5", "node-b1", **NOT_READY_SERVING),
    )
    assert marks(nodeport(), endpoints, "node-a1") == {
        "10.244.1.5": (True, True),
        "10.244.1.6": (False, False),
    }


def test_serving_terminating_fallback_only_without_ready() -> None:
    endpoints = (
        ep("10.244.1.6", "node-a1", **TERMINATING),
        ep("10.244.2.6", "node-b1", **TERMINATING),
        ep("10.244.2.7", "node-b1", **UNREADY),
        ep("10.244.2.8", "node-b1", **DYING),
    )
    assert marks(nodeport(), endpoints, "node-a1") == {
        "10.244.1.6": (True, True),
        "10.244.2.6": (True, True),
    }


def test_never_endpoints_neither_ready_nor_serving_terminating() -> None:
    endpoints = (
        ep("10.244.2.7", "node-b1", **UNREADY),
        ep("10.244.2.8", "node-b1", **DYING),
        ep("10.244.2.9", "node-b1", **NOT_READY_SERVING),
    )
    assert service_view(nodeport(), endpoints, "node-b1", "zone-b") == ()
    for policy in ({"internal_traffic_policy": LOCAL}, {"external_traffic_policy": LOCAL}):
        assert service_view(nodeport(**policy), endpoints, "node-b1", "zone-b") == ()


def test_no_endpoints() -> None:
    assert service_view(nodeport(), (), "node-a1", "zone-a") == ()


def test_ready_but_not_serving_still_counts_as_ready() -> None:
    # serving is a superset of ready in Kubernetes; ready wins when they disagree.
    endpoints = (ep("10.244.1.5", "node-a1", ready=True, serving=False),)
    assert marks(svc(), endpoints, "node-b1") == {"10.244.1.5": (True, False)}


# -- internalTrafficPolicy Local ----------------------------------------------------------
def test_itp_local_internal_only_to_local_endpoints() -> None:
    endpoints = (ep("10.244.1.5", "node-a1"), ep("10.244.2.5", "node-b1"))
    service = nodeport(internal_traffic_policy=LOCAL)
    assert marks(service, endpoints, "node-a1") == {
        "10.244.1.5": (True, True),
        "10.244.2.5": (False, True),
    }
    assert marks(service, endpoints, "node-b1") == {
        "10.244.1.5": (False, True),
        "10.244.2.5": (True, True),
    }


def test_itp_local_without_local_endpoints_lists_them_all_unmarked() -> None:
    endpoints = (ep("10.244.1.5", "node-a1"), ep("10.244.2.5", "node-b1"))
    service = svc(internal_traffic_policy=LOCAL)
    assert marks(service, endpoints, "node-c1") == {
        "10.244.1.5": (False, False),
        "10.244.2.5": (False, False),
    }


def test_itp_local_ignores_endpoints_without_node_and_empty_node_name() -> None:
    endpoints = (ep("10.244.1.5", ""), ep("10.244.2.5", "node-b1"))
    service = svc(internal_traffic_policy=LOCAL)
    assert marks(service, endpoints, "", "") == {
        "10.244.1.5": (False, False),
        "10.244.2.5": (False, False),
    }


def test_itp_local_terminating_fallback_is_per_node() -> None:
    endpoints = (
        ep("10.244.1.5", "node-a1", **READY),
        ep("10.244.2.6", "node-b1", **TERMINATING),
        ep("10.244.2.7", "node-b1", **UNREADY),
    )
    service = svc(internal_traffic_policy=LOCAL)
    # node-a1 has a ready local endpoint; node-b1 only a terminating one: it falls back to
    # it although other nodes have ready endpoints.
    assert marks(service, endpoints, "node-a1") == {
        "10.244.1.5": (True, False),
        "10.244.2.6": (False, False),
    }
    assert marks(service, endpoints, "node-b1") == {
        "10.244.1.5": (False, False),
        "10.244.2.6": (True, False),
    }


def test_local_ready_wins_over_local_terminating() -> None:
    endpoints = (ep("10.244.1.5", "node-a1", **READY), ep("10.244.1.6", "node-a1", **TERMINATING))
    service = svc(internal_traffic_policy=LOCAL)
    assert marks(service, endpoints, "node-a1") == {
        "10.244.1.5": (True, False),
        "10.244.1.6": (False, False),
    }


# -- externalTrafficPolicy Local ----------------------------------------------------------
def test_etp_local_external_only_to_local_endpoints() -> None:
    endpoints = (ep("10.244.1.5", "node-a1"), ep("10.244.2.5", "node-b1"))
    service = nodeport(external_traffic_policy=LOCAL)
    assert marks(service, endpoints, "node-a1") == {
        "10.244.1.5": (True, True),
        "10.244.2.5": (True, False),
    }
    assert marks(service, endpoints, "node-c1") == {
        "10.244.1.5": (True, False),
        "10.244.2.5": (True, False),
    }


def test_etp_local_terminating_fallback() -> None:
    endpoints = (
        ep("10.244.1.6", "node-a1", **TERMINATING),
        ep("10.244.2.5", "node-b1", **READY),
    )
    service = nodeport(external_traffic_policy=LOCAL)
    assert marks(service, endpoints, "node-a1") == {
        "10.244.1.6": (False, True),
        "10.244.2.5": (True, False),
    }


def test_etp_local_applies_to_lb_and_external_ips() -> None:
    endpoints = (ep("10.244.1.5", "node-a1"), ep("10.244.2.5", "node-b1"))
    lb = svc(type=ServiceType.LOAD_BALANCER, external_traffic_policy=LOCAL)
    external_ip = svc(external_ips=("203.0.113.7",), external_traffic_policy=LOCAL)
    for service in (lb, external_ip):
        assert marks(service, endpoints, "node-b1") == {
            "10.244.1.5": (True, False),
            "10.244.2.5": (True, True),
        }


def test_cluster_ip_only_service_has_no_external_traffic() -> None:
    endpoints = (ep("10.244.1.5", "node-a1"), ep("10.244.2.5", "node-b1"))
    for policy in (CLUSTER, LOCAL):
        service = svc(external_traffic_policy=policy)
        assert not service.externally_accessible
        for node in NODES:
            assert all(not e.external for e in service_view(service, endpoints, node, ""))


def test_both_policies_local() -> None:
    endpoints = (ep("10.244.1.5", "node-a1"), ep("10.244.2.5", "node-b1"))
    service = nodeport(internal_traffic_policy=LOCAL, external_traffic_policy=LOCAL)
    assert marks(service, endpoints, "node-b1") == {
        "10.244.1.5": (False, False),
        "10.244.2.5": (True, True),
    }


def test_uses_local_and_cluster_endpoints() -> None:
    assert not uses_local_endpoints(svc())
    assert uses_cluster_endpoints(svc())
    # eTP Local means nothing without external traffic.
    assert not uses_local_endpoints(svc(external_traffic_policy=LOCAL))
    assert uses_local_endpoints(nodeport(external_traffic_policy=LOCAL))
    assert uses_cluster_endpoints(nodeport(external_traffic_policy=LOCAL))
    local_both = nodeport(internal_traffic_policy=LOCAL, external_traffic_policy=LOCAL)
    assert uses_local_endpoints(local_both)
    # pods and the node reach its external addresses cluster-wide (kube-proxy's
    # UsesClusterEndpoints is true for any externally accessible port)
    assert uses_cluster_endpoints(local_both)
    assert not uses_cluster_endpoints(
        svc(internal_traffic_policy=LOCAL, external_traffic_policy=LOCAL)
    )
    assert uses_cluster_endpoints(nodeport(internal_traffic_policy=LOCAL))


# -- topology -----------------------------------------------------------------------------
def hinted(ip: str, node: str, zones: str = "", nodes: str = "", **conditions: Any) -> Endpoint:
    return ep(
        ip,
        node,
        zone_hints=frozenset(zones.split()),
        node_hints=frozenset(nodes.split()),
        **conditions,
    )


ZONE_HINTED = (
    hinted("10.244.1.5", "node-a1", "zone-a"),
    hinted("10.244.2.5", "node-b1", "zone-b"),
    hinted("10.244.2.6", "node-b2", "zone-b"),
)
OPT_INS = [
    {"traffic_distribution": "PreferClose"},
    {"traffic_distribution": "PreferSameZone"},
    {"traffic_distribution": "PreferSameNode"},
    {"topology_mode": "Auto"},
    {"topology_mode": "auto"},
]
OPT_OUTS = [
    {},
    {"traffic_distribution": "Elsewhere"},
    {"topology_mode": "Disabled"},
    {"topology_mode": "disabled"},
    {"topology_mode": "AUTOMATIC"},
]


def test_zone_hints_used_when_the_service_opts_in() -> None:
    for opt_in in OPT_INS:
        service = nodeport(**opt_in)
        assert service.topology_enabled, opt_in
        assert topology_mode(service, ZONE_HINTED, "node-a2", "zone-a") == TOPOLOGY_ZONE
        assert marks(service, ZONE_HINTED, "node-a2") == {
            "10.244.1.5": (True, True),
            "10.244.2.5": (False, False),
            "10.244.2.6": (False, False),
        }
        assert marks(service, ZONE_HINTED, "node-b1") == {
            "10.244.1.5": (False, False),
            "10.244.2.5": (True, True),
            "10.244.2.6": (True, True),
        }


def test_hints_ignored_when_the_service_does_not_opt_in() -> None:
    for opt_out in OPT_OUTS:
        service = nodeport(**opt_out)
        assert not service.topology_enabled, opt_out
        assert topology_mode(service, ZONE_HINTED, "node-a2", "zone-a") == TOPOLOGY_NONE
        assert all(m == (True, True) for m in marks(service, ZONE_HINTED, "node-a2").values())


def test_traffic_distribution_wins_over_a_disabled_annotation() -> None:
    service = nodeport(traffic_distribution="PreferClose", topology_mode="Disabled")
    assert topology_mode(service, ZONE_HINTED, "node-a1", "zone-a") == TOPOLOGY_ZONE


def test_node_hints_before_zone_hints() -> None:
    endpoints = (
        hinted("10.244.1.5", "node-a1", "zone-a", "node-a1"),
        hinted("10.244.1.6", "node-a2", "zone-a", "node-a2"),
        hinted("10.244.2.5", "node-b1", "zone-b", "node-b1"),
    )
    service = nodeport(traffic_distribution="PreferSameNode")
    assert topology_mode(service, endpoints, "node-a1", "zone-a") == TOPOLOGY_NODE
    assert marks(service, endpoints, "node-a1") == {
        "10.244.1.5": (True, True),
        "10.244.1.6": (False, False),
        "10.244.2.5": (False, False),
    }
    # node-b2 has no node hint: zone hints apply.
    assert topology_mode(service, endpoints, "node-b2", "zone-b") == TOPOLOGY_ZONE
    assert marks(service, endpoints, "node-b2") == {
        "10.244.1.5": (False, False),
        "10.244.1.6": (False, False),
        "10.244.2.5": (True, True),
    }
    # node-c1 has neither: no filter.
    assert topology_mode(service, endpoints, "node-c1", "zone-c") == TOPOLOGY_NONE
    assert set(marks(service, endpoints, "node-c1").values()) == {(True, True)}


def test_not_every_endpoint_hinted_means_no_filter() -> None:
    endpoints = (*ZONE_HINTED, hinted("10.244.3.5", "node-c1"))
    service = nodeport(traffic_distribution="PreferClose")
    assert topology_mode(service, endpoints, "node-a1", "zone-a") == TOPOLOGY_NONE
    assert set(marks(service, endpoints, "node-a1").values()) == {(True, True)}


def test_partial_node_hints_fall_back_to_zone_hints() -> None:
    endpoints = (
        hinted("10.244.1.5", "node-a1", "zone-a", "node-a1"),
        hinted("10.244.2.5", "node-b1", "zone-b"),
    )
    service = nodeport(traffic_distribution="PreferSameNode")
    assert topology_mode(service, endpoints, "node-a1", "zone-a") == TOPOLOGY_ZONE


def test_only_ready_endpoints_decide_whether_all_are_hinted() -> None:
    # An unhinted endpoint that is not ready does not switch topology off.
    endpoints = (*ZONE_HINTED, hinted("10.244.3.5", "node-c1", **TERMINATING))
    service = nodeport(traffic_distribution="PreferClose")
    assert topology_mode(service, endpoints, "node-a1", "zone-a") == TOPOLOGY_ZONE
    assert marks(service, endpoints, "node-a1")["10.244.1.5"] == (True, True)
    assert marks(service, endpoints, "node-a1")["10.244.3.5"] == (False, False)


def test_no_hint_for_this_zone_means_no_filter() -> None:
    service = nodeport(traffic_distribution="PreferClose")
    assert topology_mode(service, ZONE_HINTED, "node-c1", "zone-c") == TOPOLOGY_NONE
    assert set(marks(service, ZONE_HINTED, "node-c1").values()) == {(True, True)}


def test_node_without_zone_gets_no_filter() -> None:
    service = nodeport(traffic_distribution="PreferClose")
    assert topology_mode(service, ZONE_HINTED, "node-x", "") == TOPOLOGY_NONE
    assert set(marks(service, ZONE_HINTED, "node-x", "").values()) == {(True, True)}


def test_topology_ignored_for_local_policy_traffic() -> None:
    service = nodeport(
        traffic_distribution="PreferClose",
        internal_traffic_policy=LOCAL,
        external_traffic_policy=LOCAL,
    )
    # node-b1 is in zone-b, its endpoint is hinted for zone-b; make it hinted elsewhere.
    endpoints = (
        hinted("10.244.1.5", "node-a1", "zone-a"),
        hinted("10.244.2.5", "node-b1", "zone-a"),
    )
    assert marks(service, endpoints, "node-b1") == {
        "10.244.1.5": (False, False),
        "10.244.2.5": (True, True),
    }


def test_topology_applies_to_the_cluster_policy_side_only() -> None:
    endpoints = (
        hinted("10.244.1.5", "node-a1", "zone-a"),
        hinted("10.244.2.5", "node-b1", "zone-b"),
    )
    # iTP Cluster with hints, eTP Local: internal follows zones, external stays local.
    service = nodeport(traffic_distribution="PreferClose", external_traffic_policy=LOCAL)
    assert marks(service, endpoints, "node-b1") == {
        "10.244.1.5": (False, False),
        "10.244.2.5": (True, True),
    }
    assert marks(service, endpoints, "node-a1") == {
        "10.244.1.5": (True, True),
        "10.244.2.5": (False, False),
    }
    # iTP Local, eTP Cluster with hints: the reverse.
    service = nodeport(traffic_distribution="PreferClose", internal_traffic_policy=LOCAL)
    more = (*endpoints, hinted("10.244.2.6", "node-b2", "zone-b"))
    assert marks(service, more, "node-b2") == {
        "10.244.1.5": (False, False),
        "10.244.2.5": (False, True),
        "10.244.2.6": (True, True),
    }


def test_terminating_fallback_with_topology() -> None:
    """Without ready endpoints no hint set is complete, so every serving-and-terminating
    endpoint is used, whatever zone it is hinted for."""
    endpoints = tuple(dataclasses.replace(e, **TERMINATING) for e in ZONE_HINTED)
    service = nodeport(traffic_distribution="PreferClose")
    assert topology_mode(service, endpoints, "node-a1", "zone-a") == TOPOLOGY_NONE
    assert set(marks(service, endpoints, "node-a1").values()) == {(True, True)}


def test_topology_with_terminating_endpoints_in_the_zone() -> None:
    """Ready endpoints decide the filter; a terminating endpoint in this zone stays unused
    while a ready one exists there."""
    endpoints = (
        *ZONE_HINTED,
        hinted("10.244.1.6", "node-a2", "zone-a", **TERMINATING),
    )
    service = nodeport(traffic_distribution="PreferClose")
    assert marks(service, endpoints, "node-a2") == {
        "10.244.1.5": (True, True),
        "10.244.1.6": (False, False),
        "10.244.2.5": (False, False),
        "10.244.2.6": (False, False),
    }


def test_endpoint_hinted_for_several_zones() -> None:
    endpoints = (
        hinted("10.244.1.5", "node-a1", "zone-a zone-c"),
        hinted("10.244.2.5", "node-b1", "zone-b"),
    )
    service = nodeport(traffic_distribution="PreferClose")
    assert marks(service, endpoints, "node-c1") == {
        "10.244.1.5": (True, True),
        "10.244.2.5": (False, False),
    }


# -- view_variant -------------------------------------------------------------------------
def test_view_variant_same_for_every_node_without_local_or_topology() -> None:
    endpoints = (ep("10.244.1.5", "node-a1"), ep("10.244.2.5", "node-b1"))
    keys = {view_variant(nodeport(), endpoints, n, zone_of(n)) for n in NODES}
    assert keys == {None}


def test_view_variant_local_policy_nodes_without_endpoints_share_a_view() -> None:
    endpoints = (ep("10.244.1.5", "node-a1"), ep("10.244.2.5", "node-b1"))
    service = nodeport(external_traffic_policy=LOCAL)
    keys = {n: view_variant(service, endpoints, n, zone_of(n)) for n in NODES}
    assert keys == {
        "node-a1": ("node", "node-a1", "zone-a"),
        "node-a2": None,
        "node-b1": ("node", "node-b1", "zone-b"),
        "node-b2": None,
        "node-c1": None,
    }
    assert special_nodes(service, endpoints) == {"node-a1", "node-b1"}


def test_view_variant_per_zone_for_zone_hints() -> None:
    service = nodeport(traffic_distribution="PreferClose")
    keys = {n: view_variant(service, ZONE_HINTED, n, zone_of(n)) for n in NODES}
    assert keys["node-a1"] == keys["node-a2"] == ("zone", "zone-a")
    assert keys["node-b1"] == keys["node-b2"] == ("zone", "zone-b")
    assert keys["node-c1"] == ("zone", "zone-c")
    assert special_nodes(service, ZONE_HINTED) == set()


def test_view_variant_per_node_for_node_hints() -> None:
    endpoints = (
        hinted("10.244.1.5", "node-a1", "zone-a", "node-a1"),
        hinted("10.244.2.5", "node-b1", "zone-b", "node-b1"),
    )
    service = nodeport(traffic_distribution="PreferSameNode")
    assert view_variant(service, endpoints, "node-a1", "zone-a") == ("node", "node-a1", "zone-a")
    assert view_variant(service, endpoints, "node-a2", "zone-a") == ("zone", "zone-a")
    assert special_nodes(service, endpoints) == {"node-a1", "node-b1"}


@settings(max_examples=120, deadline=None)
@given(services(), endpoint_lists())
def test_view_variant_is_sound(service: Service, endpoints: tuple[Endpoint, ...]) -> None:
    """Two nodes with the same key get the same view, so the watcher may share it."""
    pool = [(n, zone_of(n)) for n in NODES] + [("node-x", ""), ("", "")]
    by_key: dict[Any, tuple[Any, ...]] = {}
    for node, zone in pool:
        view = service_view(service, endpoints, node, zone)
        key = view_variant(service, endpoints, node, zone)
        hash(key)
        assert by_key.setdefault(key, view) == view, (key, node)
        if node not in special_nodes(service, endpoints):
            assert not (isinstance(key, tuple) and key[0] == "node"), (key, node)


@settings(max_examples=100, deadline=None)
@given(services(), endpoint_lists(), st.sampled_from([*NODES, "node-x"]))
def test_view_invariants(service: Service, endpoints: tuple[Endpoint, ...], node: str) -> None:
    view = service_view(service, endpoints, node, zone_of(node))
    assert [e.ip for e in view] == [e.ip for e in endpoints if e.usable]
    if not service.externally_accessible:
        assert not any(e.external for e in view)
    for policy, marked in (
        (service.internal_traffic_policy, [e for e in view if e.internal]),
        (service.external_traffic_policy, [e for e in view if e.external]),
    ):
        if policy is LOCAL:
            assert all(e.node == node for e in marked)
        # Ready endpoints are used whenever any are marked.
        if any(e.ready for e in marked):
            assert all(e.ready for e in marked)
        else:
            assert all(e.serving and e.terminating for e in marked)
    # Cluster traffic always has somewhere to go when something is usable.
    if view and service.internal_traffic_policy is CLUSTER:
        assert any(e.internal for e in view)


# -- merge_slices -------------------------------------------------------------------------
def _slice(name: str, *endpoints: Endpoint) -> EndpointSlice:
    return EndpointSlice("shop", name, "web", "IPv4", endpoints)


def test_merge_slices_counts_an_address_once() -> None:
    a = _slice("web-a", ep("10.244.1.5", "node-a1"), ep("10.244.1.6", "node-a1"))
    b = _slice("web-b", ep("10.244.1.5", "node-a1"), ep("10.244.2.5", "node-b1"))
    merged = merge_slices([a, b])
    assert [e.ip for e in merged] == ["10.244.1.5", "10.244.1.6", "10.244.2.5"]
    assert merge_slices([b, a]) == merged


def test_merge_slices_better_conditions_win_and_ports_merge() -> None:
    dns = (EndpointPort("dns", UDP, 53),)
    old = _slice("web-a", ep("10.244.1.5", "node-a1", **TERMINATING))
    new = _slice("web-b", dataclasses.replace(ep("10.244.1.5", "node-a1"), ports=dns))
    for order in ([old, new], [new, old]):
        (merged,) = merge_slices(order)
        assert merged.ready and not merged.terminating
        assert set(merged.ports) == {*HTTP, *dns}


def test_merge_slices_sorted_by_address_and_empty() -> None:
    assert merge_slices([]) == ()
    assert merge_slices([_slice("web-a")]) == ()
    s = _slice("web-a", ep("10.244.2.5"), ep("10.244.1.5"))
    assert [e.ip for e in merge_slices([s])] == ["10.244.1.5", "10.244.2.5"]


@settings(max_examples=100, deadline=None)
@given(st.lists(endpoint_slices("shop/web"), max_size=4))
def test_merge_slices_is_order_independent(slices: list[EndpointSlice]) -> None:
    merged = merge_slices(slices)
    for order in itertools.islice(itertools.permutations(slices), 8):
        assert merge_slices(order) == merged
    assert len({e.ip for e in merged}) == len(merged)
    assert {e.ip for e in merged} == {e.ip for s in slices for e in s.endpoints}


# -- per address family (kube-proxy: a proxier per family, each seeing its own slices) -----
def dual(**changes: Any) -> Service:
    return nodeport(cluster_ips=("10.96.0.10", "fd00:96::10"), **changes)


def test_each_family_falls_back_to_its_own_terminating_endpoints() -> None:
    endpoints = (
        ep("10.244.1.6", "node-a1", **TERMINATING),  # IPv4: none ready
        ep("fd00:244:1::6", "node-a1", **READY),
        ep("fd00:244:2::6", "node-b1", **TERMINATING),  # IPv6 has a ready one: not this
    )
    assert marks(dual(), endpoints, "node-a1") == {
        "10.244.1.6": (True, True),
        "fd00:244:1::6": (True, True),
        "fd00:244:2::6": (False, False),
    }


def test_local_policy_falls_back_within_each_family() -> None:
    endpoints = (
        ep("10.244.1.6", "node-a1", **TERMINATING),
        ep("10.244.2.6", "node-b1", **READY),
        ep("fd00:244:1::6", "node-a1", **READY),
    )
    assert marks(dual(internal_traffic_policy=LOCAL), endpoints, "node-a1") == {
        "10.244.1.6": (True, False),  # the node's only IPv4 one, terminating
        "10.244.2.6": (False, True),
        "fd00:244:1::6": (True, True),
    }


def test_topology_hints_are_judged_within_each_family() -> None:
    hinted = {"zone_hints": ("zone-a",)}
    endpoints = (
        ep("10.244.1.5", "node-a2", **READY, **hinted),
        ep("10.244.2.5", "node-b1", **READY, zone_hints=("zone-b",)),
        ep("fd00:244:1::5", "node-a2", **READY),  # IPv6 unhinted: no filter for IPv6 only
        ep("fd00:244:2::5", "node-b1", **READY),
    )
    service = dual(traffic_distribution="PreferClose")
    assert marks(service, endpoints, "node-a2") == {
        "10.244.1.5": (True, True),
        "10.244.2.5": (False, False),
        "fd00:244:1::5": (True, True),
        "fd00:244:2::5": (True, True),
    }
