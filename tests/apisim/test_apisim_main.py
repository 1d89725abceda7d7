"""``python -m kpng_apisim`` runs standalone, writes its kubeconfig and stops on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from .conftest import HAVE_KUBECTL, Kubectl

pytestmark = pytest.mark.kube

TOOLS = Path(__file__).resolve().parents[2] / "tools"


async def test_module_entry_point(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kc"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TOOLS), os.environ.get("PYTHONPATH", "")]),
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "kpng_apisim",
        "--port",
        "0",
        "--kubeconfig",
        str(kubeconfig),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env=env,
    )
    try:
        assert proc.stdout is not None
        url = (await asyncio.wait_for(proc.stdout.readline(), timeout=20)).decode().strip()
        assert url.startswith("http://127.0.0.1:")
        assert url in kubeconfig.read_text()
        if HAVE_KUBECTL:
            result = await Kubectl(kubeconfig, tmp_path / "cache")("get", "namespaces")
            assert "kube-system" in result.out
    finally:
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), timeout=10) == 0
        if proc.stdout is not None:
            await proc.stdout.read()
