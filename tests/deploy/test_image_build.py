"""The image is reproducible and self-describing: dependencies pinned by constraints.txt (the
tested environment, also used by `make venv`), OCI labels, a HEALTHCHECK."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib

import yaml

from tests.deploy.test_deploy_files import ROOT, dockerfile_instructions


def _constraints() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep and version, f"constraints.txt: {line!r} is not NAME==VERSION"
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def _requirement_names(extra: str) -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for name in ("watcher", "agent", "observer", "auth") if extra == "all" else (extra,):
        reqs += project["optional-dependencies"][name]
    return {re.sub(r"[-_.]+", "-", re.split(r"[<>=!~\[ ;]", r)[0]).lower() for r in reqs}


def test_constraints_pin_every_product_dependency_and_not_kpng() -> None:
    pins = _constraints()
    assert "kpng" not in pins
    missing = _requirement_names("all") - set(pins)
    assert not missing, f"constraints.txt lacks {sorted(missing)}: run make constraints"


def test_the_image_build_and_make_install_use_the_constraints() -> None:
    ins = dockerfile_instructions()
    copies = " ".join(rest for word, rest in ins if word == "COPY")
    assert "constraints.txt" in copies
    runs = " ".join(rest for word, rest in ins if word == "RUN")
    assert re.search(r"pip wheel (--constraint|-c) constraints\.txt", runs), runs
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"pip install .*-c constraints\.txt -e '\.\[dev\]'", makefile)
    assert re.search(r"^constraints:", makefile, re.M)
    assert "pip freeze --exclude-editable --exclude kpng" in makefile


def test_the_image_has_oci_labels() -> None:
    labels = " ".join(rest for word, rest in dockerfile_instructions() if word == "LABEL")
    for key in ("title", "description", "licenses", "source", "version", "revision", "created"):
        assert f"org.opencontainers.image.{key}=" in labels, key
    assert 'org.opencontainers.image.licenses="Apache-2.0"' in labels


def test_the_healthcheck_command_runs() -> None:
    """The HEALTHCHECK is exec form and its Python is valid; with no URL to check it passes,
    with a URL that nothing serves it fails."""
    checks = [rest for word, rest in dockerfile_instructions() if word == "HEALTHCHECK"]
    assert len(checks) == 1
    argv = yaml.safe_load(checks[0][checks[0].index("CMD") + 3 :].strip())
    assert argv[:2] == ["python", "-c"]
    run = [sys.executable, "-c", argv[2]]
    ok = subprocess.run(run, env={"HEALTHCHECK_URL": "none"}, timeout=30, check=False)
    assert ok.returncode == 0
    bad = subprocess.run(
        run,
        env={"HEALTHCHECK_URL": "http://127.0.0.1:1/livez"},
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert bad.returncode != 0
