"""A real agent process (dump backend) over a real nats-server: its health, metrics and
healthCheckNodePort endpoints."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from kpng_devrun.procs import free_ports, venv_bin, wait_for_port
from tests.integration.harness import Deployment, node, service, slice_, wait_until

pytestmark = pytest.mark.integration


def get(url: str) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=2)
    except httpx.HTTPError:
        return None


def test_agent_serves_healthz_metrics_proxy_mode_and_health_check_node_ports(
    deployment: Deployment,
) -> None:
    d = deployment
    hc, healthz, metrics = free_ports(3)
    lb = service(
        "shop",
        "10.96.0.20",
        type="LoadBalancer",
        externalTrafficPolicy="Local",
        healthCheckNodePort=hc,
    )
    lb["spec"]["ports"][0]["nodePort"] = 30080
    d.write_cluster(
        [node("node-a", "z", "192.168.0.10"), lb, slice_("shop", [("10.244.0.2", "node-a")])]
    )
    d.start_nats()
    d.start_watcher()
    argv = [venv_bin("kpng-agent"), "--node", "node-a", "--nats", d.url, "--nats-insecure"]
    argv += ["--dump-file", str(d.dump_path("node-a")), "--health-check-bind-host", "127.0.0.1"]
    argv += ["--healthz-bind-address", f"127.0.0.1:{healthz}"]
    argv += ["--metrics-bind-address", f"127.0.0.1:{metrics}", "--oom-score-adj", "500"]
    agent = d.group.start("agent", argv)
    d.wait_converged("node-a")
    # kube-proxy's --oom-score-adj: the agent's own (raised here: lowering it would need
    # CAP_SYS_RESOURCE, which the test has but an unprivileged pod has not)
    assert agent.process is not None
    assert Path(f"/proc/{agent.process.pid}/oom_score_adj").read_text() == "500\n"
    wait_for_port("127.0.0.1", hc)
    r = get(f"http://127.0.0.1:{hc}/")
    assert r is not None and r.status_code == 200
    assert r.json() == {
        "service": {"namespace": "default", "name": "shop"},
        "localEndpoints": 1,
        "serviceProxyHealthy": True,
    }
    assert r.headers["X-Load-Balancing-Endpoint-Weight"] == "1"
    h = get(f"http://127.0.0.1:{healthz}/healthz")
    assert h is not None and h.status_code == 200 and h.json()["healthy"] is True
    assert h.json()["lastUpdated"]
    mode = get(f"http://127.0.0.1:{metrics}/proxyMode")
    assert mode is not None and mode.text == "dump"
    m = get(f"http://127.0.0.1:{metrics}/metrics")
    assert m is not None
    names = {f.name for f in text_string_to_metric_families(m.text)}
    assert "kubeproxy_sync_proxy_rules_duration_seconds" in names
    assert "kubeproxy_sync_proxy_rules_last_timestamp_seconds" in names
    assert "kubeproxy_sync_proxy_rules_endpoint_changes" in names  # _total is the sample
    assert {"kpng_agent_bus_snapshots", "kpng_agent_bus_resyncs"} <= names
    assert "kpng_agent_bus_malformed" in names
    assert {"kubeproxy_proxy_healthz", "kubeproxy_proxy_livez"} <= names

    # the cluster autoscaler is about to delete node-a: kube-proxy's /healthz fails so that
    # load balancers drain it, and passes again when the taint goes
    tainted = node("node-a", "z", "192.168.0.10")
    tainted["spec"] = {
        "taints": [{"key": "ToBeDeletedByClusterAutoscaler", "effect": "NoSchedule"}]
    }
    d.write_cluster([tainted, lb, slice_("shop", [("10.244.0.2", "node-a")])])

    def healthz_says(status: int) -> bool:
        r = get(f"http://127.0.0.1:{healthz}/healthz")
        return r is not None and r.status_code == status

    wait_until("healthz to fail while the node is to be deleted", lambda: healthz_says(503))
    h = get(f"http://127.0.0.1:{healthz}/healthz")
    assert h is not None and h.json()["nodeEligible"] is False
    d.write_cluster(
        [node("node-a", "z", "192.168.0.10"), lb, slice_("shop", [("10.244.0.2", "node-a")])]
    )
    wait_until("healthz to pass once the taint is gone", lambda: healthz_says(200))

    d.write_cluster([lb, slice_("shop", [("10.244.0.2", "node-b")])])  # node-a deleted
    wait_until(
        "healthz to fail while the node is gone",
        lambda: (
            (r := get(f"http://127.0.0.1:{healthz}/healthz")) is not None and r.status_code == 503
        ),
    )
    live = get(f"http://127.0.0.1:{healthz}/livez")
    assert live is not None and live.status_code == 200
    wait_until(
        "the health check port to report no local endpoint",
        lambda: (r := get(f"http://127.0.0.1:{hc}/")) is not None and r.status_code == 503,
    )
