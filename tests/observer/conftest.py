from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import httpx
import pytest

from kpng_devrun.procs import free_port, venv_bin, wait_for_port
from tests.integration.harness import Deployment, wait_until
from tests.observer.cluster import CLUSTER_CIDR, NODES, objects

SILENT_AFTER = 2.0


def start_observer(deployment: Deployment, *extra: str) -> str:
    """The observer on a free port, with the test cluster's pod CIDR; returns its base URL."""
    port = free_port()
    deployment.group.start(
        "observer",
        [
            venv_bin("kpng-observer"),
            "--nats",
            deployment.url,
            "--nats-insecure",
            "--listen",
            f"127.0.0.1:{port}",
            "--silent-after",
            str(SILENT_AFTER),
            "--cluster-cidr",
            CLUSTER_CIDR,
            *extra,
        ],
    )
    wait_for_port("127.0.0.1", port, timeout=20)
    return f"http://127.0.0.1:{port}"


def start_cluster(
    deployment: Deployment,
    cluster: list[dict[str, Any]] | None = None,
    nodes: Iterable[str] = NODES,
) -> str:
    """nats-server, watcher, an agent per node and the observer, converged; the observer URL."""
    deployment.write_cluster(cluster if cluster is not None else objects())
    deployment.start_nats()
    deployment.start_watcher()
    for name in nodes:
        deployment.start_agent(name)
    base = start_observer(deployment)
    deployment.wait_converged(*nodes, timeout=20)
    return base


@pytest.fixture
def observer(deployment: Deployment) -> str:
    base = start_cluster(deployment)

    def all_ok() -> bool:
        nodes = httpx.get(f"{base}/api/v1/nodes", timeout=5).json()
        return {n["name"]: n["state"] for n in nodes} == dict.fromkeys(NODES, "ok")

    wait_until("every node ok at the observer", all_ok, timeout=20)
    return base
