"""Fixtures for the Kubernetes source: a simulator in the test's loop, kubectl against it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from kpng_apisim import ApiSimulator

from tests.apisim.conftest import HAVE_KUBECTL, Kubectl


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[ApiSimulator]:
    simulator = ApiSimulator(kubeconfig_path=tmp_path / "kubeconfig", bookmark_interval=0.2)
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.stop()


@pytest.fixture
def kubectl(sim: ApiSimulator, tmp_path: Path) -> Kubectl:
    assert HAVE_KUBECTL, "kubectl is not installed (/usr/bin/kubectl)"
    return Kubectl(sim.kubeconfig_path, tmp_path / "kube-cache")


async def eventually(what: str, check: Callable[[], Any], timeout: float = 10.0) -> None:
    """Poll ``check`` (without blocking the loop the simulator runs in) until it holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)
