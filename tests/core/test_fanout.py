"""The watcher's fan-out: every node rebuilt from snapshot + deltas equals its computed view."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from kpng.cluster import ClusterState
from kpng.codec import Delta, Scope, SnapshotChunk, decode
from kpng.diff import View, apply
from kpng.fanout import Fanout
from kpng.model import (
    Endpoint,
    EndpointPort,
    EndpointSlice,
    Node,
    Protocol,
    Service,
    ServicePort,
    ServiceType,
    TrafficPolicy,
)

NODES = ("n1", "n2", "n3", "n4")
PORT = (EndpointPort("http", Protocol.TCP, 8080),)


def make_service(i: int, itp: bool, etp: bool, topo: bool, tier: str = "") -> Service:
    return Service(
        namespace="default",
        name=f"s{i}",
        type=ServiceType.NODE_PORT,
        cluster_ips=(f"10.96.0.{i}",),
        ports=(ServicePort("http", Protocol.TCP, 80, 8080, 30000 + i),),
        internal_traffic_policy=TrafficPolicy.LOCAL if itp else TrafficPolicy.CLUSTER,
        external_traffic_policy=TrafficPolicy.LOCAL if etp else TrafficPolicy.CLUSTER,
        traffic_distribution="PreferClose" if topo else "",
        labels=(("tier", tier),) if tier else (),
    )


endpoint = st.builds(
    Endpoint,
    ip=st.sampled_from([f"10.244.0.{i}" for i in range(1, 7)]),
    ports=st.just(PORT),
    node=st.sampled_from(NODES),
    zone=st.sampled_from(("z1", "z2")),
    ready=st.booleans(),
    serving=st.booleans(),
    terminating=st.booleans(),
    zone_hints=st.frozensets(st.sampled_from(("z1", "z2")), max_size=2),
    node_hints=st.frozensets(st.sampled_from(NODES), max_size=1),
)
service = st.builds(make_service, st.integers(1, 3), st.booleans(), st.booleans(), st.booleans())
endpoint_slice = st.builds(
    lambda i, eps: EndpointSlice("default", f"s{i}-a", f"s{i}", "IPv4", tuple(eps)),
    st.integers(1, 3),
    st.lists(endpoint, max_size=4),
)
node = st.builds(Node, name=st.sampled_from(NODES), zone=st.sampled_from(("z1", "z2", "")))
change = st.one_of(
    st.tuples(st.just("upsert"), st.one_of(service, endpoint_slice, node)),
    st.tuples(
        st.just("delete"), st.sampled_from(("Service", "EndpointSlice", "Node")), st.integers(1, 3)
    ),
)


def _delete_key(kind: str, i: int) -> str:
    return {"Service": f"default/s{i}", "EndpointSlice": f"default/s{i}-a", "Node": NODES[i]}[kind]


def _from_snapshot(chunks: list[bytes], scope: Scope = "node") -> tuple[int, View[Any]]:
    decoded = [decode(c, scope) for c in chunks]
    assert all(isinstance(c, SnapshotChunk) for c in decoded)
    ops = [op for c in decoded if isinstance(c, SnapshotChunk) for op in c.ops]
    first = decoded[0]
    assert isinstance(first, SnapshotChunk)
    return first.seq, apply(ops, View())


@settings(max_examples=150, deadline=None)
@given(
    initial=st.lists(st.one_of(service, endpoint_slice, node), max_size=6),
    batches=st.lists(st.lists(change, min_size=1, max_size=4), max_size=5),
    max_payload=st.sampled_from((400, 1024 * 1024)),
)
def test_snapshot_plus_deltas_equal_every_node_view(
    initial: list[Any], batches: list[list[Any]], max_payload: int
) -> None:
    cluster = ClusterState()
    cluster.replace(initial)
    fanout = Fanout("e1", max_payload)
    fanout.load(cluster)
    views = {}
    for name in NODES:
        seq, view = _from_snapshot(fanout.snapshot(name))
        assert view == cluster.node_view(name)
        views[name] = (seq, view)
    global_seq, global_view = _from_snapshot(fanout.global_snapshot(), "global")
    for batch in batches:
        changes = cluster.replace([], kinds=())
        for kind, *args in batch:
            if kind == "upsert":
                changes.merge(cluster.upsert(args[0], 1.0))
            else:
                changes.merge(cluster.delete(args[0], _delete_key(args[0], args[1] % 3)))
        for out in fanout.publish(cluster, changes, 2.0):
            delta = decode(out.data, "node" if out.node else "global")
            assert isinstance(delta, Delta)
            assert len(out.data) <= max_payload or len(delta.ops) == 1
            if out.node is None:
                assert delta.seq == global_seq + 1
                global_seq, global_view = delta.seq, apply(delta.ops, global_view)
            else:
                seq, view = views[out.node]
                assert delta.seq == seq + 1
                views[out.node] = (delta.seq, apply(delta.ops, view))
        for name in NODES:
            assert views[name][1] == cluster.node_view(name), name
            assert _from_snapshot(fanout.snapshot(name)) == views[name]
        assert global_view == cluster.global_view()


def test_node_independent_change_is_encoded_once() -> None:
    cluster = ClusterState()
    cluster.replace([Node(f"n{i}") for i in range(50)])
    fanout = Fanout("e1")
    fanout.load(cluster)
    svc = make_service(1, False, False, False)
    changes = cluster.upsert(svc)
    fanout.publish(cluster, changes, 1.0)
    before = fanout.stats.encodings
    ep = Endpoint("10.244.0.1", PORT, node="n1")
    changes = cluster.upsert(EndpointSlice("default", "s1-a", "s1", "IPv4", (ep,)))
    out = fanout.publish(cluster, changes, 1.0)
    assert len(out) == 51  # 50 nodes and the global subject
    # one endpoint op for all nodes, one for the global view (it carries hints)
    assert fanout.stats.encodings - before == 2
    assert max(len(o.data) for o in out) < 300


def test_idle_nodes_without_node_object_are_retired_and_come_back_with_a_gap() -> None:
    cluster = ClusterState()
    cluster.replace([Node("n1")])
    fanout = Fanout("e1")
    fanout.load(cluster)
    fanout.snapshot("ghost", now=10.0)
    assert set(fanout.seq) == {"n1", "ghost"}
    svc = make_service(1, False, False, False)
    fanout.publish(cluster, cluster.upsert(svc), 11.0)
    assert fanout.seq["ghost"] == 1
    assert fanout.retire_idle(now=100.0, idle=600.0, keep=cluster.nodes) == []
    assert fanout.retire_idle(now=700.0, idle=600.0, keep=cluster.nodes) == ["ghost"]
    assert {o.node for o in fanout.ticks(700.0)} == {"n1", None}
    fanout.publish(cluster, cluster.upsert(make_service(2, False, False, False)), 701.0)
    assert fanout.serve("ghost", 702.0)
    # seq 2 was never published to it: a consumer still at seq 1 sees the gap and resyncs
    assert fanout.seq["ghost"] == 2
    _, view = _from_snapshot(fanout.snapshot("ghost", 702.0))
    assert set(view.services) == {"default/s1", "default/s2"}


def test_a_label_change_reaches_only_the_global_view() -> None:
    cluster = ClusterState()
    cluster.replace([Node("n1"), make_service(1, False, False, False, "web")])
    fanout = Fanout("e1")
    fanout.load(cluster)
    _, global_view = _from_snapshot(fanout.global_snapshot(), "global")
    assert global_view.services["default/s1"].labels == (("tier", "web"),)
    _, node_view = _from_snapshot(fanout.snapshot("n1"))
    assert node_view.services["default/s1"].labels == ()
    out = fanout.publish(cluster, cluster.upsert(make_service(1, False, False, False, "db")), 1.0)
    assert [o.node for o in out] == [None]
