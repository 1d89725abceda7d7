"""The observer over a real bus: lag and silence, latency, explain, programming, SSE, metrics."""

from __future__ import annotations

import copy
import json
import socket
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.harness import Deployment, wait_until
from tests.observer.cluster import NODES, objects, slice_
from tests.observer.conftest import SILENT_AFTER, start_observer

pytestmark = pytest.mark.integration


def get(url: str, **params: Any) -> Any:
    response = httpx.get(url, params=params, timeout=5)
    response.raise_for_status()
    return response.json()


def with_web_endpoints(count: int) -> list[dict[str, Any]]:
    """The test cluster with ``count`` extra ready endpoints for demo/web."""
    objs = copy.deepcopy(objects())
    extra = [(f"10.244.2.{100 + i}", "node-a2", "ready") for i in range(count)]
    port = [{"name": "http", "port": 8080, "protocol": "TCP"}]
    base = [("10.244.1.20", "node-a1", "ready"), ("10.244.3.20", "node-b1", "ready")]
    index = next(i for i, o in enumerate(objs) if o["metadata"]["name"] == "web-1")
    objs[index] = slice_("demo", "web", port, base + extra)
    return objs


def change_web(deployment: Deployment, count: int) -> None:
    deployment.write_cluster(with_web_endpoints(count))
    deployment.wait_converged(*NODES, timeout=10)


def test_latency_percentiles_after_changes(deployment: Deployment, observer: str) -> None:
    for i in range(1, 7):
        change_web(deployment, i)
        time.sleep(0.3)

    def enough() -> bool:
        return bool(get(f"{observer}/api/v1/latency")["cluster"]["count"] >= 6 * len(NODES))

    wait_until("every node's latency samples", enough, timeout=10)
    latency = get(f"{observer}/api/v1/latency", window=120)
    cluster = latency["cluster"]
    print("network programming latency:", json.dumps(latency))
    assert 0 < cluster["p50"] <= cluster["p90"] <= cluster["p99"] <= cluster["max"] < 5
    assert set(latency["nodes"]) == set(NODES)
    assert all(n["count"] >= 6 for n in latency["nodes"].values())

    programming = get(f"{observer}/api/v1/services/demo/web/programming")
    assert programming["programmedOn"] == sorted(NODES)
    assert all(n["requiredSeq"] >= 6 for n in programming["nodes"])


def test_stopped_agent_shows_as_silent(deployment: Deployment, observer: str) -> None:
    deployment.agents["node-b1"].kill()
    started = time.monotonic()

    def silent() -> bool:
        nodes = {n["name"]: n for n in get(f"{observer}/api/v1/nodes")}
        return bool(nodes["node-b1"]["state"] == "silent")

    wait_until("node-b1 to show as silent", silent, timeout=SILENT_AFTER + 3)
    assert time.monotonic() - started < SILENT_AFTER + 2
    states = {n["name"]: n["state"] for n in get(f"{observer}/api/v1/nodes")}
    assert states == {"node-a1": "ok", "node-a2": "ok", "node-b1": "silent"}
    # a change node-b1 cannot apply: it is behind what was published, and silent
    deployment.write_cluster(with_web_endpoints(1))
    deployment.wait_converged("node-a1", "node-a2", timeout=10)
    wait_until(
        "node-b1 behind",
        lambda: (
            {n["name"]: n for n in get(f"{observer}/api/v1/nodes")}["node-b1"]["lag"] is not None
        ),
    )
    programming = get(f"{observer}/api/v1/services/demo/web/programming")
    assert programming["programmedOn"] == ["node-a1", "node-a2"]


