"""The one rule for node names (DNS-1123 subdomain, <= 253) and where it is applied."""

from __future__ import annotations

import pytest

from kpng.bus.subjects import Subjects
from kpng.model import NAME_MAX, name_problem, shown_name
from kpng.parse import InvalidObject, parse_node

VALID = [
    "n1",
    "node-a1",
    "ip-10-0-0-1.eu-west-1.compute.internal",
    "a" * 63,
    "0x",
    "a." * 126 + "a",
]
INVALID = ["", "*", ">", "a b", "a_b", "A", "-a", "a-", "a..b", ".a", "a.", "x" * 5000, "é", "a\n"]


@pytest.mark.parametrize("name", VALID)
def test_kubernetes_names_are_valid(name: str) -> None:
    assert name_problem(name) == ""
    assert Subjects().node_name_of(Subjects().node_status(name)) == name


@pytest.mark.parametrize("name", INVALID)
def test_other_names_are_refused_with_a_reason(name: str) -> None:
    assert name_problem(name)
    with pytest.raises(ValueError, match="invalid node name"):
        Subjects.token(name)


def test_length_limit_is_253() -> None:
    longest = ("a" * 62 + ".") * 4 + "a"
    assert len(longest) == NAME_MAX
    assert name_problem(longest) == ""
    assert "254 characters" in name_problem(longest + "a")


def test_non_strings_are_refused() -> None:
    assert "expected a string" in name_problem(None)
    assert "expected a string" in name_problem(5)


def test_node_name_of_refuses_tokens_that_are_no_names() -> None:
    s = Subjects()
    for token in ["A", "a b", "x" * 300, "-x", "__"]:
        assert s.node_name_of(f"kpng.v1.node.{token}.status") is None
    assert s.node_name_of("kpng.v1.node.a_b.status") == "a.b"
    assert s.node_name_of("kpng.v1.global.delta") is None


def test_shown_name_cuts_long_names() -> None:
    assert shown_name("n1") == "'n1'"
    shown = shown_name("x" * 5000)
    assert len(shown) < 100 and "5000 chars" in shown


@pytest.mark.parametrize("name", ["*", ">", "a b", "x" * 5000, "Node1"])
def test_parse_node_refuses_names_that_are_no_kubernetes_names(name: str) -> None:
    obj = {"kind": "Node", "metadata": {"name": name}, "status": {}}
    with pytest.raises(InvalidObject, match=r"metadata\.name") as err:
        parse_node(obj)
    assert len(str(err.value)) < 300  # a hostile name is not copied into every log line


def test_parse_node_accepts_a_kubernetes_name() -> None:
    assert parse_node({"kind": "Node", "metadata": {"name": "a.b-c"}}).name == "a.b-c"


def test_an_endpoint_slice_naming_an_invalid_node_is_invalid() -> None:
    from kpng.parse import parse_endpoint_slice

    raw = {
        "kind": "EndpointSlice",
        "metadata": {
            "name": "web-1",
            "namespace": "default",
            "labels": {"kubernetes.io/service-name": "web"},
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.244.0.1"], "nodeName": "Node_1"}],
    }
    with pytest.raises(InvalidObject, match=r"nodeName"):
        parse_endpoint_slice(raw)
    raw["endpoints"][0]["nodeName"] = "node-1"  # type: ignore[index]
    assert parse_endpoint_slice(raw).endpoints[0].node == "node-1"  # type: ignore[union-attr]
