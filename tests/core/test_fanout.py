"""The watcher's fan-out: every node rebuilt from snapshot + deltas equals its computed view."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kpng.bus.codec import Delta, Scope, SnapshotChunk, Tick, decode
from kpng.bus.consumer import Applied, Consumer, Resync
from kpng.diff import SetEndpoint, SetService, View, apply, apply_in_place, diff
from kpng.digest import to_hex
from kpng.fanout.cluster import Changes, ClusterState
from kpng.fanout.fanout import Fanout, Outgoing
from kpng.model import Endpoint, EndpointSlice, Node, Service, ServiceType, TrafficPolicy
from tests.objects import HTTP, http_port

NODES = ("n1", "n2", "n3", "n4")


def make_service(i: int, itp: bool, etp: bool, topo: bool, tier: str = "") -> Service:
    return Service(
        namespace="default",
        name=f"s{i}",
        type=ServiceType.NODE_PORT,
        cluster_ips=(f"10.96.0.{i}",),
        ports=(http_port(30000 + i),),
        internal_traffic_policy=TrafficPolicy.LOCAL if itp else TrafficPolicy.CLUSTER,
        external_traffic_policy=TrafficPolicy.LOCAL if etp else TrafficPolicy.CLUSTER,
        traffic_distribution="PreferClose" if topo else "",
        labels=(("tier", tier),) if tier else (),
    )


endpoint = st.builds(
    Endpoint,
    ip=st.sampled_from([f"10.244.0.{i}" for i in range(1, 7)]),
    ports=st.just(HTTP),
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


def _changes(cluster: ClusterState, batch: list[Any]) -> Changes:
    """Apply a batch of drawn changes to ``cluster``; what changed."""
    changes = cluster.replace([], kinds=())
    for kind, *args in batch:
        if kind == "upsert":
            changes.merge(cluster.upsert(args[0], 1.0))
        else:
            changes.merge(cluster.delete(args[0], _delete_key(args[0], args[1] % 3)))
    return changes


def _from_snapshot(chunks: list[bytes], scope: Scope = "node") -> tuple[int, View[Any]]:
    """Decoded and applied in order (a node's own part comes after its zone's)."""
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
    max_payload=st.sampled_from((1024, 1024 * 1024)),
)
def test_snapshot_plus_deltas_equal_every_node_view(
    initial: list[Any], batches: list[list[Any]], max_payload: int
) -> None:
    cluster = ClusterState()
    cluster.replace(initial)
    fanout = Fanout("e1", max_payload, compress_min=0)  # every run compressed when asked
    fanout.load(cluster)
    views = {}
    kept: dict[str, View[Any]] = {}  # each node's view with its digest kept current
    for name in NODES:
        seq, view = _from_snapshot(fanout.snapshot(name))
        assert view == cluster.node_view(name)
        _assert_every_form_is(fanout, name, (seq, view))
        views[name] = (seq, view)
        kept[name] = apply(view_ops(view), View())
        kept[name].digest()
    global_seq, global_view = _from_snapshot(fanout.global_snapshot(), "global")
    for batch in batches:
        for out in fanout.publish(cluster, _changes(cluster, batch), 2.0):
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
                apply_in_place(delta.ops, kept[out.node])
        for name in NODES:
            assert views[name][1] == cluster.node_view(name), name
            _assert_every_form_is(fanout, name, views[name])
            scratch = cluster.node_view(name).digest()
            assert kept[name].known_digest == scratch, name  # kept current op by op
            assert fanout.node_digest(name) == to_hex(scratch), name  # the watcher's too
        assert global_view == cluster.global_view()
        assert fanout.global_digest() == to_hex(cluster.global_view().digest())
        assert _from_snapshot(fanout.global_snapshot(zstd=True), "global")[1] == global_view


def view_ops(view: View[Any]) -> list[Any]:
    return diff(View(), view)


def _assert_every_form_is(fanout: Fanout, name: str, expected: tuple[int, View[Any]]) -> None:
    """Plain, compact, compressed and both: the same view at the same seq."""
    for compact in (False, True):
        plain = fanout.snapshot(name, compact=compact)
        assert _from_snapshot(plain) == expected
        assert all("zops" not in msgpack.unpackb(c) for c in plain)  # only when asked
        chunks = fanout.snapshot(name, compact=compact, zstd=True)
        assert _from_snapshot(chunks) == expected
        for c in chunks:
            keys = msgpack.unpackb(c).keys()
            assert ("ops" in keys) != ("zops" in keys)


def test_node_independent_change_is_encoded_once() -> None:
    cluster = ClusterState()
    cluster.replace([Node(f"n{i}") for i in range(50)])
    fanout = Fanout("e1")
    fanout.load(cluster)
    svc = make_service(1, False, False, False)
    changes = cluster.upsert(svc)
    fanout.publish(cluster, changes, 1.0)
    before = fanout.stats.encodings
    ep = Endpoint("10.244.0.1", HTTP, node="n1")
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


# -- catch-up -------------------------------------------------------------------------------
def _chunks(data: list[bytes]) -> list[SnapshotChunk]:
    decoded = [decode(c) for c in data]
    assert all(isinstance(c, SnapshotChunk) for c in decoded)
    return [c for c in decoded if isinstance(c, SnapshotChunk)]


def _publish(fanout: Fanout, cluster: ClusterState, batch: list[Any]) -> None:
    fanout.publish(cluster, _changes(cluster, batch), 2.0)


@settings(max_examples=150, deadline=None)
@given(
    initial=st.lists(st.one_of(service, endpoint_slice, node), max_size=6),
    batches=st.lists(st.lists(change, min_size=1, max_size=4), max_size=8),
    history=st.integers(0, 4),
    max_payload=st.sampled_from((1024, 1024 * 1024)),
    data=st.data(),
)
def test_snapshot_at_a_plus_catch_up_to_b_is_the_view_at_b(
    initial: list[Any],
    batches: list[list[Any]],
    history: int,
    max_payload: int,
    data: st.DataObject,
) -> None:
    cluster = ClusterState()
    cluster.replace(initial)
    fanout = Fanout("e1", max_payload, history=history, compress_min=0)
    fanout.load(cluster)
    cut = data.draw(st.integers(0, len(batches)), label="consumer stops after batch")
    for batch in batches[:cut]:
        _publish(fanout, cluster, batch)
    held = {name: _from_snapshot(fanout.snapshot(name)) for name in NODES}
    for batch in batches[cut:]:
        _publish(fanout, cluster, batch)
    for name in NODES:
        a, view = held[name]
        b = fanout.seq[name]
        reply = fanout.catch_up(name, "e1", a)
        if b - a > history and b > a:  # the history does not reach back that far: full
            assert reply is None
            continue
        assert reply is not None, (a, b, history)
        zstd = fanout.catch_up(name, "e1", a, zstd=True)
        assert zstd is not None and _chunks(zstd) == _chunks(reply)
        chunks = _chunks(reply)
        assert all(c.base == a and c.seq == b for c in chunks)
        assert all(len(c) <= max_payload for c in reply if len(reply) > 1)
        consumer: Consumer[Any] = Consumer(view, "e1", a, synced=False, trusted=True)
        [event] = consumer.on_snapshot(chunks)
        assert isinstance(event, Applied) and event.kind == "delta" and event.seq == b
        assert consumer.view == cluster.node_view(name), name
        assert (consumer.epoch, consumer.seq, consumer.synced) == ("e1", b, True)
        assert fanout.catch_up(name, "e2", a) is None  # another epoch: full


def test_catch_up_is_refused_after_retire_and_bounded_by_bytes() -> None:
    cluster = ClusterState()
    cluster.replace([Node("n1")])
    fanout = Fanout("e1", history=100, history_bytes=300)  # a run is ~126 bytes
    fanout.load(cluster)
    fanout.snapshot("ghost", now=10.0)
    for i in range(1, 4):
        fanout.publish(cluster, cluster.upsert(make_service(i, False, False, False)), 11.0)
    assert fanout.seq["n1"] == 3
    assert fanout.catch_up("n1", "e1", 2) is not None
    assert fanout.catch_up("n1", "e1", 0) is None  # 3 runs exceed 300 bytes
    [empty] = _chunks(fanout.catch_up("n1", "e1", 3) or [])
    assert (empty.base, empty.seq, empty.ops) == (3, 3, ())
    assert fanout.catch_up("n1", "e1", 4) is None  # ahead of the watcher: full
    assert fanout.catch_up("n1", "e1", -1) is None
    assert fanout.retire_idle(now=700.0, idle=600.0, keep=cluster.nodes) == ["ghost"]
    assert fanout.catch_up("ghost", "e1", 3) is None  # served again: its view moved unseen
    assert fanout.seq["ghost"] == 4
    assert fanout.stats.catchups == 2


def _catch_up_chunk(base: int, seq: int, ops: tuple[Any, ...] = ()) -> SnapshotChunk:
    return SnapshotChunk("e1", seq, 0, 1, ops, base)


SVC = make_service(1, False, False, False)
EP = SetEndpoint(SVC.key, Endpoint("10.244.0.1", HTTP, node="n1"))


def _synced_consumer() -> Consumer[Any]:
    consumer: Consumer[Any] = Consumer()
    assert consumer.since() is None  # no view yet: full snapshot
    [event] = consumer.on_snapshot([SnapshotChunk("e1", 5, 0, 1, (SetService(SVC),))])
    assert isinstance(event, Applied) and event.kind == "snapshot"
    assert consumer.since() == ("e1", 5)
    return consumer


def test_consumer_applies_a_catch_up_at_its_seq_as_a_delta_then_buffered_deltas() -> None:
    consumer = _synced_consumer()
    consumer.start_resync()
    assert consumer.since() == ("e1", 5)
    consumer.on_delta(Delta("e1", 7, 1.0, 0.5, ()))  # buffered while the reply is on its way
    consumer.on_delta(Delta("e1", 8, 1.0, 0.5, ()))
    events = consumer.on_snapshot([_catch_up_chunk(5, 7, (EP,))])
    assert [(e.kind, e.seq) for e in events if isinstance(e, Applied)] == [
        ("delta", 7),
        ("delta", 8),
    ]
    assert isinstance(events[0], Applied) and events[0].ops == (EP,)
    assert "10.244.0.1" in consumer.view.endpoints_of(SVC.key)
    assert (consumer.seq, consumer.synced, consumer.since()) == (8, True, ("e1", 8))


def test_consumer_up_to_date_gets_an_empty_delta() -> None:
    consumer = _synced_consumer()
    consumer.start_resync()
    [event] = consumer.on_snapshot([_catch_up_chunk(5, 5)])
    assert isinstance(event, Applied) and (event.kind, event.seq, event.ops) == ("delta", 5, ())


@pytest.mark.parametrize(
    "chunk",
    [
        SnapshotChunk("e1", 7, 0, 1, (), 4),  # based on a seq we are not at
        SnapshotChunk("e2", 7, 0, 1, (), 5),  # another epoch
        SnapshotChunk("e1", 7, 0, 1, (SetEndpoint("default/none", EP.endpoint),), 5),  # no fit
    ],
)
def test_consumer_refuses_a_catch_up_that_does_not_fit_and_asks_for_a_full_snapshot(
    chunk: SnapshotChunk,
) -> None:
    consumer = _synced_consumer()
    consumer.start_resync()
    [result] = consumer.on_snapshot([chunk])
    assert isinstance(result, Resync)
    assert (consumer.synced, consumer.since(), consumer.seq) == (False, None, 5)
    assert set(consumer.view.services) == {SVC.key}  # the view stays as it was


def test_consumer_distrusts_its_view_after_an_op_that_does_not_fit() -> None:
    consumer = _synced_consumer()
    [result] = consumer.on_delta(
        Delta("e1", 6, 1.0, None, (SetEndpoint("default/x", EP.endpoint),))
    )
    assert isinstance(result, Resync)
    assert consumer.since() is None
    [bad] = consumer.on_snapshot([SnapshotChunk("e1", 9, 0, 1, (EP,), -1)])  # no svc op: bad
    assert isinstance(bad, Resync) and consumer.since() is None
    [ok] = consumer.on_snapshot([SnapshotChunk("e1", 9, 0, 1, (SetService(SVC), EP))])
    assert isinstance(ok, Applied) and consumer.since() == ("e1", 9)


# -- snapshots a zone shares ----------------------------------------------------------------
def _ops_arrays(chunks: list[bytes]) -> list[bytes]:
    """Each chunk's encoded ``ops`` array (what a process following many nodes caches)."""
    out = []
    for data in chunks:
        unpacker = msgpack.Unpacker(raw=False)
        unpacker.feed(data)
        for _ in range(unpacker.read_map_header()):
            key = unpacker.unpack()
            start = unpacker.tell()
            unpacker.skip()
            if key == "ops":
                out.append(data[start : unpacker.tell()])
    return out


