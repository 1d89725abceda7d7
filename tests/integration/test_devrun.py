"""`make run` as a new user meets it: everything up on the example, then Ctrl-C stops it all."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from kpng_devrun.cluster_nodes import nodes_of
from kpng_devrun.procs import free_port
from tests.integration.harness import expected_view, strip, wait_until

pytestmark = pytest.mark.integration
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "cluster.yaml"


def processes_mentioning(text: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            pids.append(int(entry.name))
    return pids


@pytest.fixture
def devrun(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str, Path]]:
    port = free_port()
    workdir = tmp_path / "run"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kpng_devrun",
            "--cluster",
            str(EXAMPLE),
            "--listen",
            f"127.0.0.1:{port}",
            "--workdir",
            str(workdir),
            "--backend",
            "dump",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield process, f"http://127.0.0.1:{port}", workdir
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=20)
        if process.stdout:
            process.stdout.close()
        for pid in processes_mentioning(str(workdir)):
            os.kill(pid, signal.SIGKILL)


def log_tails(workdir: Path, lines: int = 30) -> str:
    out = []
    for log in sorted((workdir / "logs").glob("*")):
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        out.append(f"== {log.name}\n" + "\n".join(tail))
    return "\n".join(out)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def nodes(base: str) -> list[dict[str, Any]]:
    try:
        with httpx.Client(timeout=3) as client:
            body: list[dict[str, Any]] = client.get(f"{base}/api/v1/nodes").json()
            return body
    except httpx.HTTPError:
        return []


def test_make_run_serves_the_example_and_stops_everything_on_ctrl_c(
    devrun: tuple[subprocess.Popen[str], str, Path],
) -> None:
    process, base, workdir = devrun
    names = [n.name for n in nodes_of(EXAMPLE)]
    assert len(names) >= 3

    def all_in_sync() -> bool:
        listed = {n["name"]: n for n in nodes(base)}
        return all(
            name in listed
            and listed[name]["applied"] is not None
            and listed[name]["applied"]["seq"] == listed[name]["published"]["seq"]
            and listed[name]["inSync"]
            for name in names
        )

    try:
        wait_until("every example node applied what was published", all_in_sync, timeout=40)
    except AssertionError as exc:  # what each process logged, to see why (it failed once)
        raise AssertionError(f"{exc}; nodes: {nodes(base)}\n{log_tails(workdir)}") from None
    for name in names:
        dump = json.loads((workdir / "dumps" / f"{name}.json").read_text())
        assert strip(dump) == expected_view(EXAMPLE, name), name

    assert processes_mentioning(str(workdir))
    process.send_signal(signal.SIGINT)
    process.wait(timeout=20)
    assert process.stdout is not None
    output = process.stdout.read()
    assert "kpng is running" in output and "observer" in output and "nats-server" in output
    pids = [int(p) for p in re.findall(r"\[pid (\d+)\]", output)]
    assert len(pids) == len(names) + 3  # nats-server, watcher, observer and the agents
    wait_until("no process left", lambda: not any(alive(pid) for pid in pids), timeout=10)
