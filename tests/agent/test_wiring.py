"""The agent's composition: the parts are built once and shared by the agent, its hooks
and its HTTP servers, and the agent gets its hooks when it is made."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from kpng.bus.fake import FakeServer
from kpng.dataplane.plugin import SHARED_HOST
from kpng.runtime.clock import FakeClock
from kpng.runtime.metrics import render
from kpng_agent.agent import AgentSettings
from kpng_agent.backends.dump import DumpBackend
from kpng_agent.health_server import HealthCheckServers
from kpng_agent.main import parser
from kpng_agent.servers import apply_defaults, hooks_for
from kpng_agent.wiring import build_agent, build_parts
from tests.agent.helpers import NODE


def test_the_agent_shares_the_parts_its_hooks_use(tmp_path: Path) -> None:
    bus = FakeServer().connect()
    backend = DumpBackend(NODE, tmp_path / "view.json")
    flags = ["--health-check-bind-host", "127.0.0.1", "--sync-period", "4"]
    args = parser().parse_args(["--node", NODE, "--dump-file", str(tmp_path / "v.json"), *flags])
    apply_defaults(args, SHARED_HOST)  # as make_backend does for the dump backend
    clock = FakeClock()
    settings = AgentSettings(status_interval=2.0, sync_period=args.sync_period)
    parts = build_parts(bus, NODE, backend, settings, clock)
    hooks, _ = hooks_for(args, parts)
    agent = build_agent(bus, backend, parts, hooks)
    [servers] = hooks
    assert isinstance(servers, HealthCheckServers)
    assert servers.health is parts.health is agent.health and servers.clock is clock
    assert agent.hooks == (servers,) and agent.clock is clock
    assert agent.client is parts.client and agent.client.clock is clock
    assert agent.metrics is parts.metrics and agent.settings == settings
    assert parts.health.timeout == 8.0  # 2 x the sync period, as kube-proxy
    assert agent.state.sync_period == 4.0


def test_the_registry_gets_the_collectors_reading_view_backend_and_client(
    tmp_path: Path,
) -> None:
    registry = CollectorRegistry()
    build_parts(
        FakeServer().connect(),
        NODE,
        DumpBackend(NODE, tmp_path / "view.json"),
        registry=registry,
    )
    body = render(registry)[0].decode()
    for name in (
        "kubeproxy_sync_proxy_rules_duration_seconds",
        "kubeproxy_sync_proxy_rules_no_local_endpoints_total",
        "kpng_agent_service_ip_conflicts 0.0",
        "kpng_agent_bus_snapshots",
    ):
        assert name in body, name


@pytest.mark.parametrize("bad", ["*", "a b", "Node_1", "x" * 300])
def test_a_node_name_that_is_no_kubernetes_name_is_a_usage_error(
    bad: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        parser().parse_args(["--node", bad])
    assert exit_.value.code == 2
    assert "no Kubernetes node name" in capsys.readouterr().err