def _zone_cluster() -> ClusterState:
    nodes = [Node(f"n{i}", zone="z1" if i < 3 else "z2") for i in range(1, 5)]
    services = [make_service(i, itp=i == 1, etp=False, topo=i == 2) for i in range(1, 4)]
    slices = [
        EndpointSlice(
            "default",
            f"s{i}-a",
            f"s{i}",
            "IPv4",
            tuple(
                Endpoint(
                    f"10.244.{i}.{n}",
                    HTTP,
                    node=f"n{n}",
                    zone="z1" if n < 3 else "z2",
                    zone_hints=frozenset({"z1" if n < 3 else "z2"}),
                )
                for n in range(1, 5)
            ),
        )
        for i in range(1, 4)
    ]
    cluster = ClusterState()
    cluster.replace([*nodes, *services, *slices])
    return cluster


@pytest.mark.parametrize("compact", [False, True])
def test_nodes_of_a_zone_share_their_zone_part_byte_for_byte(compact: bool) -> None:
    cluster = _zone_cluster()
    fanout = Fanout("e1", max_payload=600)
    fanout.load(cluster)
    parts = {n: _ops_arrays(fanout.snapshot(n, compact=compact)) for n in ("n1", "n2", "n3")}
    # n1 and n2 (zone z1) are each special to s1 (iTP Local, an endpoint on each): their
    # last chunk is their own; every chunk before it is the same bytes
    shared = parts["n1"][:-1]
    assert len(shared) >= 2 and parts["n2"][:-1] == shared
    assert parts["n1"][-1] != parts["n2"][-1]
    assert parts["n3"][:-1] != shared  # zone z2 sees other endpoints of s2 (hints)
    for name in ("n1", "n2", "n3", "n4"):
        _, view = _from_snapshot(fanout.snapshot(name, compact=compact))
        assert view == cluster.node_view(name)


