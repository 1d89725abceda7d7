"""kube-proxy's health semantics (pure) and the agent's HTTP servers on real sockets."""

from __future__ import annotations

import json
from dataclasses import replace

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from kpng.dataplane.health import (
    WEIGHT_HEADER,
    ProxyHealth,
    health_services,
    healthz,
    no_local_endpoints,
    service_health,
)
from kpng.fanout.views import service_view
from kpng.model import Endpoint, Service, ServiceType, TrafficPolicy
from kpng.runtime.clock import FakeClock
from kpng.runtime.proxymetrics import ProxyMetrics
from kpng_agent.health_server import HealthCheckServers, metrics_handler, proxy_handler
from kpng_agent.httpserve import HttpServer, split_address
from kpng_agent.main import parser as agent_parser
from kpng_devrun.procs import free_port
from tests.agent.helpers import NODE, ep, event, lb, udp, view
from tests.objects import DNS_ENDPOINT_PORT, HTTP_ENDPOINT_PORT, dns_port, http_port


def test_healthy_until_an_update_waits_longer_than_the_timeout() -> None:
    h = ProxyHealth(timeout=60)
    assert h.healthy(1000)
    h.queued(1000)
    h.queued(1050)  # the oldest pending update counts
    assert h.healthy(1060)
    assert not h.healthy(1061)
    h.updated(1062)
    assert h.healthy(5000)


def test_healthz_json_and_livez_ignores_the_node() -> None:
    h = ProxyHealth(timeout=60)
    h.saw_view(view(), NODE)
    h.updated(0)
    r = healthz(h, 10)
    body = json.loads(r.body)
    assert r.status == 200 and body["healthy"] is True
    assert body["lastUpdated"] == "1970-01-01T00:00:00Z"
    assert body["currentTime"] == "1970-01-01T00:00:10Z"
    h.saw_view(view(node=False), NODE)  # the Node object went away: being deleted
    assert healthz(h, 10).status == 503
    assert json.loads(healthz(h, 10).body)["nodeEligible"] is False
    assert healthz(h, 10, check_node=False).status == 200


def test_a_node_going_away_is_not_eligible_until_it_is_not() -> None:
    """kube-proxy's SyncNode: a Node with a deletionTimestamp or the cluster autoscaler's
    taint (Node.deleting) fails /healthz (not /livez), and passes again when the taint goes."""
    h = ProxyHealth(timeout=60)
    h.updated(0)
    v = view()
    h.saw_view(v, NODE)
    assert healthz(h, 10).status == 200
    v.nodes[NODE] = replace(v.nodes[NODE], deleting=True)
    h.saw_view(v, NODE)
    r = healthz(h, 10)
    assert r.status == 503 and json.loads(r.body)["nodeEligible"] is False
    assert healthz(h, 10, check_node=False).status == 200
    v.nodes[NODE] = replace(v.nodes[NODE], deleting=False)  # the autoscaler changed its mind
    h.saw_view(v, NODE)
    assert healthz(h, 10).status == 200


def test_a_view_without_any_node_object_keeps_the_node_eligible() -> None:
    h = ProxyHealth(timeout=60)
    h.saw_view(view(node=False), NODE)
    assert h.node_eligible


def test_health_services_count_local_ready_endpoints_only() -> None:
    v = view(
        (lb("shop"), [ep("10.244.0.2"), ep("10.244.0.3", ready=False), ep("10.244.1.2", "b")]),
        (lb("cluster", hc=32101, etp=TrafficPolicy.CLUSTER), [ep("10.244.0.4")]),
        (lb("empty", hc=32102), []),
        (lb("terminating", hc=32103), [ep("10.244.0.5", ready=False)]),
    )
    found = health_services(v, NODE)
    assert sorted(found) == [32100, 32102, 32103]
    assert found[32100].local_endpoints == 1
    assert found[32103].local_endpoints == 0  # only terminating counts 0
    r = service_health(found[32103], True)
    assert r.status == 503 and dict(r.headers)[WEIGHT_HEADER] == "0"
    ok = service_health(found[32100], True)
    assert ok.status == 200 and json.loads(ok.body) == {
        "service": {"namespace": "demo", "name": "shop"},
        "localEndpoints": 1,
        "serviceProxyHealthy": True,
    }
    assert service_health(found[32100], False).status == 503


