"""The view digest: the test vectors of docs/bus.md, and a digest kept current op by op."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings

from kpng.diff import View, apply, apply_in_place, diff
from kpng.digest import (
    encode_endpoint,
    encode_node,
    encode_service,
    endpoint_hash,
    node_hash,
    service_hash,
    to_hex,
    view_digest,
)
from kpng.model import Node, PortMarks, Service, ServiceType, ViewEndpoint
from tests.objects import HTTP, TCP, UDP, http_port

from .strategies import global_views, node_views

WEB = Service(
    "default",
    "web",
    ServiceType.CLUSTER_IP,
    ("10.96.0.10",),
    (http_port(),),
)
EP = ViewEndpoint(
    "10.244.1.1",
    HTTP,
    "node-a",
    "zone-1",
    ready=True,
    serving=True,
    terminating=False,
    internal=True,
    external=True,
)
NODE = Node("node-a", ("192.168.0.10",), "zone-1", "")
NODE_WITH_PODS = dataclasses.replace(NODE, pod_cidrs=("10.244.1.0/24",))
NODE_DELETING = dataclasses.replace(NODE, deleting=True)
MARKED = EP.with_port_marks((PortMarks("metrics", TCP, False, True),))
SHORTCUT = dataclasses.replace(EP, internal=False, external=False, shortcut=True)

# (encoding, hash) of each item, and the view's digest: also in docs/bus.md
VECTORS = {
    "service": (
        "530000000764656661756c740000000377656200000009436c757374657249500000000100"
        "00000a31302e39362e302e3130000000010000000468747470000000035443500000000000"
        "000050690000000000001f9000000000000000000000000000000000000000000000000000"
        "00000000000007436c757374657200000007436c75737465720000000000000000000000"
        "000000000000000000",
        "3fe2e1f1023d7d13",
    ),
    "endpoint": (
        "450000000b64656661756c742f7765620000000a31302e3234342e312e3100000001000000"
        "0468747470000000035443500000000000001f90000000066e6f64652d61000000067a6f6e"
        "652d310101000101",
        "df3da0fadfcfcbc2",
    ),
    # the endpoint with a port mark: metrics/TCP external only (a view's endpoint has such
    # marks only for ports whose own selection differs; see kpng.fanout.views)
    "endpoint with port marks": (
        "450000000b64656661756c742f7765620000000a31302e3234342e312e31000000010000"
        "000468747470000000035443500000000000001f90000000066e6f64652d610000000"
        "67a6f6e652d3101010001015000000001000000076d6574726963730000000354435000"
        "01",
        "27d93d11ab739942",
    ),
    # the endpoint elsewhere, marked shortcut only (both policies Local: see kpng.fanout.views)
    "endpoint marked shortcut": (
        "450000000b64656661756c742f7765620000000a31302e3234342e312e3100000001000000"
        "0468747470000000035443500000000000001f90000000066e6f64652d61000000067a6f6e"
        "652d31010100000053",
        "54bca9d8888f71a0",
    ),
    "node": (
        "4e000000066e6f64652d61000000010000000c3139322e3136382e302e3130000000067a6f"
        "6e652d3100000000",
        "bee21c445f107353",
    ),
    # the node with its spec.podCIDRs (a node without encodes as above)
    "node with pod CIDRs": (
        "4e000000066e6f64652d61000000010000000c3139322e3136382e302e3130000000067a6f"
        "6e652d310000000050000000010000000d31302e3234342e312e302f3234",
        "6829ef3251b8d4e7",
    ),
    # the node going away (a deletionTimestamp or the autoscaler's taint)
    "node deleting": (
        "4e000000066e6f64652d61000000010000000c3139322e3136382e302e3130000000067a6f"
        "6e652d310000000044",
        "dec509c03510c795",
    ),
}
VIEW_DIGEST = "5e3d5d4f82e2c582"


def test_the_vectors_of_the_contract() -> None:
    items = {
        "service": (encode_service(WEB), service_hash(WEB)),
        "endpoint": (encode_endpoint(WEB.key, EP), endpoint_hash(WEB.key, EP)),
        "endpoint with port marks": (
            encode_endpoint(WEB.key, MARKED),
            endpoint_hash(WEB.key, MARKED),
        ),
        "endpoint marked shortcut": (
            encode_endpoint(WEB.key, SHORTCUT),
            endpoint_hash(WEB.key, SHORTCUT),
        ),
        "node": (encode_node(NODE), node_hash(NODE)),
        "node with pod CIDRs": (encode_node(NODE_WITH_PODS), node_hash(NODE_WITH_PODS)),
        "node deleting": (encode_node(NODE_DELETING), node_hash(NODE_DELETING)),
    }
    for name, (encoding, digest) in items.items():
        assert (encoding.hex(), to_hex(digest)) == VECTORS[name], name
    view = View({WEB.key: WEB}, {WEB.key: {EP.ip: EP}}, {NODE.name: NODE})
    assert to_hex(view.digest()) == VIEW_DIGEST
    assert to_hex(View().digest()) == "0" * 16


def test_the_doc_states_the_same_vectors() -> None:
    doc = Path(__file__).parents[2].joinpath("docs", "bus.md").read_text()
    text = re.sub(r"\s+", "", doc)
    for encoding, digest in VECTORS.values():
        assert encoding in text and digest in text
    assert VIEW_DIGEST in text


def test_every_field_counts() -> None:
    base = to_hex(view_digest({WEB.key: WEB}, {WEB.key: {EP.ip: EP}}, {}))
    moved = dataclasses.replace(EP, external=False)
    assert to_hex(view_digest({WEB.key: WEB}, {WEB.key: {EP.ip: moved}}, {})) != base
    # port marks count, each of their fields too
    hashes = {to_hex(view_digest({WEB.key: WEB}, {WEB.key: {EP.ip: MARKED}}, {})), base}
    (mark,) = MARKED.port_marks
    for change in ({"name": "http"}, {"protocol": UDP}, {"internal": True}, {"external": False}):
        marks = (dataclasses.replace(mark, **change),)
        e = EP.with_port_marks(marks)
        hashes.add(to_hex(view_digest({WEB.key: WEB}, {WEB.key: {EP.ip: e}}, {})))
    assert len(hashes) == 6
    # the same endpoint under another service is another item
    other = {WEB.key: WEB, "default/api": WEB}
    assert view_digest(other, {"default/api": {EP.ip: EP}}, {}) != view_digest(
        other, {WEB.key: {EP.ip: EP}}, {}
    )


def _kept(a: View[Any], b: View[Any]) -> None:
    view = apply(diff(View(), a), View())
    view.digest()
    apply_in_place(diff(a, b), view)
    assert view == b
    assert view.known_digest == view_digest(b.services, b.endpoints, b.nodes)


@settings(max_examples=200, deadline=None)
@given(node_views(), node_views())
def test_a_node_views_digest_is_kept_current_by_its_operations(
    a: View[ViewEndpoint], b: View[ViewEndpoint]
) -> None:
    _kept(a, b)


@settings(max_examples=100, deadline=None)
@given(global_views(), global_views())
def test_a_global_views_digest_is_kept_current_by_its_operations(
    a: View[Any], b: View[Any]
) -> None:
    _kept(a, b)


def test_shared_tables_are_hashed_once_and_give_the_same_digest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Views sharing endpoint tables (copy-on-write) hash each shared table once."""
    from kpng import digest as d

    ep = ViewEndpoint("10.244.0.1", (), "n1", "z1", True, True, False, True, True)
    tables = {f"ns/s{i}": {"10.244.0.1": ep} for i in range(3)}
    plain = d.view_digest({}, tables, {})
    calls: list[str] = []
    real = d.table_hash
    monkeypatch.setattr(d, "table_hash", lambda k, t: calls.append(k) or real(k, t))
    monkeypatch.setattr(d, "SHARED_TABLES", d._ByIdentity())
    for _ in range(5):  # five views of one zone
        assert d.view_digest({}, tables, {}, shared=lambda key, table: True) == plain
    assert sorted(calls) == sorted(tables)
    other = ViewEndpoint("10.244.0.2", (), "n1", "z1", True, True, False, True, True)
    changed = {**tables, "ns/s0": {"10.244.0.2": other}}  # a view's own (copied) table
    assert d.view_digest({}, changed, {}, shared=lambda k, t: t is tables.get(k)) != plain