def test_a_compact_snapshot_is_smaller_and_sends_endpoints_as_eps() -> None:
    cluster = _zone_cluster()
    fanout = Fanout("e1")
    fanout.load(cluster)
    plain, compact = fanout.snapshot("n4"), fanout.snapshot("n4", compact=True)
    assert b"eps" in compact[0] and b"eps" not in plain[0]
    assert sum(map(len, compact)) < 0.7 * sum(map(len, plain))


def _nodes(out: list[Outgoing]) -> set[str | None]:
    return {o.node for o in out}


def test_ticks_follow_the_last_delta_of_a_burst_and_a_full_round_reaches_everyone() -> None:
    """The global subject gets its tick every time (one message); nodes only when due."""
    cluster = ClusterState()
    cluster.replace([Node("n1"), Node("n2")])
    fanout = Fanout("e1")
    fanout.load(cluster)
    assert _nodes(fanout.ticks(1.0, quiet=1.0, full=True)) == {"n1", "n2", None}
    assert _nodes(fanout.ticks(2.0, quiet=1.0, full=False)) == {None}  # nothing new since
    fanout.publish(cluster, cluster.upsert(make_service(1, False, False, False)), 10.0)
    fanout.publish(cluster, cluster.upsert(Node("n1", zone="z1")), 10.5)  # n1's own view
    assert fanout.seq == {"n1": 2, "n2": 1}
    assert _nodes(fanout.ticks(10.9, quiet=1.0, full=False)) == {None}  # bursts may go on
    first = [o for o in fanout.ticks(11.2, quiet=1.0, full=False) if o.node]
    assert _nodes(first) == {"n2"}  # quiet since 10.0; n1 only since 10.5
    later = [o for o in fanout.ticks(11.6, quiet=1.0, full=False) if o.node]
    assert _nodes(later) == {"n1"}
    ticks = {o.node: decode(o.data) for o in [*first, *later]}
    assert {n: (t.epoch, t.seq) for n, t in ticks.items() if isinstance(t, Tick)} == {
        "n1": ("e1", 2),
        "n2": ("e1", 1),
    }
    assert _nodes(fanout.ticks(20.0, quiet=1.0, full=False)) == {None}
    assert _nodes(fanout.ticks(40.0, quiet=1.0, full=True)) == {"n1", "n2", None}


