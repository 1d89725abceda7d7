"""The chart rendered by a real helm (v4, ``<venv>/bin/helm``, installed by
``tools/install-helm.py`` from ``make test-deps``), for the deployment tests."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "kpng"
VALUES = Path(__file__).resolve().parent / "values"
HELM = Path(sys.executable).parent / "helm"
RELEASE, NAMESPACE = "kpng", "kube-system"

_SOURCE = re.compile(r"^# Source: [^/]+/templates/(\S+)$", re.MULTILINE)


class HelmError(AssertionError):
    pass


def helm(*args: str) -> str:
    """helm's stdout; a HelmError with its output when it fails."""
    if not HELM.exists():
        raise HelmError(
            f"no helm at {HELM}: `make test-deps` installs it "
            f"({Path(sys.executable).name} tools/install-helm.py)"
        )
    proc = subprocess.run([str(HELM), *args], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        # lint reports its findings on stdout, the other commands on stderr
        raise HelmError(f"helm {shlex.join(args)}: {proc.stderr.strip()}\n{proc.stdout.strip()}")
    return proc.stdout


def values_args(name: str) -> list[str]:
    """-f the matrix file tests/deploy/values/NAME.yaml, and the helm flags its
    ``# helm-args:`` line asks for (the API versions a cluster would have)."""
    path = VALUES / f"{name}.yaml"
    extra = re.findall(r"^# helm-args: (.*)$", path.read_text(), re.MULTILINE)
    return ["-f", str(path), *(a for line in extra for a in shlex.split(line))]


def matrix() -> list[str]:
    return sorted(p.stem for p in VALUES.glob("*.yaml"))


def _chart(command: Sequence[str], args: Sequence[str], overrides: Mapping[str, Any] | None) -> str:
    """helm COMMAND over the chart with ARGS, and OVERRIDES as one more values file."""
    with tempfile.TemporaryDirectory() as tmp:
        extra: list[str] = []
        if overrides:
            path = Path(tmp, "overrides.yaml")
            path.write_text(yaml.safe_dump(dict(overrides)))
            extra = ["-f", str(path)]
        return helm(*command, RELEASE, str(CHART), "-n", NAMESPACE, *args, *extra)


def template(*args: str, overrides: Mapping[str, Any] | None = None) -> str:
    """`helm template` of the chart (hooks included, as GitOps tools apply them)."""
    return _chart(["template"], args, overrides)


def split_sources(text: str) -> dict[str, str]:
    """{template file name: its rendered YAML} of a `helm template` output."""
    out: dict[str, str] = {}
    parts = _SOURCE.split(text)
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        out[name] = out.get(name, "") + "\n---\n" + body
    return out


def notes(*args: str, overrides: Mapping[str, Any] | None = None) -> str:
    """NOTES.txt as `helm install` prints it (a client-side dry run: no cluster)."""
    out = _chart(["install"], ["--dry-run=client", "-o", "json", *args], overrides)
    return str(json.loads(out)["info"]["notes"])


@cache
def rendered(name: str) -> dict[str, str]:
    """The matrix file NAME rendered: {template file: YAML, "NOTES.txt": notes}; no notes
    for files that need a cluster's API versions (`helm install` takes none offline)."""
    args = values_args(name)
    files = split_sources(template(*args))
    if "--api-versions" not in args:
        files["NOTES.txt"] = notes(*args)
    return files


def manifests(files: Mapping[str, str]) -> list[dict[str, Any]]:
    """The Kubernetes objects of rendered YAML templates."""
    out = []
    for name, text in files.items():
        if not name.endswith((".yaml", ".yml")):
            continue
        out += [doc for doc in yaml.safe_load_all(text) if doc is not None]
    return out
