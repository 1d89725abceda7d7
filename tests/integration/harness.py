"""A small kpng deployment for integration tests: nats-server, watcher, agents, as processes."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kpng.fanout.cluster import ClusterState
from kpng.observe.viewjson import view_to_json
from kpng_devrun.procs import (
    Child,
    ProcessGroup,
    free_port,
    nats_server_argv,
    venv_bin,
    wait_for_port,
)
from kpng_watcher.file_source import FileSource


def wait_until(what: str, check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


async def until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    """:func:`wait_until` for tests that run inside the event loop."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def node(name: str, zone: str, ip: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"topology.kubernetes.io/zone": zone}},
        "status": {"addresses": [{"type": "InternalIP", "address": ip}]},
    }


def service(name: str, ip: str, port: int = 80, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "clusterIP": ip,
            "ports": [{"name": "http", "port": port, "targetPort": 8080}],
            **spec,
        },
    }


def slice_(service_name: str, endpoints: list[tuple[str, str]], name: str = "") -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name or f"{service_name}-1",
            "namespace": "default",
            "labels": {"kubernetes.io/service-name": service_name},
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [
            {"addresses": [ip], "nodeName": n, "conditions": {"ready": True}} for ip, n in endpoints
        ],
    }


def web_on_n1(ip: str) -> list[dict[str, Any]]:
    """Node n1, service default/web at 10.96.0.10 and its one endpoint ``ip`` on n1."""
    return [
        node("n1", "z1", "192.168.0.1"),
        service("web", "10.96.0.10"),
        slice_("web", [(ip, "n1")]),
    ]


def expected_view(cluster_file: Path, node_name: str) -> dict[str, Any]:
    objects = FileSource(cluster_file).load()
    assert objects is not None
    state = ClusterState()
    state.replace(objects)
    return strip(view_to_json(node_name, "", 0, state.node_view(node_name)))


def strip(dump: dict[str, Any]) -> dict[str, Any]:
    """A dump without its stream position, to compare views."""
    return {k: v for k, v in dump.items() if k not in ("epoch", "seq")}


@dataclass
class Deployment:
    workdir: Path
    group: ProcessGroup
    nats_port: int = 0
    tick_interval: float = 0.5
    agents: dict[str, Child] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.nats_port}"

    @property
    def cluster_file(self) -> Path:
        return self.workdir / "cluster.yaml"

    def write_cluster(self, objects: list[dict[str, Any]]) -> None:
        tmp = self.cluster_file.with_suffix(".tmp")
        tmp.write_text(yaml.safe_dump_all(objects))
        tmp.replace(self.cluster_file)

    def start_nats(self, max_payload: int | None = None) -> None:
        self.nats_port = self.nats_port or free_port()
        config = None
        if max_payload is not None:
            config = self.workdir / "nats.conf"
            config.write_text(f"max_payload: {max_payload}\n")
        self.group.start("nats-server", nats_server_argv(self.nats_port, config))
        wait_for_port("127.0.0.1", self.nats_port)

    def start_watcher(
        self, name: str = "watcher", source: str = "", extra_args: tuple[str, ...] = ()
    ) -> Child:
        """The watcher on ``source`` (default: ``file:`` the cluster file), e.g.
        ``source="kube", extra_args=("--kubeconfig", path)``."""
        return self.group.start(
            name,
            [
                venv_bin("kpng-watcher"),
                "--source",
                source or f"file:{self.cluster_file}",
                *extra_args,
                "--nats",
                self.url,
                "--nats-insecure",
                "--tick-interval",
                str(self.tick_interval),
                "--log-level",
                "debug",
            ],
        )

    def start_agent(self, node_name: str, url: str = "") -> Child:
        """A dump agent for ``node_name`` on the bus at ``url`` (default: the deployment's)."""
        child = self.group.start(
            f"agent-{node_name}",
            [
                venv_bin("kpng-agent"),
                "--node",
                node_name,
                "--nats",
                url or self.url,
                "--nats-insecure",
                "--dump-file",
                str(self.dump_path(node_name)),
                "--status-interval",
                "0.5",
            ],
        )
        self.agents[node_name] = child
        return child

    def start_observer(self) -> str:
        """Start the observer on a free port; returns its base URL once it answers."""
        port = free_port()
        self.group.start(
            "observer",
            [
                venv_bin("kpng-observer"),
                "--nats",
                self.url,
                "--nats-insecure",
                "--listen",
                f"127.0.0.1:{port}",
                "--silent-after",
                "3",
            ],
        )
        wait_for_port("127.0.0.1", port, timeout=20)
        return f"http://127.0.0.1:{port}"

    def dump_path(self, node_name: str) -> Path:
        return self.workdir / "dumps" / f"{node_name}.json"

    def dump(self, node_name: str) -> dict[str, Any] | None:
        try:
            loaded: dict[str, Any] = json.loads(self.dump_path(node_name).read_text())
        except (OSError, ValueError):
            return None
        return loaded

    def converged(self, node_name: str) -> bool:
        dump = self.dump(node_name)
        return dump is not None and strip(dump) == expected_view(self.cluster_file, node_name)

    def wait_converged(self, *nodes: str, timeout: float = 60.0) -> None:
        """Until each node's dump is its view: generous, a loaded 2-core machine starts a
        whole stack slowly (one setup took 21 s); a converged node returns at once."""
        for name in nodes:
            wait_until(
                f"{name}'s dump to equal its view", lambda n=name: self.converged(n), timeout
            )
