"""`kpng` against a running observer (with a token) over a real bus, watcher and agents."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from kpng_cli.main import main
from tests.integration.harness import Deployment, wait_until
from tests.observer.cluster import NODES, objects
from tests.observer.conftest import start_observer

pytestmark = pytest.mark.integration

TOKEN = "cli-test-token"


@pytest.fixture
def observer(deployment: Deployment, tmp_path: Path) -> str:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    deployment.write_cluster(objects())
    deployment.start_nats()
    deployment.start_watcher()
    for name in NODES:
        deployment.start_agent(name)
    base = start_observer(deployment, "--token-file", str(token_file))
    deployment.wait_converged(*NODES)
    return base


def kpng(observer: str, *argv: str, token: str | None = TOKEN) -> tuple[int, str]:
    out = io.StringIO()
    env = {"KPNG_OBSERVER": observer}
    if token is not None:
        env["KPNG_TOKEN"] = token
    code = main(list(argv), environ=env, out=out)
    return code, out.getvalue()


def test_status_services_explain_and_watch(
    observer: str, capsys: pytest.CaptureFixture[str]
) -> None:
    def all_ok() -> bool:
        code, out = kpng(observer, "-o", "json", "status")
        return code == 0 and {n["name"]: n["state"] for n in json.loads(out)} == dict.fromkeys(
            NODES, "ok"
        )

    wait_until("every node ok, as kpng status -o json says", all_ok, timeout=20)

    code, out = kpng(observer, "status")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["NODE", "STATE", "APPLIED"]
    assert sorted(line.split()[0] for line in lines[1:-1]) == sorted(NODES)
    assert all(line.split()[1] == "ok" for line in lines[1:-1])
    assert lines[-1] == f"{len(NODES)} nodes: {len(NODES)} ok"

    code, out = kpng(observer, "services")
    assert code == 0
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
    assert rows["demo/web"][1:4] == ["NodePort", "10.96.10.1", "80:30080/TCP"]
    code, out = kpng(observer, "-o", "json", "services", "-n", "demo")
    assert {s["ns"] for s in json.loads(out)} == {"demo"}

    code, out = kpng(observer, "explain", "node-a2", "tcp", "10.96.10.1:80", "--from", "10.244.2.5")
    assert code == 0
    assert out.splitlines()[0].startswith("node-a2: TCP 10.96.10.1:80 -> forward")
    assert "  masquerade: no" in out.splitlines()
    assert "  -> 10.244.1.20:8080 on node-a1" in out and "10.244.3.20:8080" in out
    code, out = kpng(observer, "-o", "json", "explain", "node-a1", "TCP", "10.96.10.9:80")
    assert code == 0 and json.loads(out)["verdict"] == "reject"

    code, out = kpng(observer, "watch", "--after", "0", "--count", "3")
    assert code == 0 and len(out.splitlines()) == 3
    code, out = kpng(observer, "-o", "json", "watch", "--after", "0", "--count", "2")
    events: list[dict[str, Any]] = [json.loads(line) for line in out.splitlines()]
    assert len(events) == 2 and all({"id", "type", "data"} <= set(e) for e in events)
    capsys.readouterr()


def test_a_missing_or_wrong_token_is_an_error_naming_the_request(
    observer: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert kpng(observer, "status", token=None)[0] == 1
    assert "401" in capsys.readouterr().err
    assert kpng(observer, "status", token="wrong")[0] == 1
    err = capsys.readouterr().err
    assert err.startswith("kpng status: GET ") and "/api/v1/nodes: 401" in err
    code, _ = kpng(observer, "explain", "node-a1", "tcp", "10.96.10.1:80", "--from", "nowhere")
    err = capsys.readouterr().err
    assert code == 1 and "422" in err and "nowhere" in err  # the observer's own reason
    # fromPod reaches the observer, which tells pods by address here: refused by name
    code, _ = kpng(observer, "explain", "node-a1", "tcp", "10.96.10.1:80", "--from-pod")
    err = capsys.readouterr().err
    assert code == 1 and "422" in err and "fromPod" in err
