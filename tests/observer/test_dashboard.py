"""The dashboard in headless Chromium: loads, shows the cluster, follows changes live."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kpng.fanout.cluster import ClusterState
from kpng.parse import KINDS, Ignored, parse_object
from tests.integration.harness import Deployment, wait_until
from tests.observer.browser import Browser
from tests.observer.cluster import service, slice_
from tests.observer.conftest import start_cluster

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "cluster.yaml"
ARTIFACT = ROOT / "artifacts" / "observer-dashboard.png"
NODES_JS = "[...document.querySelectorAll('#nodes tbody tr')].map(r => r.dataset.node)"
SERVICES_JS = "[...document.querySelectorAll('#services tbody tr')].map(r => r.dataset.service)"
STATES_JS = (
    "[...document.querySelectorAll('#nodes tbody .pill:not(.deleting)')].map(p => p.textContent)"
)
GOING_JS = (
    "[...document.querySelectorAll('#nodes tbody tr')]"
    ".filter(r => r.querySelector('.pill.deleting')).map(r => r.dataset.node)"
)
EVENTS_JS = "document.getElementById('events').innerText"
GRID_JS = (
    "[...document.querySelectorAll('#node-grid .tile')].map(t => [t.dataset.node, t.dataset.state])"
)
TILE = "#node-grid .tile"
CHART_JS = "document.getElementById('latency-chart').dataset.points"


def example_objects() -> list[dict[str, Any]]:
    """The objects of examples/cluster.yaml that kpng reads (not its Namespace)."""
    documents = yaml.safe_load_all(EXAMPLE.read_text())
    return [d for d in documents if isinstance(d, dict) and d.get("kind") in KINDS]


def expected(objs: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    state = ClusterState()
    parsed = [parse_object(o) for o in objs]
    state.replace(p for p in parsed if not isinstance(p, Ignored))
    view = state.global_view()
    return sorted(view.nodes), sorted(view.services)


@pytest.fixture
def browser(deployment: Deployment) -> Iterator[Browser]:
    page = Browser(deployment.group, deployment.workdir / "chromium-profile")
    try:
        yield page
    finally:
        page.close()


def test_dashboard_shows_the_cluster_and_follows_changes(
    deployment: Deployment, browser: Browser
) -> None:
    objs = example_objects()
    nodes, services = expected(objs)
    base = start_cluster(deployment, objs, nodes)
    browser.navigate(base + "/")
    wait_until("the dashboard's nodes", lambda: browser.evaluate(NODES_JS) == nodes, timeout=15)
    wait_until("its services", lambda: browser.evaluate(SERVICES_JS) == services, timeout=15)
    wait_until("every node ok", lambda: set(browser.evaluate(STATES_JS)) == {"ok"}, timeout=15)
    browser.evaluate("window.notReloaded = true")

    changed = copy.deepcopy(objs)
    (going,) = [o for o in changed if o["kind"] == "Node" and o["metadata"]["name"] == nodes[-1]]
    going.setdefault("spec", {})["taints"] = [{"key": "ToBeDeletedByClusterAutoscaler"}]
    changed.append(service("demo", "fresh", "10.96.10.77", [{"name": "http", "port": 80}]))
    changed.append(
        slice_("demo", "fresh", [{"name": "http", "port": 80, "protocol": "TCP"}],
               [("10.244.1.77", nodes[0], "ready")])
    )  # fmt: skip
    deployment.write_cluster(changed)
    wait_until(
        "demo/fresh on the page",
        lambda: "demo/fresh" in browser.evaluate(SERVICES_JS),
        timeout=4,  # under the page's 5 s fallback refresh: the event stream did it
    )
    assert "demo/fresh" in browser.evaluate(EVENTS_JS)
    wait_until("the tainted node going away", lambda: browser.evaluate(GOING_JS) == [nodes[-1]])
    assert browser.evaluate("window.notReloaded") is True
    wait_until(
        "every node ok again", lambda: set(browser.evaluate(STATES_JS)) == {"ok"}, timeout=15
    )
    wait_until(
        "latency shown",
        lambda: browser.evaluate("document.getElementById('samples').textContent") != "0",
    )
    wait_until("the node map", lambda: browser.evaluate(GRID_JS) == [[n, "ok"] for n in nodes])
    green = browser.evaluate(f"getComputedStyle(document.querySelector({TILE!r})).backgroundColor")
    red, grn, blue = (int(c) for c in green[green.index("(") + 1 : -1].split(","))
    assert grn > red and grn > blue, green  # ok is green
    wait_until("the latency chart", lambda: int(browser.evaluate(CHART_JS) or 0) >= 1, timeout=10)
    for series in ("p50", "p99"):
        line = browser.evaluate(f"document.querySelector('#latency-chart path.{series}')")
        assert line is not None
        d = browser.evaluate(
            f"document.querySelector('#latency-chart path.{series}').getAttribute('d')"
        )
        assert d.startswith("M"), (series, d)
    labels = browser.evaluate("document.getElementById('latency-chart').textContent")
    assert "-15 min" in labels and "now" in labels
    path = browser.screenshot(ARTIFACT)
    print(f"dashboard screenshot: {path}")
