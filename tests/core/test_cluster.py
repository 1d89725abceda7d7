"""kpng.fanout.cluster: ClusterState changes, node views and the global view."""

from __future__ import annotations

import dataclasses
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from kpng.fanout.cluster import Changes, ClusterState
from kpng.model import Endpoint, EndpointSlice, Node, Service, ServiceType, TrafficPolicy
from tests.objects import HTTP, http_port

from .strategies import NODES, endpoint_slices, services, zone_of

WEB = Service(
    "shop", "web", ServiceType.NODE_PORT, ("10.96.0.10",), (http_port(30080, target="http"),)
)
E1 = Endpoint("10.244.1.5", HTTP, "node-a1", "zone-a")
E2 = Endpoint("10.244.2.5", HTTP, "node-b1", "zone-b")
SLICE = EndpointSlice("shop", "web-1", "web", "IPv4", (E1, E2), trigger_time=100.0)
NODE_A1 = Node("node-a1", ("192.168.1.11",), "zone-a")


def test_upsert_reports_changes_once() -> None:
    state = ClusterState()
    changes = state.upsert(WEB, now=5.0)
    assert changes.services == {"shop/web"} and changes.trigger_time == 5.0
    assert not state.upsert(WEB, now=6.0)
    changes = state.upsert(SLICE, now=7.0)
    assert changes.services == {"shop/web"}
    assert changes.trigger_time == 100.0  # the slice's own trigger time wins over now
    assert not state.upsert(SLICE)
    assert state.upsert(NODE_A1).nodes == {"node-a1"}
    assert not state.upsert(NODE_A1)


def test_slice_before_its_service() -> None:
    state = ClusterState()
    state.upsert(SLICE)
    assert state.node_view("node-a1").services == {}
    state.upsert(WEB)
    assert set(state.node_view("node-a1").endpoints["shop/web"]) == {E1.ip, E2.ip}


def test_slice_moving_to_another_service_changes_both() -> None:
    state = ClusterState()
    state.upsert(WEB)
    state.upsert(SLICE)
    moved = dataclasses.replace(SLICE, service="api")
    assert state.upsert(moved).services == {"shop/web", "shop/api"}
    assert state.endpoints("shop/web") == ()
    assert state.endpoints("shop/api") == (E1, E2)


def test_delete() -> None:
    state = ClusterState()
    for obj in (WEB, SLICE, NODE_A1):
        state.upsert(obj)
    assert state.delete("EndpointSlice", "shop/web-1", now=9.0).services == {"shop/web"}
    assert state.endpoints("shop/web") == ()
    assert state.delete("Service", "shop/web").services == {"shop/web"}
    assert state.delete("Node", "node-a1").nodes == {"node-a1"}
    assert not state.delete("Service", "shop/web")
    assert not state.delete("Gadget", "x")
    assert state.global_view().counts() == {"services": 0, "endpoints": 0, "nodes": 0}


def test_node_view_holds_the_node_itself_and_view_endpoints() -> None:
    state = ClusterState()
    for obj in (dataclasses.replace(WEB, external_traffic_policy=TrafficPolicy.LOCAL), SLICE):
        state.upsert(obj)
    state.upsert(NODE_A1)
    view = state.node_view("node-a1")
    assert view.nodes == {"node-a1": NODE_A1}
    marks = {ip: (e.internal, e.external) for ip, e in view.endpoints["shop/web"].items()}
    assert marks == {E1.ip: (True, True), E2.ip: (True, False)}
    assert state.node_view("node-z").nodes == {}


def test_node_view_leaves_out_services_without_usable_endpoints() -> None:
    state = ClusterState()
    state.upsert(WEB)
    unready = dataclasses.replace(E1, ready=False, serving=False)
    state.upsert(dataclasses.replace(SLICE, endpoints=(unready,)))
    view = state.node_view("node-a1")
    assert view.services == {"shop/web": WEB}
    assert view.endpoints == {}
    # The global view keeps every endpoint, usable or not.
    assert state.global_view().endpoints == {"shop/web": {E1.ip: unready}}


def test_zone_comes_from_the_node_object() -> None:
    hinted = (
        dataclasses.replace(E1, zone_hints=frozenset({"zone-a"})),
        dataclasses.replace(E2, zone_hints=frozenset({"zone-b"})),
    )
    state = ClusterState()
    state.upsert(dataclasses.replace(WEB, traffic_distribution="PreferClose"))
    state.upsert(dataclasses.replace(SLICE, endpoints=hinted))
    # Unknown node: no zone, no filter.
    assert all(e.internal for e in state.node_view("node-a2").endpoints["shop/web"].values())
    state.upsert(Node("node-a2", zone="zone-a"))
    marks = {ip: e.internal for ip, e in state.node_view("node-a2").endpoints["shop/web"].items()}
    assert marks == {E1.ip: True, E2.ip: False}


def test_replace() -> None:
    state = ClusterState()
    for obj in (WEB, SLICE, NODE_A1):
        state.upsert(obj)
    assert not state.replace([NODE_A1, SLICE, WEB], now=1.0)
    changes = state.replace([WEB, Node("node-b1")], now=2.0)
    assert changes.services == {"shop/web"}
    assert changes.nodes == {"node-a1", "node-b1"}
    assert changes.trigger_time == 2.0
    assert set(state.nodes) == {"node-b1"} and state.slices == {}


def test_changes_merge_keeps_the_earliest_trigger() -> None:
    a = Changes({"a/x"}, set(), 5.0)
    a.merge(Changes(set(), {"n"}, 3.0))
    a.merge(Changes(set(), set(), None))
    assert (a.services, a.nodes, a.trigger_time) == ({"a/x"}, {"n"}, 3.0)
    assert not Changes(trigger_time=1.0)


# -- properties ---------------------------------------------------------------------------
@st.composite
def cluster_objects(draw: st.DrawFn) -> list[Any]:
    """Services, slices and nodes with distinct keys (as one list of a cluster would be)."""
    found: dict[tuple[str, str], Any] = {}
    for service in draw(st.lists(services(), max_size=4)):
        found[("Service", service.key)] = service
    for s in draw(st.lists(endpoint_slices(), max_size=5)):
        found[("EndpointSlice", s.key)] = s
    for name in draw(st.lists(st.sampled_from(NODES), max_size=3, unique=True)):
        found[("Node", name)] = Node(name, ("192.168.0.1",), zone_of(name))
    return list(found.values())


def _views(state: ClusterState) -> tuple[Any, ...]:
    return (state.global_view(), *(state.node_view(n) for n in ("node-a1", "node-b2", "node-x")))


@settings(max_examples=60, deadline=None)
@given(cluster_objects(), st.randoms(use_true_random=False))
def test_views_do_not_depend_on_event_order(objects: list[Any], rnd: Any) -> None:
    first = ClusterState()
    for obj in objects:
        first.upsert(obj)
    shuffled = list(objects)
    rnd.shuffle(shuffled)
    second = ClusterState()
    for obj in shuffled:
        second.upsert(obj)
    assert _views(first) == _views(second)
    # A state built by replace() agrees too.
    third = ClusterState()
    third.replace(reversed(objects))
    assert _views(third) == _views(first)


@settings(max_examples=40, deadline=None)
@given(cluster_objects(), cluster_objects())
def test_replace_with_the_same_objects_changes_nothing(a: list[Any], b: list[Any]) -> None:
    state = ClusterState()
    state.replace(a)
    assert not state.replace(list(reversed(a)))
    state.replace(b)
    fresh = ClusterState()
    fresh.replace(b)
    assert _views(state) == _views(fresh)
    assert not state.replace(b)
