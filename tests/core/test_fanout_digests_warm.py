"""A watcher's node digests are computed with its initial load, not when first asked.

A standby that takes over ticks every node with its digest and answers every rebase request
at once: at 1,000 nodes and 10,000 services x 10, computing them then took 2.4 s, more than
the whole failover may take (issue 13: every agent current within 1 s)."""

from __future__ import annotations

import pytest

import kpng.fanout.digests
from kpng.digest import view_digest
from kpng.fanout.cluster import ClusterState
from kpng.fanout.fanout import Fanout
from kpng_scale.synth import Cluster, Spec, node_name


def _loaded() -> Fanout:
    state = ClusterState()
    state.replace(Cluster(Spec(9, 60, 3, 5)).objects(), 0.0)
    fanout = Fanout("e1", max_payload=64 * 1024)
    fanout.load(state)
    return fanout


def test_after_the_load_every_node_digest_is_known_without_hashing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fanout = _loaded()

    def no_hashing(*args: object) -> int:
        raise AssertionError("a digest computed after the load")

    for name in ("service_hash", "table_hash"):  # (a Node object is hashed each time)
        monkeypatch.setattr(kpng.fanout.digests, name, no_hashing)
    digests = {node_name(i): fanout.node_digest(node_name(i)) for i in range(9)}
    assert len(digests) == 9 and all(len(d) == 16 for d in digests.values())


def test_the_digests_computed_with_the_load_are_the_views_digests() -> None:
    from kpng.bus.codec import decode
    from kpng.bus.consumer import Consumer

    fanout = _loaded()
    for i in range(9):
        consumer: Consumer[object] = Consumer()
        consumer.on_snapshot([decode(c, "node") for c in fanout.snapshot(node_name(i), 0.0)])
        v = consumer.view
        assert (
            fanout.node_digest(node_name(i))
            == f"{view_digest(v.services, v.endpoints, v.nodes):016x}"
        )
