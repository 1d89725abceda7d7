"""kpng.diff: operations between two views; ``apply(diff(a, b), a) == b``."""

from __future__ import annotations

import copy
import dataclasses
import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kpng.diff import (
    DeleteEndpoint,
    DeleteNode,
    DeleteService,
    InconsistentOp,
    SetEndpoint,
    SetNode,
    SetService,
    View,
    apply,
    apply_in_place,
    diff,
    diff_nodes,
    diff_service,
    families_touched,
)
from kpng.model import Endpoint, Node, Service, ServiceType, ViewEndpoint
from kpng.sharedviews import SharedOps, SnapshotPrefixes, apply_snapshot
from tests.objects import HTTP, http_port

from .strategies import global_views, node_views

WEB = Service(
    "shop",
    "web",
    ServiceType.CLUSTER_IP,
    ("10.96.0.10",),
    (http_port(),),
)
WEB2 = dataclasses.replace(WEB, type=ServiceType.NODE_PORT)  # the same service, changed
E1 = ViewEndpoint("10.244.1.5", HTTP, internal=True)
E1_OFF = ViewEndpoint("10.244.1.5", HTTP, internal=False)
E2 = ViewEndpoint("10.244.2.5", HTTP, internal=True)
NODE = Node("node-a1", ("192.168.1.11",), "zone-a")


def view(
    services: dict[str, Service] | None = None,
    endpoints: dict[str, dict[str, ViewEndpoint]] | None = None,
    nodes: dict[str, Node] | None = None,
) -> View[ViewEndpoint]:
    return View(services or {}, endpoints or {}, nodes or {})


def test_diff_of_equal_views_is_empty() -> None:
    a = view({"shop/web": WEB}, {"shop/web": {E1.ip: E1}}, {NODE.name: NODE})
    assert diff(a, copy.deepcopy(a)) == []
    assert diff(view(), view()) == []


def test_diff_new_service_sets_it_before_its_endpoints() -> None:
    b = view({"shop/web": WEB}, {"shop/web": {E1.ip: E1, E2.ip: E2}})
    ops = diff(view(), b)
    assert ops[0] == SetService(WEB)
    assert set(map(repr, ops[1:])) == {
        repr(SetEndpoint("shop/web", E1)),
        repr(SetEndpoint("shop/web", E2)),
    }


def test_diff_deleted_service_is_one_operation() -> None:
    a = view({"shop/web": WEB}, {"shop/web": {E1.ip: E1, E2.ip: E2}})
    assert diff(a, view()) == [DeleteService("shop/web")]


def test_diff_changed_endpoint_and_service() -> None:
    a = view({"shop/web": WEB}, {"shop/web": {E1.ip: E1, E2.ip: E2}})
    b = view({"shop/web": WEB2}, {"shop/web": {E1.ip: E1_OFF}})
    assert diff(a, b) == [
        SetService(WEB2),
        DeleteEndpoint("shop/web", E2.ip),
        SetEndpoint("shop/web", E1_OFF),
    ]


def test_diff_service_directly() -> None:
    assert diff_service("shop/web", None, {}, None, {}) == []
    assert diff_service("shop/web", WEB, {E1.ip: E1}, WEB, {E1.ip: E1}) == []
    # Old endpoints of a service that did not exist are ignored.
    assert diff_service("shop/web", None, {E1.ip: E1}, WEB, {E1.ip: E1}) == [
        SetService(WEB),
        SetEndpoint("shop/web", E1),
    ]


def test_diff_nodes() -> None:
    moved = Node("node-a1", ("192.168.1.12",), "zone-a")
    other = Node("node-b1")
    ops: list[Any] = diff_nodes({NODE.name: NODE, other.name: other}, {NODE.name: moved})
    assert ops == [DeleteNode("node-b1"), SetNode(moved)]


def test_apply_leaves_the_input_alone() -> None:
    a = view({"shop/web": WEB}, {"shop/web": {E1.ip: E1}}, {NODE.name: NODE})
    before = copy.deepcopy(a)
    b = apply([SetEndpoint("shop/web", E2), DeleteNode(NODE.name)], a)
    assert a == before
    assert b.endpoints_of("shop/web") == {E1.ip: E1, E2.ip: E2}
    assert b.nodes == {}


