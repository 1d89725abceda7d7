"""The chart's alerts (a PrometheusRule, when asked): each expression is PromQL a Prometheus
parses, and queries only metrics kpng's services export, by labels they have."""

from __future__ import annotations

import re
from typing import Any

import promql_parser
import pytest
import yaml
from prometheus_client import CollectorRegistry

from kpng.bus.client import ClientStats
from kpng.bus.fake import FakeServer
from kpng_agent.backends.dump import DumpBackend
from kpng_agent.wiring import build_parts
from kpng_observer.metrics import ObserverMetrics
from kpng_observer.state import ObserverState
from tests.deploy.helm import template, values_args

# the labels Prometheus gives every scraped series (a PodMonitor's and ServiceMonitor's)
TARGET_LABELS = {"namespace", "pod", "job", "instance", "container", "service", "endpoint"}
SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}")
MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
GROUPING = re.compile(r"\b(?:by|without) \(([^)]*)\)")


def rules(*settings: str) -> list[dict[str, Any]]:
    """The alerts of the matrix's monitoring deployment, with ``settings`` (``--set``)."""
    out = template(*values_args("monitoring"), *(x for s in settings for x in ("--set", s)))
    (rule,) = [d for d in yaml.safe_load_all(out) if d and d["kind"] == "PrometheusRule"]
    return [r for group in rule["spec"]["groups"] for r in group["rules"]]


def exported() -> dict[str, set[str]]:
    """Every sample name kpng's agent and observer export, with its labels."""
    agent = CollectorRegistry()
    build_parts(
        FakeServer().connect(), "node-a", DumpBackend("node-a", "/dev/null"), registry=agent
    )
    observer = ObserverMetrics(ObserverState(), ClientStats, clock=lambda: 0.0).registry
    names: dict[str, set[str]] = {}
    for registry in (agent, observer):
        for family in registry.collect():
            for sample in family.samples:
                names.setdefault(sample.name, set()).update(sample.labels)
    return names


def test_no_alerts_unless_asked() -> None:
    out = template(*values_args("defaults"))
    assert "PrometheusRule" not in out


@pytest.mark.parametrize("rule", rules(), ids=lambda r: str(r["alert"]))
def test_each_alert_queries_what_kpng_exports(rule: dict[str, Any]) -> None:
    parsed = str(promql_parser.parse(rule["expr"]))  # raises on what Prometheus would refuse
    names = exported()
    selected = SELECTOR.findall(parsed)
    assert selected, parsed
    labels = set(TARGET_LABELS)
    for name, matchers in selected:
        assert name in names, f"{rule['alert']}: {name} is exported by no kpng service"
        used = set(MATCHER.findall(matchers))
        assert used <= names[name], f"{rule['alert']}: {name} has no label {used - names[name]}"
        labels |= names[name]
    for grouping in GROUPING.findall(parsed):
        by = {label.strip() for label in grouping.split(",") if label.strip()}
        assert by <= labels, f"{rule['alert']}: no label {by - labels}"
    assert rule["labels"]["severity"] in ("warning", "critical")
    assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_the_stale_rules_alert_follows_the_sync_period() -> None:
    """The same test as the agent's /healthz: a change pending for 2 x agent.syncPeriod."""
    (stale,) = [r for r in rules("agent.syncPeriod=45") if r["alert"] == "KpngRulesStale"]
    assert "> 90)" in stale["expr"]


def test_the_observers_alerts_only_with_the_observer() -> None:
    alerts = {r["alert"] for r in rules("observer.enabled=false")}
    assert "KpngSyncFailing" in alerts and "KpngWatcherGone" not in alerts