def test_no_local_endpoints_per_traffic_policy() -> None:
    remote = [ep("10.244.1.2", "node-b", internal=False, external=False)]
    v = view(
        (lb("shop"), remote),
        (udp("cache", internal_traffic_policy=TrafficPolicy.LOCAL), remote),
        (udp("here", ip="10.96.0.11", internal_traffic_policy=TrafficPolicy.LOCAL), [ep("x")]),
    )
    assert no_local_endpoints(v, NODE) == {
        (4, "internal"): 1,
        (4, "external"): 1,
        (6, "internal"): 0,
        (6, "external"): 0,
    }


def test_no_local_endpoints_counts_service_ports_as_kube_proxy() -> None:
    """Per service port: dns has a remote endpoint only (dropped here), http a local one.
    The old per-service count saw a local endpoint and counted nothing."""
    service = Service(
        "default",
        "both",
        ServiceType.CLUSTER_IP,
        ("10.96.0.12",),
        (http_port(), dns_port()),
        internal_traffic_policy=TrafficPolicy.LOCAL,
    )
    here = Endpoint("10.244.0.7", (HTTP_ENDPOINT_PORT,), NODE)
    there = Endpoint("10.244.1.7", (HTTP_ENDPOINT_PORT, DNS_ENDPOINT_PORT), "node-b")
    v = view((service, list(service_view(service, (here, there), NODE, ""))))
    assert no_local_endpoints(v, NODE, (4,)) == {(4, "internal"): 1, (4, "external"): 0}
    # two ports without a local endpoint count twice, as kube-proxy's gauge does
    v = view((service, list(service_view(service, (there,), NODE, ""))))
    assert no_local_endpoints(v, NODE, (4,)) == {(4, "internal"): 2, (4, "external"): 0}


def test_no_local_endpoints_per_ip_family() -> None:
    """kube-proxy's proxier of each family sees that family's endpoints only: a dual-stack
    service with a local IPv4 endpoint and only a remote IPv6 one drops IPv6 traffic."""
    service = Service(
        "default",
        "dual",
        ServiceType.CLUSTER_IP,
        ("10.96.0.13", "fd00:96::13"),
        (http_port(),),
        internal_traffic_policy=TrafficPolicy.LOCAL,
    )
    here = Endpoint("10.244.0.8", (HTTP_ENDPOINT_PORT,), NODE)
    there = Endpoint("fd00:244:1::8", (HTTP_ENDPOINT_PORT,), "node-b")
    v = view((service, list(service_view(service, (here, there), NODE, ""))))
    counts = no_local_endpoints(v, NODE)
    assert counts[4, "internal"] == 0 and counts[6, "internal"] == 1
    # an IPv4-only service counts under IPv4 alone, whatever endpoints it has
    v4 = replace(service, cluster_ips=("10.96.0.13",))
    v = view((v4, list(service_view(v4, (there,), NODE, ""))))
    assert no_local_endpoints(v, NODE)[6, "internal"] == 0


def test_health_check_node_port_counts_local_ready_endpoints_of_any_port() -> None:
    """kube-proxy's LocalReadyEndpoints: per service, the distinct local ready addresses over
    all its ports; an endpoint without the LB's one port still counts (kube-proxy's
    count is of the service, not of a port)."""
    other = Endpoint("10.244.0.8", (DNS_ENDPOINT_PORT,), NODE)
    remote = Endpoint("10.244.1.8", (HTTP_ENDPOINT_PORT,), "node-b")
    service = lb("only-dns-here")
    v = view((service, list(service_view(service, (other, remote), NODE, ""))))
    assert health_services(v, NODE)[32100].local_endpoints == 1


