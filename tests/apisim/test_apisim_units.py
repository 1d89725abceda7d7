"""Pure parts of the simulator: selectors, patches, the store and its history."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kpng_apisim import ApiError, Store
from kpng_apisim.patches import json_patch, merge_patch, strategic_merge
from kpng_apisim.selectors import parse_field_selector, parse_label_selector

from .conftest import service

pytestmark = pytest.mark.kube


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("", {}, True),
        ("a=b", {"a": "b"}, True),
        ("a==b", {"a": "c"}, False),
        ("a!=b", {}, True),
        ("a!=b", {"a": "b"}, False),
        ("a", {"a": ""}, True),
        ("!a", {"a": ""}, False),
        ("a in (x, y)", {"a": "y"}, True),
        ("a notin (x,y)", {"a": "z"}, True),
        ("a notin (x,y)", {}, True),
        ("a in (x,y),b", {"a": "x"}, False),
        ("n>3", {"n": "4"}, True),
        (
            "!service.kubernetes.io/service-proxy-name,!service.kubernetes.io/headless",
            {"service.kubernetes.io/headless": ""},
            False,
        ),
        (
            "service.kubernetes.io/service-proxy-name=foo",
            {"service.kubernetes.io/service-proxy-name": "foo"},
            True,
        ),
    ],
)
def test_label_selectors(selector: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_label_selector(selector).matches(labels) is expected


@pytest.mark.parametrize("bad", ["a in (", "=b", "a b", "a in (x y)"])
def test_bad_label_selectors_are_400(bad: str) -> None:
    with pytest.raises(ApiError) as info:
        parse_label_selector(bad)
    assert info.value.code == 400


def test_field_selector() -> None:
    selector = parse_field_selector("metadata.name=a,spec.type!=NodePort")
    assert selector.matches_object({"metadata": {"name": "a"}, "spec": {"type": "ClusterIP"}})
    assert not selector.matches_object({"metadata": {"name": "a"}, "spec": {"type": "NodePort"}})


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=3),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=10,
)


@given(
    st.dictionaries(st.text(max_size=3), json_values, max_size=4),
    st.dictionaries(st.text(max_size=3), json_values, max_size=4),
)
def test_merge_patch_is_idempotent(target: dict[str, Any], patch: dict[str, Any]) -> None:
    once = merge_patch(target, patch)
    assert merge_patch(once, patch) == once


def test_json_patch_operations() -> None:
    doc = {"a": [1, 2], "b": {"c": 1}}
    ops = [
        {"op": "add", "path": "/a/-", "value": 3},
        {"op": "replace", "path": "/b/c", "value": 2},
        {"op": "move", "from": "/b/c", "path": "/d"},
        {"op": "copy", "from": "/d", "path": "/e"},
        {"op": "remove", "path": "/a/0"},
        {"op": "test", "path": "/e", "value": 2},
    ]
    assert json_patch(doc, ops) == {"a": [2, 3], "b": {}, "d": 2, "e": 2}
    assert doc == {"a": [1, 2], "b": {"c": 1}}
    with pytest.raises(ApiError):
        json_patch(doc, [{"op": "test", "path": "/a/0", "value": 9}])


def test_strategic_merge_merges_ports_by_key() -> None:
    target = {"spec": {"ports": [{"port": 80, "name": "a"}, {"port": 443, "name": "b"}]}}
    patch = {
        "spec": {
            "$setElementOrder/ports": [{"port": 443}, {"port": 80}],
            "ports": [{"port": 80, "targetPort": 8080}],
        }
    }
    result = strategic_merge(target, patch)
    assert result["spec"]["ports"] == [
        {"port": 443, "name": "b"},
        {"port": 80, "name": "a", "targetPort": 8080},
    ]


def test_store_versions_history_and_compaction() -> None:
    store = Store()
    first = store.create("services", service("a"))
    rv1 = int(first["metadata"]["resourceVersion"])
    first["spec"]["ports"][0]["port"] = 81
    second = store.update("services", first)
    assert int(second["metadata"]["resourceVersion"]) == rv1 + 1
    assert second["metadata"]["generation"] == 2
    assert second["metadata"]["uid"] == first["metadata"]["uid"]
    _, at_rv1 = store.list("services", at_rv=rv1)
    assert at_rv1[0]["spec"]["ports"][0]["port"] == 80
    store.compact()
    with pytest.raises(ApiError) as info:
        store.list("services", at_rv=rv1)
    assert info.value.code == 410
    with pytest.raises(ApiError):
        store.subscribe("services", None, rv1)


def test_store_history_limit_compacts() -> None:
    store = Store(max_history=5)
    for i in range(10):
        store.create("nodes", {"metadata": {"name": f"n{i}"}})
    assert store.compacted_rv == store.resource_version - 5


def test_service_allocations_are_released_and_rolled_back() -> None:
    store = Store()
    svc = service("a")
    svc["spec"]["type"] = "NodePort"  # type: ignore[index]
    created = store.create("services", svc)
    ip = created["spec"]["clusterIP"]
    store.delete("services", "a", "default")
    assert ip not in store.allocator.ips and not store.allocator.ports
    bad = service("b")
    bad["spec"].update(type="NodePort", ports=[{"port": 1}, {"port": 2, "nodePort": 5}])  # type: ignore[attr-defined]
    with pytest.raises(ApiError) as info:
        store.create("services", bad)
    assert info.value.code == 422
    assert not store.allocator.ips and not store.allocator.ports
