"""The CLI's pure parts: SSE parsing, tables and explanations from the observer's JSON, and
its arguments (flags over KPNG_* variables)."""

from __future__ import annotations

import argparse

import pytest

from kpng.runtime.config import apply_settings
from kpng_cli.main import destination, parser
from kpng_cli.render import event_line, explain_text, services_table, status_summary, status_table
from kpng_cli.sse import SseEvent, parse_events


def test_sse_events_are_split_on_blank_lines_and_comments_skipped() -> None:
    lines = [
        ": keep-alive\n",
        "id: 4\n",
        "event: node\n",
        'data: {"node": "a", "state": "ok"}\n',
        "\n",
        "event: reset\n",
        "data: not json\n",
        "\n",
        "event: half\n",  # no blank line yet: not an event
    ]
    assert list(parse_events(lines)) == [
        SseEvent("node", {"node": "a", "state": "ok"}, "4"),
        SseEvent("reset", "not json", None),
    ]


NODES = [
    {
        "name": "node-a",
        "state": "ok",
        "published": {"epoch": "e", "seq": 7},
        "applied": {"seq": 7, "backend": "nftables", "errors": [], "warnings": []},
        "lag": None,
    },
    {
        "name": "node-b",
        "state": "lagging",
        "published": {"epoch": "e", "seq": 9},
        "applied": {
            "seq": 5,
            "backend": "nftables",
            "errors": ["nft: boom"],
            "warnings": ["bridge(s) cni0 carry pod addresses"],
        },
        "lag": {"seqs": 4, "since": 1.0, "seconds": 2.5},
    },
    {"name": "node-c", "state": "unknown", "published": {"epoch": "", "seq": -1}, "lag": None},
]


def test_the_status_table_shows_state_lag_errors_and_warnings() -> None:
    lines = status_table(NODES).splitlines()
    assert lines[0].split() == [
        "NODE", "STATE", "APPLIED", "PUBLISHED", "LAG", "BACKEND", "ERRORS", "WARNINGS",
    ]  # fmt: skip
    assert lines[1].split() == ["node-a", "ok", "7", "7", "-", "nftables", "-", "-"]
    assert lines[2].startswith("node-b") and "4 seqs, 2.5s" in lines[2]
    assert "nft: boom" in lines[2] and "cni0" in lines[2]
    assert lines[3].split()[:4] == ["node-c", "unknown", "-", "-"]
    # columns line up: every row's STATE starts where the header's does
    column = lines[0].index("STATE")
    assert all(line[column - 1] == " " and line[column] != " " for line in lines)
    assert status_summary(NODES) == "3 nodes: 1 lagging, 1 ok, 1 unknown"


def test_the_services_table() -> None:
    services = [
        {
            "ns": "demo",
            "name": "web",
            "type": "NodePort",
            "cluster_ips": ["10.96.10.1"],
            "ports": [{"port": 80, "proto": "TCP", "node_port": 30080}],
            "endpointCounts": {"total": 3, "usable": 2},
        }
    ]
    row = services_table(services).splitlines()[1].split()
    assert row == ["demo/web", "NodePort", "10.96.10.1", "80:30080/TCP", "2/3"]


def test_an_explanation_as_text() -> None:
    result = {
        "node": "node-a",
        "epoch": "e",
        "seq": 3,
        "verdict": "forward",
        "match": "clusterIP",
        "service": "demo/web",
        "port": "http",
        "masquerade": None,
        "affinityTimeout": None,
        "targets": [{"ip": "10.244.1.2", "port": 8080, "node": "node-a", "local": True,
                     "terminating": False}],
        "reasons": ["the destination is a cluster IP"],
    }  # fmt: skip
    text = explain_text(result, "TCP", "10.96.10.1:80")
    assert text.splitlines() == [
        "node-a: TCP 10.96.10.1:80 -> forward (clusterIP of demo/web, port http)",
        "  masquerade: depends on the source",
        "  -> 10.244.1.2:8080 on node-a (local)",
        "  because the destination is a cluster IP",
        "  (node view epoch e, seq 3)",
    ]


def test_an_event_line() -> None:
    assert event_line(SseEvent("node", {"b": 1, "a": 2}, "9")) == '9 node {"a": 2, "b": 1}'


@pytest.mark.parametrize(
    ("text", "parsed"), [("10.96.0.1:80", ("10.96.0.1", 80)), ("[fd00::1]:53", ("fd00::1", 53))]
)
def test_destination(text: str, parsed: tuple[str, int]) -> None:
    assert destination(text) == parsed


@pytest.mark.parametrize("text", ["10.96.0.1", "10.96.0.1:0", ":80", "x:http"])
def test_bad_destination(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        destination(text)


def test_options_read_kpng_variables_and_flags_win() -> None:
    p = parser()
    apply_settings(p, {}, "", {"KPNG_OBSERVER": "http://obs:8080", "KPNG_TOKEN": "t1",
                               "KPNG_OUTPUT": "json"})  # fmt: skip
    args = p.parse_args(["status"])
    assert (args.observer, args.token, args.output) == ("http://obs:8080", "t1", "json")
    assert p.parse_args(["-o", "table", "status"]).output == "table"