def test_apply_removes_emptied_endpoint_tables() -> None:
    a = view({"shop/web": WEB}, {"shop/web": {E1.ip: E1}})
    b = apply([DeleteEndpoint("shop/web", E1.ip)], a)
    assert b == view({"shop/web": WEB})
    assert "shop/web" not in b.endpoints


def test_apply_delete_then_recreate_starts_empty() -> None:
    a = view({"shop/web": WEB}, {"shop/web": {E1.ip: E1}})
    b = apply([DeleteService("shop/web"), SetService(WEB2), SetEndpoint("shop/web", E2)], a)
    assert b == view({"shop/web": WEB2}, {"shop/web": {E2.ip: E2}})


def test_apply_deletes_of_absent_things_are_no_ops() -> None:
    a = view({"shop/web": WEB})
    ops: list[Any] = [
        DeleteService("shop/api"),
        DeleteNode("node-z"),
        DeleteEndpoint("shop/web", "10.0.0.1"),
    ]
    assert apply(ops, a) == a


def test_apply_endpoint_of_unknown_service_is_inconsistent() -> None:
    with pytest.raises(InconsistentOp, match="shop/api"):
        apply([SetEndpoint("shop/api", E1)], view())
    with pytest.raises(InconsistentOp):
        apply([DeleteEndpoint("shop/api", E1.ip)], view())
    with pytest.raises(InconsistentOp):
        apply([DeleteService("shop/web"), SetEndpoint("shop/web", E1)], view({"shop/web": WEB}))


def test_view_counts_and_endpoints_of() -> None:
    a = view({"shop/web": WEB}, {"shop/web": {E1.ip: E1, E2.ip: E2}}, {NODE.name: NODE})
    assert a.counts() == {"services": 1, "endpoints": 2, "nodes": 1}
    assert a.endpoints_of("shop/api") == {}


def _check_invariant(v: View[Any]) -> None:
    assert set(v.endpoints) <= set(v.services)
    assert all(v.endpoints.values())
    for table in v.endpoints.values():
        assert all(ip == e.ip for ip, e in table.items())


@settings(max_examples=100, deadline=None)
@given(node_views(), node_views())
def test_apply_diff_node_views(a: View[ViewEndpoint], b: View[ViewEndpoint]) -> None:
    before = copy.deepcopy(a)
    result = apply(diff(a, b), a)
    assert result == b
    assert a == before
    _check_invariant(result)
    assert diff(b, b) == []


@settings(max_examples=100, deadline=None)
@given(global_views(), global_views())
def test_apply_diff_global_views(a: View[Endpoint], b: View[Endpoint]) -> None:
    result = apply(diff(a, b), a)
    assert result == b
    _check_invariant(result)
    # Diffs compose: a -> b -> a gets back where it started.
    assert apply(diff(b, a), result) == a


@settings(max_examples=50, deadline=None)
@given(node_views(), node_views(), node_views())
def test_apply_diff_chains(
    a: View[ViewEndpoint], b: View[ViewEndpoint], c: View[ViewEndpoint]
) -> None:
    assert apply(diff(b, c), apply(diff(a, b), a)) == c
    assert apply([*diff(a, b), *diff(b, c)], a) == c


# -- snapshots applied run by run (grouped set operations) --------------------------------
def _runs(ops: list[Any], cuts: list[int]) -> list[list[Any]]:
    bounds = sorted({min(c, len(ops)) for c in cuts} | {0, len(ops)})
    return [ops[i:j] for i, j in itertools.pairwise(bounds)]


@settings(max_examples=200, deadline=None)
@given(node_views(), node_views(), st.lists(st.integers(0, 60), max_size=4), st.booleans())
def test_apply_snapshot_is_apply_in_order(
    a: View[ViewEndpoint], b: View[ViewEndpoint], cuts: list[int], shared: bool
) -> None:
    """A snapshot of a, then b's diff (deletes included), cut into runs anywhere."""
    empty: View[ViewEndpoint] = View()
    ops = [*diff(empty, a), *diff(a, b)]
    runs: list[Any] = _runs(ops, cuts)
    if shared:
        runs = [SharedOps(run) for run in runs]
    assert apply_snapshot(runs) == b
    if shared:  # consumers of the same decoded runs share tables until they change them
        first, second = apply_snapshot(runs), apply_snapshot(runs)
        apply_in_place(diff(b, a), first)
        assert (first, second, apply_snapshot(runs)) == (a, b, b)
        apply_in_place(diff(b, a), second)
        assert second == a


