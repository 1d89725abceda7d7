"""The fast paths the scale work added behave exactly like the plain ones."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from kpng.bus.codec import Delta, MalformedMessage, OpCache, decode, encode
from kpng.diff import InconsistentOp, View, apply, apply_in_place, diff
from kpng.model import Node
from tests.core.test_fanout import NODES, endpoint, make_service

view = st.builds(
    lambda services, eps, nodes: _view(services, eps, nodes),
    st.lists(
        st.builds(make_service, st.integers(1, 4), st.booleans(), st.booleans(), st.just(False)),
        max_size=4,
    ),
    st.lists(st.tuples(st.integers(1, 4), endpoint), max_size=8),
    st.lists(st.sampled_from(NODES), max_size=3),
)


def _view(services: list[Any], eps: list[Any], nodes: list[str]) -> View[Any]:
    v: View[Any] = View()
    for s in services:
        v.services[s.key] = s
    for i, e in eps:
        key = f"default/s{i}"
        if key in v.services:
            v.endpoints.setdefault(key, {})[e.ip] = e
    v.nodes = {n: Node(n) for n in nodes}
    return v


def _copy(v: View[Any]) -> View[Any]:
    return View(dict(v.services), {k: dict(e) for k, e in v.endpoints.items()}, dict(v.nodes))


@settings(max_examples=200, deadline=None)
@given(view, view, st.data())
def test_apply_in_place_is_apply(a: View[Any], b: View[Any], data: st.DataObject) -> None:
    ops = diff(a, b)
    ops = data.draw(st.permutations(ops)) if data.draw(st.booleans()) else ops
    try:
        expected: View[Any] | None = apply(ops, a)
    except InconsistentOp:
        expected = None
    target = _copy(a)
    if expected is None:
        try:
            apply_in_place(ops, target)
        except InconsistentOp:
            assert target == a  # all or nothing
            return
        raise AssertionError("apply_in_place accepted what apply refused")
    assert apply_in_place(ops, target) == expected


@settings(max_examples=200, deadline=None)
@given(view, view, st.binary(max_size=8))
def test_decode_with_op_cache_is_decode(a: View[Any], b: View[Any], junk: bytes) -> None:
    data = encode(Delta("e", 1, 1.0, None, tuple(diff(a, b))))
    cache = OpCache()
    for _ in range(2):  # a miss, then hits
        assert decode(data, "global", cache) == decode(data, "global")
    for bad in (data + junk, data[: len(data) // 2], junk):
        try:
            plain: Any = decode(bad, "global")
        except MalformedMessage as exc:
            plain = str(exc)
        try:
            cached: Any = decode(bad, "global", cache)
        except MalformedMessage as exc:
            cached = str(exc)
        assert cached == plain


@settings(max_examples=100, deadline=None)
@given(view, view)
def test_a_shared_ops_array_is_decoded_once(a: View[Any], b: View[Any]) -> None:
    ops = tuple(diff(a, b))
    cache = OpCache()
    for seq in (1, 2, 3):  # the same run of operations in several nodes' messages
        data = encode(Delta("e", seq, 1.0, None, ops))
        assert decode(data, "global", cache) == decode(data, "global")
    assert cache.array_hits == 2