def test_views_copied_from_a_zone_view_digest_as_computed_from_scratch() -> None:
    """A process's consumers of one zone copy the zone's view (SnapshotPrefixes): a view's
    digest starts from that view's and corrects what differs; it equals the digest from
    scratch, also after deltas."""
    from kpng.bus.codec import OpCache, decode
    from kpng.bus.consumer import Consumer
    from kpng.digest import view_digest
    from kpng.fanout.cluster import ClusterState
    from kpng.fanout.fanout import Fanout
    from kpng_scale.synth import Cluster, Spec, node_name

    cluster = Cluster(Spec(12, 300, 3, 7))
    state = ClusterState()
    state.replace(cluster.objects(), 0.0)
    fanout = Fanout("e1", max_payload=16 * 1024)
    fanout.load(state)
    cache = OpCache()
    consumers = []
    for i in range(12):
        chunks = fanout.snapshot(node_name(i), 0.0, compact=True, zstd=True)
        consumer: Consumer[Any] = Consumer(prefixes=cache.prefixes)
        consumer.on_snapshot([decode(c, "node", cache) for c in chunks])
        consumers.append(consumer)
    copied = [c for c in consumers if c.view.origin is not None]
    assert copied, "no view was copied from a zone view"
    for c in consumers:
        v = c.view
        assert v.digest() == view_digest(v.services, v.endpoints, v.nodes)
    for step in range(5):  # deltas keep it current from there
        changes = state.upsert(cluster.change(1.0 + step), 1.0 + step)
        for out in fanout.publish(state, changes, 1.0 + step):
            if out.node is not None:
                consumers[int(out.node.rsplit("-", 1)[1])].on_delta(decode(out.data, "node"))
    for c in consumers:
        v = c.view
        assert v.digest() == view_digest(v.services, v.endpoints, v.nodes)
