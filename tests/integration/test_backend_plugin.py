"""A backend installed as a separate distribution (examples/backend-plugin) is found by the
agent through the ``kpng.backends`` entry points and programs the node's view.

The plugin goes into a fresh virtualenv made here, offline (no index, no build isolation);
that venv sees this repository's sources and the project venv's packages through a ``.pth``
file, and the project venv is left as it was.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.integration.harness import Deployment, expected_view, node, service, slice_, wait_until

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SOURCE_ROOTS = ("libs", "services/watcher", "services/agent", "services/observer", "tools")


def clean_env() -> dict[str, str]:
    """The environment without PYTHONPATH: the fresh venv must find everything itself."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    return env


def project_site_packages() -> Path:
    """The site-packages of the venv running the tests (the project's)."""
    found = [Path(p) for p in site.getsitepackages() if Path(p).is_relative_to(sys.prefix)]
    assert found, f"no site-packages under {sys.prefix}"
    return found[0]


def plugin_venv(where: Path) -> Path:
    """A new venv with the example plugin installed; returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True)
    python = where / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # this repository's sources first, then the project venv's packages (pip, setuptools,
    # kpng's dependencies), its own .pth files processed too
    lines = [str(REPO / root) for root in SOURCE_ROOTS]
    lines.append(f"import site; site.addsitedir({str(project_site_packages())!r})")
    (Path(purelib) / "kpng-dev.pth").write_text("\n".join(lines) + "\n")
    source = where.parent / "backend-plugin"
    shutil.copytree(REPO / "examples" / "backend-plugin", source)  # builds outside the repo
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            str(source),
        ],
        check=True,
        env=clean_env(),
        timeout=120,
    )
    return python


def counts_of(view: dict[str, Any]) -> dict[str, int]:
    return {key: len(s["endpoints"]) for key, s in view["services"].items()}


def read(path: Path) -> dict[str, Any] | None:
    try:
        loaded: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return loaded


def cluster(n1_endpoints: list[str]) -> list[dict[str, Any]]:
    return [
        node("n1", "z1", "192.168.0.1"),
        node("n2", "z2", "192.168.0.2"),
        service("web", "10.96.0.10"),
        slice_("web", [(ip, "n1") for ip in n1_endpoints] + [("10.244.2.5", "n2")]),
        service("api", "10.96.0.11"),
        slice_("api", [("10.244.1.20", "n1")]),
    ]


def host_conntrack_sysctls() -> dict[str, str]:
    """The conntrack sysctls the nftables backend sets, as this machine has them (read only)."""
    root = Path("/proc/sys/net/netfilter")
    names = ("nf_conntrack_max", "nf_conntrack_tcp_timeout_established")
    names += ("nf_conntrack_tcp_timeout_close_wait",)
    return {n: (root / n).read_text() if (root / n).exists() else "" for n in names}


def test_an_installed_plugin_backend_programs_the_nodes_view(
    deployment: Deployment, tmp_path: Path
) -> None:
    shared = project_site_packages()
    before = sorted(p.name for p in shared.iterdir())
    python = plugin_venv(tmp_path / "venv")

    listed = subprocess.run(
        [str(python), "-m", "kpng_agent.main", "--help"],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    assert "{counts,dump,nftables}" in listed.stdout and "--counts-file" in listed.stdout
    assert sorted(p.name for p in shared.iterdir()) == before, "the project venv was changed"

    sysctls = host_conntrack_sysctls()
    deployment.write_cluster(cluster(["10.244.1.5"]))
    deployment.start_nats()
    deployment.start_watcher()
    counts = tmp_path / "n1.counts.json"
    deployment.group.start(
        "agent-n1-counts",
        [
            *("env", "-u", "PYTHONPATH", str(python), "-m", "kpng_agent.main"),
            *(
                "--node",
                "n1",
                "--nats",
                deployment.url,
                "--nats-insecure",
                "--status-interval",
                "0.5",
            ),
            *("--backend", "counts", "--counts-file", str(counts)),
        ],
    )

    def programmed() -> bool:
        written = read(counts)
        want = counts_of(expected_view(deployment.cluster_file, "n1"))
        return written is not None and written["per_service"] == want

    wait_until("the counts backend to program n1's view", programmed, timeout=20)
    first = read(counts)
    assert first is not None and first["full"] is True
    assert first["per_service"] == {"default/api": 1, "default/web": 2}

    # a change arrives as a delta and the plugin applies its operations
    deployment.write_cluster(cluster(["10.244.1.5", "10.244.1.6"]))
    wait_until("the delta to reach the counts backend", programmed, timeout=20)
    second = read(counts)
    assert second is not None and second["full"] is False and second["seq"] > first["seq"]
    assert (second["services"], second["endpoints"]) == (2, 4)
    # the plugin's agent runs on this machine: it must leave the node's conntrack alone
    assert host_conntrack_sysctls() == sysctls
