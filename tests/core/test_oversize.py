"""An operation that cannot fit a message is refused at the fan-out: the service's version
as published stays (or none), nothing oversize reaches a delta, a snapshot or the history."""

from __future__ import annotations

import dataclasses

from kpng.bus.codec import Delta, SnapshotChunk, decode, encode_op
from kpng.diff import SetEndpoint, SetService
from kpng.fanout.cluster import ClusterState
from kpng.fanout.fanout import Fanout
from kpng.fanout.oversize import VIEW_MARGIN, oversize_op
from kpng.fanout.views import service_view
from kpng.model import (
    Endpoint,
    EndpointPort,
    EndpointSlice,
    Node,
    Service,
    ServicePort,
    ServiceType,
)
from tests.objects import TCP

MAX_PAYLOAD = 64 * 1024
KEY = "default/big"


def big(ports: int) -> Service:
    return Service(
        "default",
        "big",
        ServiceType.CLUSTER_IP,
        cluster_ips=("10.96.0.20",),
        ports=tuple(ServicePort(f"p{i}", TCP, i + 1, i + 1) for i in range(ports)),
    )


def slice_(ports: int, ip: str = "10.244.0.1") -> EndpointSlice:
    port_list = tuple(EndpointPort(f"p{i}", TCP, i + 1) for i in range(ports))
    return EndpointSlice("default", "big-a", "big", "IPv4", (Endpoint(ip, port_list, "n1"),))


def loaded(*objects: object) -> tuple[Fanout, ClusterState]:
    cluster = ClusterState()
    cluster.replace((Node("n1"), *objects))  # type: ignore[arg-type]
    fanout = Fanout("e1", MAX_PAYLOAD)
    fanout.load(cluster)
    return fanout, cluster


def ops_of(messages: list[bytes]) -> list[object]:
    out: list[object] = []
    for data in messages:
        message = decode(data)
        assert isinstance(message, SnapshotChunk | Delta)
        out.extend(message.ops)
    return out


def test_a_service_version_too_large_for_a_message_is_refused_and_the_old_one_kept() -> None:
    fanout, cluster = loaded(big(2))
    changes = cluster.upsert(big(10_000), 1.0)
    out = fanout.publish(cluster, changes, 1.0)
    assert all(o.size <= MAX_PAYLOAD for o in out)
    assert [o for o in out if o.body] == []  # no delta carries any operation of it
    assert fanout.refused == {KEY: oversize_op(cluster.service_state(KEY), MAX_PAYLOAD - 160)}
    assert fanout.take_refusals() == [(KEY, fanout.refused[KEY])]
    assert fanout.take_refusals() == []
    assert fanout.stats.refused_services == 1
    snapshot = fanout.snapshot("n1")
    assert all(len(chunk) <= MAX_PAYLOAD for chunk in snapshot)
    [spec] = [op.service for op in ops_of(snapshot) if isinstance(op, SetService)]
    assert len(spec.ports) == 2  # the previous version
    assert fanout.catch_up("n1", "e1", 0) is not None


def test_a_fixed_version_is_published_again_from_the_old_one() -> None:
    fanout, cluster = loaded(big(2))
    fanout.publish(cluster, cluster.upsert(big(10_000), 1.0), 1.0)
    out = fanout.publish(cluster, cluster.upsert(big(3), 2.0), 2.0)
    assert fanout.refused == {}
    ops = ops_of([o.data for o in out if o.node == "n1"])
    assert [len(op.service.ports) for op in ops if isinstance(op, SetService)] == [3]
    catch_up = fanout.catch_up("n1", "e1", 0)
    assert catch_up is not None and all(len(c) <= MAX_PAYLOAD for c in catch_up)


def test_an_oversize_service_at_the_initial_load_is_never_published() -> None:
    fanout, _ = loaded(big(10_000))
    assert KEY in fanout.refused and fanout.stats.refused_services == 1
    snapshot = fanout.snapshot("n1")
    assert all(len(chunk) <= MAX_PAYLOAD for chunk in snapshot)
    assert not [op for op in ops_of(snapshot) if isinstance(op, SetService)]


def test_an_endpoint_too_large_for_a_message_refuses_the_service_version() -> None:
    fanout, cluster = loaded(big(2), slice_(2))
    out = fanout.publish(cluster, cluster.upsert(slice_(10_000, "10.244.0.2"), 1.0), 1.0)
    assert KEY in fanout.refused
    assert all(o.size <= MAX_PAYLOAD for o in out) and [o for o in out if o.body] == []
    assert "10.244.0.2" not in str(ops_of(fanout.snapshot("n1")))


def test_a_deletion_is_never_refused() -> None:
    fanout, cluster = loaded(big(2))
    fanout.publish(cluster, cluster.upsert(big(10_000), 1.0), 1.0)
    fanout.publish(cluster, cluster.delete("Service", KEY, 2.0), 2.0)
    assert fanout.refused == {}
    assert not [op for op in ops_of(fanout.snapshot("n1")) if isinstance(op, SetService)]


def test_oversize_op_encodes_an_endpoint_only_when_its_bound_does_not_fit() -> None:
    cluster = ClusterState()
    cluster.replace((big(2), slice_(2)))
    assert oversize_op(cluster.service_state(KEY), 4096) == 0
    assert oversize_op(cluster.service_state(KEY), 100) > 100


def test_an_endpoint_whose_node_view_port_marks_cannot_fit_is_refused() -> None:
    """The old pod lists 300 long-named ports and serves them while terminating; the new
    one is ready and lists one: a node view marks the old pod for 299 ports of its own
    (kpng.fanout.views), so its operation is larger than the global one by nearly its port
    list, and cannot fit where the service's and the global endpoint's do."""
    names = [f"{i:03d}-" + "x" * 56 for i in range(300)]
    service = dataclasses.replace(
        big(0), ports=tuple(ServicePort(n, TCP, i + 1, i + 1) for i, n in enumerate(names))
    )
    ports = tuple(EndpointPort(n, TCP, i + 1) for i, n in enumerate(names))
    old = Endpoint("10.244.0.1", ports, "n1", ready=False, terminating=True)
    new = Endpoint("10.244.0.2", ports[:1], "n1")
    cluster = ClusterState()
    cluster.replace((service, EndpointSlice("default", "big-a", "big", "IPv4", (old, new))))
    state = cluster.service_state(KEY)
    (marked, _) = service_view(service, state.endpoints, "n1", "")
    assert len(marked.port_marks) == len(names) - 1
    node_op = len(encode_op(SetEndpoint(KEY, marked)))
    fits = max(len(encode_op(SetService(service))), len(encode_op(SetEndpoint(KEY, old))))
    limit = fits + VIEW_MARGIN + 8
    assert node_op > limit  # the node view's operation cannot fit...
    assert oversize_op(state, limit) > limit - VIEW_MARGIN  # ...so the version is refused
    alone = ClusterState()  # one endpoint: no port marks, the global operation's room
    alone.replace((service, EndpointSlice("default", "big-a", "big", "IPv4", (old,))))
    assert oversize_op(alone.service_state(KEY), limit) == 0
