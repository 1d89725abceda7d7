"""Fixtures: a running simulator per test, kubectl and kubernetes_asyncio pointed at it."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes_asyncio import client, config

from kpng_apisim import ApiSimulator

KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"
HAVE_KUBECTL = Path(KUBECTL).exists()


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[ApiSimulator]:
    simulator = ApiSimulator(kubeconfig_path=tmp_path / "kubeconfig", bookmark_interval=0.2)
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.stop()


@dataclass(frozen=True)
class Result:
    rc: int
    out: str
    err: str


@dataclass(frozen=True)
class Kubectl:
    kubeconfig: Path
    cache_dir: Path

    async def __call__(self, *args: str, stdin: str | None = None, check: bool = True) -> Result:
        proc = await asyncio.create_subprocess_exec(
            KUBECTL,
            f"--kubeconfig={self.kubeconfig}",
            f"--cache-dir={self.cache_dir}",
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(
            proc.communicate(stdin.encode() if stdin is not None else None), timeout=30
        )
        result = Result(proc.returncode or 0, out.decode(), err.decode())
        if check and result.rc != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.err}")
        return result


@pytest.fixture
def kubectl(sim: ApiSimulator, tmp_path: Path) -> Kubectl:
    if not HAVE_KUBECTL:
        pytest.fail("kubectl is not installed: the simulator tests drive the real kubectl")
    return Kubectl(sim.kubeconfig_path, tmp_path / "kube-cache")


@pytest.fixture
async def api(sim: ApiSimulator) -> AsyncIterator[client.ApiClient]:
    configuration = client.Configuration()
    await config.load_kube_config(
        config_file=str(sim.kubeconfig_path), client_configuration=configuration
    )
    async with client.ApiClient(configuration) as api_client:
        yield api_client


def service(name: str, namespace: str = "default", **labels: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 80}]},
    }


async def eventually(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``predicate`` until it holds; fail after ``timeout`` seconds."""
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached in time")