# -- compressed snapshots ("zstd", only to consumers that ask for them) --------------------
def _big_cluster(services: int = 120, endpoints: int = 10, local: bool = True) -> ClusterState:
    nodes = [Node(f"n{i}", zone="z1" if i < 3 else "z2") for i in range(1, 5)]
    objects: list[Any] = [*nodes]
    for i in range(services):
        objects.append(make_service(i, itp=local and i % 10 == 3, etp=False, topo=False))
        eps = tuple(
            Endpoint(f"10.{i // 250}.{i % 250}.{e}", HTTP, node=f"n{e % 4 + 1}")
            for e in range(endpoints)
        )
        objects.append(EndpointSlice("default", f"s{i}-a", f"s{i}", "IPv4", eps))
    cluster = ClusterState()
    cluster.replace(objects)
    return cluster


def test_a_compressed_snapshot_is_a_fraction_and_the_zone_part_is_compressed_once() -> None:
    cluster = _big_cluster()
    fanout = Fanout("e1", max_payload=8192)  # several chunks of a zone part
    fanout.load(cluster)
    compact = fanout.snapshot("n1", compact=True)
    before = fanout.stats.compressions
    assert before == 0  # nothing compressed for a consumer that did not ask
    first = fanout.snapshot("n1", compact=True, zstd=True)
    assert sum(map(len, first)) < 0.5 * sum(map(len, compact))
    assert fanout.stats.compressed_out < 0.5 * fanout.stats.compressed_in
    zone_frames = fanout.stats.compressions
    assert zone_frames >= 3
    # n2 shares n1's zone: its zone part is the same frames, not compressed again; only its
    # own part (it is special to the iTP Local services with endpoints on it) may be
    second = fanout.snapshot("n2", compact=True, zstd=True)
    assert fanout.stats.compressions <= zone_frames + 1
    zone = [msgpack.unpackb(c).get("zops") for c in first[:-1]]  # the last one is n1's own
    assert sum(1 for f in zone if f) >= 2  # (a short last run of the zone may go plain)
    assert [msgpack.unpackb(c).get("zops") for c in second[:-1]] == zone
    for name, chunks in (("n1", first), ("n2", second)):
        assert _from_snapshot(chunks)[1] == cluster.node_view(name)
    # a changed service means new frames for the next snapshot
    eps = (Endpoint("10.99.0.1", HTTP, node="n1"),)
    changes = cluster.upsert(EndpointSlice("default", "s0-a", "s0", "IPv4", eps), 3.0)
    fanout.publish(cluster, changes, 3.0)
    again = fanout.snapshot("n1", compact=True, zstd=True)
    assert fanout.stats.compressions > zone_frames + 1
    assert _from_snapshot(again)[1] == cluster.node_view("n1")


