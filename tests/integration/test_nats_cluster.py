"""One NATS server of a 3-server cluster killed under churn: every agent converges, in order.

Three real nats-server processes routed to each other on free ports; the watcher and the
dump agents are given all three URLs (as compose and the chart give them).
"""

from __future__ import annotations

import json
import signal
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kpng_devrun.procs import Child, ProcessGroup, free_ports, nats_server_argv, wait_for_port
from tests.integration.harness import Deployment, node, service, slice_

pytestmark = pytest.mark.integration

NODES = ("n1", "n2", "n3", "n4")


@dataclass
class ClusterDeployment(Deployment):
    ports: list[int] = field(default_factory=list)
    monitors: list[int] = field(default_factory=list)
    servers: list[Child] = field(default_factory=list)

    @property
    def url(self) -> str:
        return ",".join(f"nats://127.0.0.1:{port}" for port in self.ports)

    def start_cluster(self) -> None:
        picked = free_ports(9)
        self.ports, routes, self.monitors = picked[:3], picked[3:6], picked[6:]
        route_urls = ",".join(f"nats://127.0.0.1:{port}" for port in routes)
        for i, (port, route) in enumerate(zip(self.ports, routes, strict=True)):
            argv = nats_server_argv(port)
            argv += ["-n", f"s{i}", "-m", str(self.monitors[i]), "--cluster_name", "kpng"]
            argv += ["--cluster"]
            argv += [f"nats://127.0.0.1:{route}", "--routes", route_urls]
            self.servers.append(self.group.start(f"nats-{i}", argv))
        for port in self.ports:
            wait_for_port("127.0.0.1", port)

    def clients(self, server: int) -> list[str]:
        """The names of the clients connected to ``server`` now."""
        url = f"http://127.0.0.1:{self.monitors[server]}/connz"
        with urllib.request.urlopen(url, timeout=2) as answer:
            return [c.get("name", "") for c in json.load(answer).get("connections") or []]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ClusterDeployment]:
    with ProcessGroup(tmp_path / "logs") as group:
        yield ClusterDeployment(tmp_path, group)


def objects(count: int) -> list[dict[str, Any]]:
    endpoints = [(f"10.244.{i // 250}.{i % 250 + 1}", NODES[i % 4]) for i in range(count)]
    return [
        *(node(name, "z1", f"192.168.0.{i + 1}") for i, name in enumerate(NODES)),
        service("web", "10.96.0.10"),
        slice_("web", endpoints),
    ]


def endpoint_count(deployment: Deployment, name: str) -> int:
    entry = (deployment.dump(name) or {}).get("services", {}).get("default/web")
    return len(entry["endpoints"]) if entry else 0


def test_a_server_killed_under_churn_every_agent_converges_within_5_s(
    cluster: ClusterDeployment,
) -> None:
    cluster.write_cluster(objects(1))
    cluster.start_cluster()
    cluster.start_watcher()
    for name in NODES:
        cluster.start_agent(name)
    cluster.wait_converged(*NODES)
    counts: dict[str, list[int]] = {name: [] for name in NODES}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            for name in NODES:
                counts[name].append(endpoint_count(cluster, name))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        count = 1
        for _ in range(15):  # churn: one more endpoint every 100 ms ...
            count += 1
            cluster.write_cluster(objects(count))
            time.sleep(0.1)
        # ... with the watcher's server gone in the middle
        (serving,) = [i for i in range(3) if "kpng-watcher" in cluster.clients(i)]
        killed = time.monotonic()
        cluster.servers[serving].kill(signal.SIGKILL)
        for _ in range(15):
            count += 1
            cluster.write_cluster(objects(count))
            time.sleep(0.1)
        cluster.wait_converged(*NODES, timeout=5.0 - (time.monotonic() - killed))
        converged = time.monotonic() - killed
    finally:
        done.set()
        sampler.join()
    assert converged < 5.0
    for name in NODES:
        assert endpoint_count(cluster, name) == 31
        assert counts[name] == sorted(counts[name]), (name, counts[name])  # never went back
    assert all(agent.running for agent in cluster.agents.values())
    watcher_log = cluster.group.children["watcher"].log()
    assert "reconnected to nats" in watcher_log
