"""The programs as deployed from configuration files: a watcher and an agent configured by
--config files (the agent's a kube-proxy KubeProxyConfiguration) converge, and an observer's
KPNG_LISTEN overrides its file's listen."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import yaml

from kpng_devrun.procs import free_ports, port_is_free, venv_bin, wait_for_port
from tests.integration.harness import Deployment
from tests.observer.cluster import objects

pytestmark = pytest.mark.integration


def _write(path: Path, doc: dict[str, object]) -> str:
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def test_programs_run_from_config_files_and_the_environment_overrides(
    deployment: Deployment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployment.write_cluster(objects())
    deployment.start_nats()
    watcher = _write(
        tmp_path / "watcher.yaml",
        {"source": f"file:{deployment.cluster_file}", "nats": deployment.url,
         "nats-insecure": True, "tick-interval": 0.5},
    )  # fmt: skip
    deployment.group.start("watcher", [venv_bin("kpng-watcher"), "--config", watcher])
    kube_proxy = _write(
        tmp_path / "kube-proxy.yaml",
        {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "hostnameOverride": "node-a1",
            "clusterCIDR": "10.244.0.0/16",
            "iptables": {"masqueradeBit": 14, "syncPeriod": "30s"},
        },
    )
    deployment.group.start(
        "agent-node-a1",
        [
            venv_bin("kpng-agent"),
            "--config",
            kube_proxy,
            "--nats",
            deployment.url,
            "--nats-insecure",
            "--dump-file",
            str(deployment.dump_path("node-a1")),
        ],
    )
    deployment.wait_converged("node-a1", timeout=20)

    in_file, in_env = free_ports(2)
    observer = _write(
        tmp_path / "observer.yaml",
        {"nats": deployment.url, "nats-insecure": True, "listen": f"127.0.0.1:{in_file}"},
    )
    monkeypatch.setenv("KPNG_LISTEN", f"127.0.0.1:{in_env}")  # the child inherits it
    deployment.group.start("observer", [venv_bin("kpng-observer"), "--config", observer])
    wait_for_port("127.0.0.1", in_env, timeout=20)
    assert httpx.get(f"http://127.0.0.1:{in_env}/livez", timeout=5).status_code == 200
    assert port_is_free("127.0.0.1", in_file)