def test_a_view_of_one_message_is_compressed_once_per_zone_too() -> None:
    """The zone part that fits in one chunk is not merged with each node's own part and
    compressed per node (at N=5,000 that cost 15 s of a storm)."""
    cluster = _big_cluster(local=False)  # a node's own part is only its Node: not compressed
    fanout = Fanout("e1")
    fanout.load(cluster)
    snapshots = {n: fanout.snapshot(n, compact=True, zstd=True) for n in ("n1", "n2", "n3")}
    assert fanout.stats.compressions == 2  # zones z1 (n1, n2) and z2 (n3)
    assert (
        msgpack.unpackb(snapshots["n1"][0])["zops"] == msgpack.unpackb(snapshots["n2"][0])["zops"]
    )
    for name, chunks in snapshots.items():
        assert _from_snapshot(chunks)[1] == cluster.node_view(name)


def test_a_large_catch_up_is_compressed_for_a_consumer_that_asks() -> None:
    cluster = _big_cluster(services=40)
    fanout = Fanout("e1")
    fanout.load(cluster)
    for i in range(40):  # every service's endpoints replaced: a catch-up of several KB
        eps = tuple(Endpoint(f"10.99.{i}.{e}", HTTP, node=f"n{e % 4 + 1}") for e in range(10))
        changes = cluster.upsert(EndpointSlice("default", f"s{i}-a", f"s{i}", "IPv4", eps), 5.0)
        fanout.publish(cluster, changes, 5.0)
    plain, zstd = fanout.catch_up("n1", "e1", 0), fanout.catch_up("n1", "e1", 0, zstd=True)
    assert plain is not None and zstd is not None
    assert "zops" in msgpack.unpackb(zstd[0]) and "zops" not in msgpack.unpackb(plain[0])
    assert sum(map(len, zstd)) < 0.5 * sum(map(len, plain))
    assert _chunks(zstd) == _chunks(plain)