@settings(max_examples=150, deadline=None)
@given(node_views(), node_views(), node_views(), st.lists(st.integers(0, 60), max_size=4))
def test_views_built_on_a_shared_prefix_are_right_and_independent(
    a: View[ViewEndpoint], b: View[ViewEndpoint], c: View[ViewEndpoint], cuts: list[int]
) -> None:
    """Two consumers of one process: the same zone runs (a), then each its own run (to b,
    to c). The zone's view is built once; changing one consumer's view changes nothing else."""
    empty: View[ViewEndpoint] = View()
    zone: list[Any] = [SharedOps(run) for run in _runs(diff(empty, a), cuts)]
    prefixes = SnapshotPrefixes()
    first = apply_snapshot([*zone, SharedOps(diff(a, b))], prefixes)
    second = apply_snapshot([*zone, diff(a, c)], prefixes)
    assert (first, second) == (b, c)
    assert prefixes.hits == (1 if len(zone) >= 2 else 0)
    # built on the zone's view: its tables are known shared by identity, no set of keys
    assert len(zone) < 2 or (first.base is second.base is not None and not second.shared)
    apply_in_place(diff(b, c), first)
    apply_in_place(diff(c, a), second)
    assert (first, second) == (c, a)
    assert apply_snapshot([*zone, diff(a, b)], prefixes) == b  # the zone's view unchanged
    assert apply_snapshot(zone, prefixes) == a


def test_shared_prefixes_keep_the_last_few() -> None:
    svc = [Service("d", f"s{i}", ServiceType.CLUSTER_IP, (f"10.96.0.{i}",), ()) for i in range(9)]
    prefixes = SnapshotPrefixes(size=2)
    runs = [
        [SharedOps([SetService(s)]), SharedOps([SetService(s)]), [SetNode(Node("n"))]] for s in svc
    ]
    for r in runs[:3]:
        apply_snapshot(r, prefixes)
    apply_snapshot(runs[2], prefixes)
    apply_snapshot(runs[1], prefixes)
    assert prefixes.hits == 2
    apply_snapshot(runs[0], prefixes)  # evicted: built again
    assert prefixes.hits == 2 and len(prefixes._views) == 2


def test_apply_snapshot_refuses_an_endpoint_before_its_service() -> None:
    svc = Service("d", "s", ServiceType.CLUSTER_IP, ("10.96.0.1",), ())
    ep = ViewEndpoint("10.244.0.1", ())
    bad: list[list[Any]] = [
        [[SetEndpoint("d/s", ep), SetService(svc)]],
        [SharedOps([SetEndpoint("d/s", ep)]), [SetService(svc)]],
    ]
    for runs in bad:
        with pytest.raises(InconsistentOp, match="d/s"):
            apply_snapshot(runs)
    view = apply_snapshot([[SetService(svc)], SharedOps([SetEndpoint("d/s", ep)])])
    assert view.endpoints == {"d/s": {"10.244.0.1": ep}}


@given(node_views(), node_views(), node_views())
def test_apply_returns_a_view_that_changes_in_place_without_touching_its_input(
    a: View[ViewEndpoint], b: View[ViewEndpoint], c: View[ViewEndpoint]
) -> None:
    before = copy.deepcopy(a)
    new = apply(diff(a, b), a)  # shares the tables it did not change with a
    apply_in_place(diff(b, c), new)
    assert (new, a) == (c, before)


def test_an_endpoints_change_touches_its_own_family_alone() -> None:
    """As kube-proxy gives an EndpointSlice to its family's proxier; a service's or a node's
    change may touch both families."""
    v4 = ViewEndpoint("10.244.0.1", ())
    v6 = ViewEndpoint("fd00::1", ())
    assert families_touched([]) == frozenset()
    assert families_touched([SetEndpoint("ns/a", v4), DeleteEndpoint("ns/a", "10.244.0.2")]) == {4}
    assert families_touched([DeleteEndpoint("ns/a", "fd00::2")]) == {6}
    assert families_touched([SetEndpoint("ns/a", v4), SetEndpoint("ns/b", v6)]) == {4, 6}
    svc = Service("ns", "a", ServiceType.CLUSTER_IP, ("10.96.0.1",), ())
    for op in (SetService(svc), DeleteService("ns/a"), SetNode(Node("n1")), DeleteNode("n1")):
        assert families_touched([SetEndpoint("ns/a", v4), op]) == {4, 6}
