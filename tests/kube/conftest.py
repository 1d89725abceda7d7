"""Fixtures for the Kubernetes source: a simulator in the test's loop, kubectl against it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kpng_apisim import ApiSimulator
from kpng_devrun.procs import ProcessGroup
from tests.apisim.conftest import HAVE_KUBECTL, Kubectl
from tests.apisim.conftest import sim as sim  # the simulator fixture, shared
from tests.integration.harness import Deployment

from .deploy import DeltaLog, KubeDeployment


@pytest.fixture
def kubectl(sim: ApiSimulator, tmp_path: Path) -> Kubectl:
    assert HAVE_KUBECTL, "kubectl is not installed (/usr/bin/kubectl)"
    return Kubectl(sim.kubeconfig_path, tmp_path / "kube-cache")


@pytest.fixture
async def kube(sim: ApiSimulator, tmp_path: Path) -> AsyncIterator[KubeDeployment]:
    """Processes against ``sim``, stopped (even on failure) before the simulator stops."""
    with ProcessGroup(tmp_path / "logs") as group:
        yield KubeDeployment(sim, Deployment(tmp_path, group))


@pytest.fixture
async def delta_log() -> AsyncIterator[DeltaLog]:
    log = DeltaLog()
    try:
        yield log
    finally:
        await log.close()
