"""The wheel: only the product packages, the SDK's dependencies as the base, each service's
as an extra; and the SDK imports none of the services' libraries."""

from __future__ import annotations

import email.parser
import os
import shutil
import subprocess
import sys
import zipfile
from email.message import Message
from pathlib import Path

import pytest

from tests.layout.tree import PRODUCT_PACKAGES, ROOT, pythonpath

SDK = {"msgpack", "nats-py", "zstandard", "nkeys"}
SERVICE_LIBRARIES = ("fastapi", "kubernetes_asyncio", "pyroute2", "prometheus_client")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from a copy of the tree (the build writes beside its sources, which
    must not be the working tree); tools/ is copied too, and must stay out."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src)
    for name in ("libs", "services", "tools"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("wheel")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(out), str(src)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (found,) = out.glob("kpng-*.whl")
    return found


def _metadata(wheel: Path) -> Message:
    with zipfile.ZipFile(wheel) as z:
        (name,) = [n for n in z.namelist() if n.endswith(".dist-info/METADATA")]
        return email.parser.Parser().parsestr(z.read(name).decode())


def _requirement_name(req: str) -> str:
    for stop in "<>=!~;[ ":
        req = req.split(stop)[0]
    return req.strip()


def test_the_wheel_holds_only_the_product_packages(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == set(PRODUCT_PACKAGES)
    assert "kpng/py.typed" in names
    assert "kpng_observer/static/index.html" in names  # package data still ships
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)


def test_the_base_install_is_the_sdk(wheel: Path) -> None:
    meta = _metadata(wheel)
    requires = meta.get_all("Requires-Dist") or []
    base = {_requirement_name(r) for r in requires if "extra ==" not in r}
    assert base == SDK

    def extra(name: str) -> set[str]:
        return {_requirement_name(r) for r in requires if f'extra == "{name}"' in r}

    assert extra("watcher") >= {"kubernetes-asyncio", "PyYAML", "prometheus-client"}
    assert extra("agent") >= {"pyroute2", "prometheus-client"}
    assert extra("observer") >= {"fastapi", "uvicorn", "prometheus-client"}
    assert extra("auth") >= {"cryptography", "PyYAML"}
    assert {r for r in requires if 'extra == "all"' in r} == {
        'kpng[agent,auth,observer,watcher]; extra == "all"'
    }
    assert "kpng" in extra("dev")  # dev pulls kpng[all]
    assert set(meta.get_all("Provides-Extra") or []) == {
        "watcher",
        "agent",
        "observer",
        "auth",
        "all",
        "dev",
    }
    assert meta["License-Expression"] == "Apache-2.0"
    assert meta["Author"] == "kpng developers"
    assert meta["Description-Content-Type"] == "text/markdown"
    assert "Typing :: Typed" in (meta.get_all("Classifier") or [])


def test_the_entry_points_name_packages_in_the_wheel(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        (name,) = [n for n in z.namelist() if n.endswith(".dist-info/entry_points.txt")]
        text = z.read(name).decode()
        for line in text.splitlines():
            if "=" in line:
                module = line.split("=")[1].split(":")[0].strip()
                assert module.replace(".", "/") + ".py" in z.namelist(), line


def _loaded_after(imports: str) -> set[str]:
    code = f"import sys\n{imports}\nprint(' '.join(sorted(m.split('.')[0] for m in sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": pythonpath()},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return set(result.stdout.split())


def test_the_sdk_loads_none_of_the_services_libraries() -> None:
    loaded = _loaded_after("import kpng.bus.client, kpng.bus.consumer, kpng.bus.codec")
    assert {"kpng", "msgpack", "zstandard"} <= loaded
    assert loaded.isdisjoint(SERVICE_LIBRARIES), loaded & set(SERVICE_LIBRARIES)


def test_the_consumer_and_codec_do_not_load_nats() -> None:
    loaded = _loaded_after("import kpng.bus.consumer, kpng.bus.codec, kpng.bus")
    assert "kpng" in loaded and "msgpack" in loaded
    assert "nats" not in loaded
    assert loaded.isdisjoint(SERVICE_LIBRARIES)


def test_the_cli_runs_on_the_base_install() -> None:
    """`kpng` (the operator CLI) loads no service library and no PyYAML: the base install,
    without extras, is enough to ask an observer."""
    loaded = _loaded_after("import kpng_cli.main")
    assert "kpng_cli" in loaded
    assert loaded.isdisjoint({*SERVICE_LIBRARIES, "yaml", "httpx", "nats"}), loaded


def test_the_cli_is_a_console_script(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        (name,) = [n for n in z.namelist() if n.endswith(".dist-info/entry_points.txt")]
        assert "kpng = kpng_cli.main:main" in z.read(name).decode()