def test_a_snapshot_event_carries_its_runs_as_one_sequence() -> None:
    cluster = _big_cluster(services=30)
    fanout = Fanout("e1", max_payload=2048)
    fanout.load(cluster)
    chunks = _chunks(fanout.snapshot("n1", compact=True))
    assert len(chunks) > 2
    [event] = Consumer().on_snapshot(chunks)
    assert isinstance(event, Applied) and event.kind == "snapshot"
    joined = tuple(op for c in chunks for op in c.ops)
    assert len(event.ops) == len(joined) and tuple(event.ops) == joined
    assert event.ops == joined and event.ops[5] == joined[5] and event.ops[-3:] == joined[-3:]
    assert apply(event.ops, View()) == cluster.node_view("n1")


def test_a_service_of_many_endpoints_fits_the_max_payload_in_every_form() -> None:
    """One eps operation of 20,000 endpoints is ~700 KB: it is split, never sent whole
    in a message over the limit (NATS would refuse it and the node would never sync)."""
    eps = tuple(
        Endpoint(f"10.{i >> 16}.{(i >> 8) & 255}.{i & 255}", HTTP, node=f"n{i % 4 + 1}")
        for i in range(20_000)
    )
    big = EndpointSlice("default", "s0-a", "s0", "IPv4", eps)
    cluster = ClusterState()
    cluster.replace([Node("n1", zone="z1"), make_service(0, False, False, False), big])
    fanout = Fanout("e1", max_payload=64 * 1024)
    fanout.load(cluster)
    for compact, zstd in ((False, False), (True, False), (True, True)):
        chunks = fanout.snapshot("n1", compact=compact, zstd=zstd)
        assert len(chunks) > 2 and max(map(len, chunks)) <= 64 * 1024
        assert _from_snapshot(chunks)[1] == cluster.node_view("n1")
    replaced = EndpointSlice("default", "s0-a", "s0", "IPv4", eps[::2])
    out = fanout.publish(cluster, cluster.upsert(replaced, 2.0), 2.0)
    assert len(out) > 2 and max(o.size for o in out) <= 64 * 1024


# -- digests: integrity and rebase (docs/bus.md 7b) ------------------------------------------
def test_a_tick_with_the_views_digest_changes_nothing_another_makes_a_full_resync() -> None:
    consumer = _synced_consumer()
    own = consumer.digest()
    assert own == to_hex(View({SVC.key: SVC}).digest())
    assert consumer.on_tick(Tick("e1", 5, 1.0, own)) == []
    assert consumer.on_tick(Tick("e1", 4, 1.0)) == []  # no digest: an older watcher
    [result] = consumer.on_tick(Tick("e1", 5, 1.0, "0123456789abcdef"))
    assert isinstance(result, Resync) and "digest" in result.reason
    assert (consumer.synced, consumer.since()) == (False, None)  # not trusted: full


def test_a_tick_behind_the_applied_seq_makes_a_full_resync() -> None:
    consumer = _synced_consumer()
    [result] = consumer.on_tick(Tick("e1", 4, 1.0, consumer.digest()))
    assert isinstance(result, Resync)
    assert consumer.since() is None