EXPLAIN_CASES = [
    # ClusterIP from a pod: both ready endpoints, source kept
    ("node-a2", {"destination": "10.96.10.1", "port": 80, "source": "10.244.2.5"},
     "forward", ["10.244.1.20:8080", "10.244.3.20:8080"], False),
    # NodePort, Cluster policy: masqueraded
    ("node-a1", {"destination": "192.168.1.11", "port": 30080, "source": "172.16.0.9"},
     "forward", ["10.244.1.20:8080", "10.244.3.20:8080"], True),
    # eTP Local with a local endpoint: source kept
    ("node-a1", {"destination": "192.168.1.11", "port": 30443, "source": "172.16.0.9"},
     "forward", ["10.244.1.30:8443"], False),
    # eTP Local without a local endpoint: dropped
    ("node-a2", {"destination": "192.168.1.12", "port": 30443, "source": "172.16.0.9"},
     "drop", [], None),
    # iTP Local with and without a local endpoint
    ("node-b1", {"destination": "10.96.10.3", "port": 6379}, "forward", ["10.244.3.40:6379"], None),
    ("node-a2", {"destination": "10.96.10.3", "port": 6379}, "drop", [], None),
    # no endpoints at all: rejected
    ("node-a1", {"destination": "10.96.10.9", "port": 80}, "reject", [], None),
]  # fmt: skip


def test_explain(observer: str) -> None:
    for node, params, verdict, targets, masquerade in EXPLAIN_CASES:
        body = get(f"{observer}/api/v1/nodes/{node}/explain", **params)
        assert body["verdict"] == verdict, (node, params, body["reasons"])
        assert [f"{t['ip']}:{t['port']}" for t in body["targets"]] == targets, body
        assert body["masquerade"] is masquerade, body
        assert body["reasons"]


def read_events(
    url: str, until: Callable[[dict[str, Any]], bool], last_id: str | None = None
) -> list[dict[str, Any]]:
    """Events of the stream (id, event, data) up to the first one ``until`` accepts."""
    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    headers = {"Last-Event-ID": last_id} if last_id is not None else None
    with httpx.stream("GET", url, headers=headers, timeout=10) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line:
                key, _, value = line.partition(": ")
                current[key] = json.loads(value) if key == "data" else value
                continue
            if "event" in current:
                events.append(current)
                if until(current):
                    break
            current = {}
    return events


def test_event_stream_resumes_with_last_event_id(deployment: Deployment, observer: str) -> None:
    url = f"{observer}/api/v1/events"
    first_id = read_events(url, lambda e: True)[0]["id"]
    change_web(deployment, 2)

    def delta(event: dict[str, Any]) -> bool:
        return bool(event["event"] == "delta")

    resumed = read_events(url, delta, last_id=first_id)
    assert all(int(e["id"]) > int(first_id) for e in resumed)
    assert "demo/web" in resumed[-1]["data"]["services"]
    assert resumed[-1]["data"]["trigger"] is not None
    change_web(deployment, 3)
    again = read_events(url, lambda e: True, last_id=resumed[-1]["id"])
    assert int(again[0]["id"]) > int(resumed[-1]["id"])


def test_metrics_parse(observer: str) -> None:
    text = httpx.get(f"{observer}/metrics", timeout=5).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert {s.labels["state"]: s.value for s in families["kpng_observer_nodes"].samples}["ok"] == 3
    received = families["kpng_bus_messages"].samples
    assert any(s.labels == {"direction": "in", "kind": "status"} and s.value > 0 for s in received)
    assert "kpng_network_programming_duration_seconds" in families
    assert families["process_resident_memory_bytes"].samples[0].value > 0
    assert "kpng_process_children_cpu_seconds" in families


def test_json_logs_carry_the_http_servers_lines_too(deployment: Deployment) -> None:
    """--logging-format json: uvicorn's own warnings (a request that is no HTTP) come out as
    JSON lines through the service's logging, not in uvicorn's text format."""
    deployment.start_nats()
    base = start_observer(deployment, "--logging-format", "json")
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        s.recv(1024)

    def lines() -> list[dict[str, object]]:
        text = deployment.group.children["observer"].log()
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    wait_until(
        "uvicorn's warning in the log",
        lambda: any("Invalid HTTP request" in str(x["msg"]) for x in lines()),
    )
    said = lines()
    assert any(x["logger"] == "kpng_observer.main" for x in said)
    (invalid,) = [x for x in said if "Invalid HTTP request" in str(x["msg"])]
    assert invalid["logger"] == "uvicorn.error" and invalid["level"] == "WARNING"