@pytest.mark.parametrize("bad", ["foo:bar", "127.0.0.1:70000", "[::1]:x"])
def test_a_bad_bind_address_is_refused_at_start(
    bad: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        agent_parser().parse_args(["--node", "n1", "--healthz-bind-address", bad])
    assert exit_.value.code == 2
    assert "--healthz-bind-address" in capsys.readouterr().err


def test_split_address() -> None:
    assert split_address("0.0.0.0:10256", 1) == ("0.0.0.0", 10256)
    assert split_address(":99", 1) == ("0.0.0.0", 99)
    assert split_address("[::1]:99", 1) == ("::1", 99)
    assert split_address("127.0.0.1", 7) == ("127.0.0.1", 7)


async def test_proxy_and_metrics_servers_answer_over_http() -> None:
    h = ProxyHealth(timeout=60)
    registry = CollectorRegistry()
    proxy = ProxyMetrics(registry)
    servers = [
        HttpServer("127.0.0.1", 0, proxy_handler(h, FakeClock(epoch=100.0), proxy)),
        HttpServer("127.0.0.1", 0, metrics_handler(registry, "nftables")),
    ]
    for s in servers:
        await s.start()
    try:
        async with httpx.AsyncClient() as client:
            base, metrics = (f"http://127.0.0.1:{s.port}" for s in servers)
            assert (await client.get(f"{base}/healthz")).json()["healthy"] is True
            assert (await client.get(f"{base}/livez")).status_code == 200
            assert (await client.get(f"{base}/nope")).status_code == 404
            assert (await client.post(f"{base}/healthz")).status_code == 405
            assert (await client.get(f"{metrics}/proxyMode")).text == "nftables"
            assert (await client.get(f"{metrics}/metrics")).status_code == 200
            h.saw_view(view(), NODE)
            h.saw_view(view(node=False), NODE)  # the node went away: /healthz fails
            assert (await client.get(f"{base}/healthz")).status_code == 503
            assert (await client.get(f"{base}/livez")).status_code == 200
            text = (await client.get(f"{metrics}/metrics")).text
            samples = {
                (s.name, s.labels["code"]): s.value
                for f in text_string_to_metric_families(text)
                if f.name in ("kubeproxy_proxy_healthz", "kubeproxy_proxy_livez")
                for s in f.samples
                if s.name.endswith("_total")
            }
            assert samples == {
                ("kubeproxy_proxy_healthz_total", "200"): 1,
                ("kubeproxy_proxy_healthz_total", "503"): 1,
                ("kubeproxy_proxy_livez_total", "200"): 2,
                ("kubeproxy_proxy_livez_total", "503"): 0,
            }
    finally:
        for s in servers:
            await s.close()


async def test_health_check_servers_open_and_close_with_services() -> None:
    h = ProxyHealth(timeout=60)
    port = free_port()
    servers = HealthCheckServers(NODE, h, "127.0.0.1", clock=FakeClock(epoch=0.0))
    first = view((lb(hc=port), [ep("10.244.0.2")]))
    try:
        await servers.synced(event(first), True)
        async with httpx.AsyncClient() as client:
            r = await client.get(f"http://127.0.0.1:{port}/")
            assert r.status_code == 200 and r.headers[WEIGHT_HEADER] == "1"
            second = view((lb(hc=port), [ep("10.244.0.2", ready=False)]))
            await servers.synced(event(second, first, 2), False)
            r = await client.get(f"http://127.0.0.1:{port}/")
            assert r.status_code == 503 and r.json()["localEndpoints"] == 0
            await servers.synced(event(view(), second, 3), False)
            assert servers.servers == {}
            with pytest.raises(httpx.ConnectError):
                await client.get(f"http://127.0.0.1:{port}/")
    finally:
        await servers.close()
