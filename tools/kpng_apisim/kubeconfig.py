"""A kubeconfig that points kubectl and client libraries at the simulator."""

from __future__ import annotations

from pathlib import Path

import yaml

CONTEXT = "kpng-apisim"


def kubeconfig(url: str, namespace: str = "default") -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": CONTEXT, "cluster": {"server": url, "insecure-skip-tls-verify": True}}
        ],
        "users": [{"name": CONTEXT, "user": {"token": "kpng-apisim-dummy-token"}}],
        "contexts": [
            {
                "name": CONTEXT,
                "context": {"cluster": CONTEXT, "user": CONTEXT, "namespace": namespace},
            }
        ],
        "current-context": CONTEXT,
        "preferences": {},
    }


def write_kubeconfig(path: Path, url: str) -> Path:
    """Write the kubeconfig for ``url`` to ``path`` (mode 0600) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(kubeconfig(url), sort_keys=False))
    path.chmod(0o600)
    return path
