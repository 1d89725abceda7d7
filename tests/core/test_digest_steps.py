"""A view's digest computed ahead of need: in steps, across changes, and from a zone's view
once per process (a follower of many nodes hashes each zone once, not each view)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kpng import digest
from kpng.diff import SetEndpoint, SetNode, SetService, View, apply, apply_in_place, diff
from kpng.digest import view_digest
from kpng.model import Node, Service, ServiceType, ViewEndpoint
from kpng.sharedviews import SharedOps, SnapshotPrefixes, apply_snapshot
from tests.objects import HTTP, http_port

from .strategies import node_views


def _scratch(v: View[Any]) -> int:
    return view_digest(v.services, v.endpoints, v.nodes)


def _advance(steps: Iterator[None], n: int) -> None:
    for _ in range(n):
        if next(steps, StopIteration) is StopIteration:
            return


@settings(max_examples=150, deadline=None)
@given(node_views(), node_views(), node_views(), st.integers(0, 6), st.integers(0, 6))
def test_a_digest_computed_in_steps_counts_the_changes_made_between_them(
    a: View[ViewEndpoint], b: View[ViewEndpoint], c: View[ViewEndpoint], i: int, j: int
) -> None:
    view = apply(diff(View(), a), View())
    _advance(view.digest_steps(budget=1), i)  # left unfinished: resumed by the next call
    apply_in_place(diff(a, b), view)
    steps = view.digest_steps(budget=1)
    _advance(steps, j)
    apply_in_place(diff(b, c), view)
    for _ in steps:
        pass
    assert view.known_digest == _scratch(c) and view.partial is None
    apply_in_place(diff(c, a), view)  # then kept current op by op
    assert view.known_digest == _scratch(a)


@settings(max_examples=100, deadline=None)
@given(node_views(), node_views(), node_views(), st.integers(0, 4))
def test_a_view_copied_from_a_zone_view_corrects_only_what_changed(
    a: View[ViewEndpoint], b: View[ViewEndpoint], c: View[ViewEndpoint], i: int
) -> None:
    zone = [SharedOps(run) for run in (diff(View(), a)[:3], diff(View(), a)[3:])]
    prefixes = SnapshotPrefixes()
    first = apply_snapshot([*zone, diff(a, b)], prefixes)
    second = apply_snapshot([*zone, diff(a, c)], prefixes)
    _advance(first.digest_steps(budget=1), i)  # the zone's view: partly hashed
    apply_in_place(diff(b, c), first)
    apply_in_place(diff(c, b), second)
    assert (first.digest(), second.digest()) == (_scratch(c), _scratch(b))


def _service(i: int) -> Service:
    return Service("default", f"s{i}", ServiceType.CLUSTER_IP, (f"10.96.0.{i}",), (http_port(),))


def _endpoint(i: int, local: bool = False) -> ViewEndpoint:
    return ViewEndpoint(f"10.244.0.{i}", HTTP, "node-a" if local else "node-b", "zone-1")


def test_views_on_one_zone_view_hash_only_their_own_part(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two nodes of a zone in one process: the zone's runs (a service with 200 endpoints),
    then each node's own run, which changes one of those endpoints. The zone is hashed
    once; each node's view then hashes only its own part (2 endpoints), not its tables."""
    svc = _service(1)
    eps = [SetEndpoint(svc.key, _endpoint(i)) for i in range(200)]
    zone = [SharedOps([SetService(svc), *eps[:100]]), SharedOps(eps[100:])]
    prefixes = SnapshotPrefixes()
    views = [
        apply_snapshot([*zone, [SetEndpoint(svc.key, _endpoint(7, local=True)), SetNode(n)]], p)
        for n, p in ((Node("node-a"), prefixes), (Node("node-b"), prefixes))
    ]
    hashed: list[bytes] = []
    plain = digest._hash
    monkeypatch.setattr(digest, "_hash", lambda data: hashed.append(data) or plain(data))
    views[0].digest()
    assert len([h for h in hashed if h[:1] == b"E"]) >= 200  # the zone's, once
    hashed.clear()
    views[1].digest()
    assert len([h for h in hashed if h[:1] == b"E"]) == 2  # its endpoint and the zone's
    monkeypatch.undo()
    assert [v.known_digest for v in views] == [_scratch(v) for v in views]