def test_a_rebase_moves_a_trusted_view_to_the_new_epoch_without_operations() -> None:
    consumer = _synced_consumer()
    view = consumer.view
    consumer.start_resync()
    [event] = consumer.on_snapshot([SnapshotChunk("e2", 0, 0, 1, (), 5, "e1")])
    assert isinstance(event, Applied) and (event.kind, event.ops) == ("delta", ())
    assert (consumer.epoch, consumer.seq, consumer.synced) == ("e2", 0, True)
    assert consumer.view is view and consumer.since() == ("e2", 0)
    consumer.start_resync()
    [refused] = consumer.on_snapshot([SnapshotChunk("e3", 0, 0, 1, (), 5, "e1")])  # not at e1/5
    assert isinstance(refused, Resync) and consumer.since() is None


def test_the_watcher_rebases_only_a_view_with_its_digest() -> None:
    cluster = ClusterState()
    cluster.replace([make_service(i, i == 1, False, i == 2) for i in range(3)])
    fanout = Fanout("e2")
    fanout.load(cluster)
    digest = to_hex(cluster.node_view("n1").digest())
    assert fanout.rebase("n1", "e2", 3, digest) is None  # its own epoch: a catch-up's job
    assert fanout.rebase("n1", "e1", 3, "0123456789abcdef") is None
    [chunk] = _chunks([fanout.rebase("n1", "e1", 3, digest) or b""])
    assert (chunk.epoch, chunk.seq, chunk.base, chunk.base_epoch, chunk.ops) == (
        "e2",
        0,
        3,
        "e1",
        (),
    )
    assert fanout.stats.rebases == 1
    whole = to_hex(cluster.global_view().digest())
    assert fanout.global_rebase("e1", 3, "0123456789abcdef") is None
    assert fanout.global_rebase("e2", 3, whole) is None
    [chunk] = _chunks([fanout.global_rebase("e1", 3, whole) or b""])
    assert (chunk.epoch, chunk.base, chunk.base_epoch, chunk.ops) == ("e2", 3, "e1", ())


def served_one_node() -> tuple[Fanout, str]:
    """A fan-out of epoch e2 serving node n1 a one-service view, and that view's digest."""
    cluster = ClusterState()
    cluster.replace([make_service(1, False, False, False)])
    fanout = Fanout("e2")
    fanout.load(cluster)
    fanout.serve("n1")
    return fanout, fanout.node_digest("n1")


def test_the_watcher_ticks_at_once_a_node_that_reports_a_view_it_did_not_publish() -> None:
    fanout, digest = served_one_node()
    assert fanout.check("n1", "e2", 0, digest, 1.0) is None  # in sync
    assert fanout.check("n1", "", -1, "", 1.0) is None  # nothing programmed yet
    for epoch, seq, other in (("e2", 0, "0123456789abcdef"), ("e2", 1, ""), ("e1", 7, digest)):
        tick = decode(fanout.check("n1", epoch, seq, other, 1.0) or b"")
        assert tick == Tick("e2", 0, 1.0, digest), (epoch, seq)


def test_a_consumer_without_port_marks_gets_ticks_without_digest_and_is_not_checked() -> None:
    """An agent of before port marks ignores them: its digest of a view that holds some can
    never be the watcher's, and each check would resync it (thousands of full snapshots a
    second, seen over NATS). Asking without "marks" turns the node's digests off; a
    consumer asking with it turns them on again."""
    fanout, digest = served_one_node()
    fanout.holds_marks("n1", False)
    assert fanout.check("n1", "e2", 0, "0123456789abcdef", 1.0) is None
    assert decode(fanout.check("n1", "e1", 7, digest, 1.0) or b"") == Tick("e2", 0, 1.0, "")
    ticks = {o.node: decode(o.data) for o in fanout.ticks(5.0, full=True)}
    assert ticks["n1"] == Tick("e2", 0, 5.0, "")
    fanout.holds_marks("n1", True)
    tick = decode(fanout.check("n1", "e2", 0, "0123456789abcdef", 1.0) or b"")
    assert tick == Tick("e2", 0, 1.0, digest)
    ticks = {o.node: decode(o.data) for o in fanout.ticks(6.0, full=True)}
    assert ticks["n1"] == Tick("e2", 0, 6.0, digest)
