"""The bus contract's documentation: complete against the codec, and its example consumer runs."""

from __future__ import annotations

import ast
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kpng.bus import watcher_status

ROOT = Path(__file__).resolve().parents[2]
BUS = ROOT / "libs" / "kpng" / "bus"
CODEC = (BUS / "codec.py", BUS / "wire.py")
BUS_MD = ROOT / "docs" / "bus.md"
ASYNCAPI = ROOT / "docs" / "asyncapi.yaml"
CONSUMER = ROOT / "examples" / "consumer.py"
BIN = Path(sys.executable).parent


def _compared_strings(function: str) -> set[str]:
    """The string literals that ``kind == "..."`` compares with inside a codec function."""
    trees = [ast.parse(path.read_text()) for path in CODEC]
    found: set[str] = set()
    for node in (n for tree in trees for n in ast.walk(tree)):
        if isinstance(node, ast.FunctionDef) and node.name == function:
            for sub in ast.walk(node):
                if (
                    isinstance(sub, ast.Compare)
                    and isinstance(sub.left, ast.Name)
                    and sub.left.id == "kind"
                ):
                    found.update(
                        c.value
                        for c in sub.comparators
                        if isinstance(c, ast.Constant) and isinstance(c.value, str)
                    )
    return found


MESSAGE_KINDS = _compared_strings("decode")
OP_KINDS = _compared_strings("op_from_wire") | _compared_strings("ops_from_wire")


def _strings(tree: Any) -> Iterator[str]:
    """Every string (keys and values) in a parsed YAML document."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield str(key)
            yield from _strings(value)
    elif isinstance(tree, list):
        for item in tree:
            yield from _strings(item)
    elif isinstance(tree, str):
        yield tree


def _consts(tree: Any, field: str) -> set[str]:
    """The ``const`` values of every ``properties.<field>`` schema in the document."""
    out: set[str] = set()
    if isinstance(tree, dict):
        prop = (
            tree.get("properties", {}).get(field)
            if isinstance(tree.get("properties"), dict)
            else None
        )
        if isinstance(prop, dict) and "const" in prop:
            out.add(prop["const"])
        for value in tree.values():
            out |= _consts(value, field)
    elif isinstance(tree, list):
        for item in tree:
            out |= _consts(item, field)
    return out


def test_codec_kinds_were_found() -> None:
    assert {"delta", "tick", "snapshot", "snapshot-request", "error", "status"} <= MESSAGE_KINDS
    assert {"svc", "-svc", "ep", "-ep", "node", "-node", "eps"} <= OP_KINDS


def test_asyncapi_is_valid_yaml_with_every_kind() -> None:
    doc = yaml.safe_load(ASYNCAPI.read_text())
    assert str(doc["asyncapi"]).startswith(("2.6", "3."))
    assert doc["channels"]
    kinds = MESSAGE_KINDS | {watcher_status.KIND}  # the watcher's own status is JSON
    assert _consts(doc, "kind") == kinds
    assert _consts(doc, "op") == OP_KINDS
    message_names = {m["name"] for m in doc["components"]["messages"].values()}
    assert message_names == kinds


def test_asyncapi_refs_resolve() -> None:
    doc = yaml.safe_load(ASYNCAPI.read_text())
    for ref in (s for s in _strings(doc) if s.startswith("#/")):
        target: Any = doc
        for part in ref[2:].split("/"):
            assert isinstance(target, dict) and part in target, f"dangling $ref {ref}"
            target = target[part]


@pytest.mark.parametrize("kind", sorted(MESSAGE_KINDS | OP_KINDS))
def test_bus_md_documents_every_kind(kind: str) -> None:
    assert f"`{kind}`" in BUS_MD.read_text(), f"docs/bus.md does not mention `{kind}`"


# -- the example consumer against a real nats-server and watcher ---------------------------
CLUSTER = textwrap.dedent(
    """\
    apiVersion: v1
    kind: List
    items:
    - apiVersion: v1
      kind: Node
      metadata: {name: node-a1, labels: {topology.kubernetes.io/zone: zone-a}}
      status: {addresses: [{type: InternalIP, address: 10.0.0.11}]}
    - apiVersion: v1
      kind: Node
      metadata: {name: node-b1, labels: {topology.kubernetes.io/zone: zone-b}}
      status: {addresses: [{type: InternalIP, address: 10.0.0.21}]}
    - apiVersion: v1
      kind: Service
      metadata: {name: web, namespace: shop}
      spec:
        type: ClusterIP
        clusterIP: 10.96.0.10
        ports: [{name: http, port: 80, targetPort: 8080, protocol: TCP}]
    - apiVersion: discovery.k8s.io/v1
      kind: EndpointSlice
      metadata:
        name: web-abc
        namespace: shop
        labels: {kubernetes.io/service-name: web}
      addressType: IPv4
      ports: [{name: http, port: 8080, protocol: TCP}]
      endpoints:
      - addresses: [10.244.1.5]
        nodeName: node-a1
        zone: zone-a
        conditions: {ready: true, serving: true, terminating: false}
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"nats-server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nats-server did not listen on port {port} in {timeout}s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def _env() -> dict[str, str]:
    """The subprocesses' environment: the repository's packages importable in any case."""
    paths = [str(ROOT / d) for d in ("libs", "services/watcher", "services/agent")]
    extra = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([*paths, *([extra] if extra else [])])}


@pytest.fixture
def nats_url() -> Iterator[str]:
    binary = BIN / "nats-server"
    if not binary.exists():
        pytest.fail(f"{binary} is not installed (make venv installs it)")
    port = _free_port()
    proc = subprocess.Popen(
        [str(binary), "-a", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(port, proc)
        yield f"nats://127.0.0.1:{port}"
    finally:
        _stop(proc)


@pytest.fixture
def watcher(nats_url: str, tmp_path: Path) -> Iterator[Path]:
    """A running kpng-watcher on a small cluster file; yields the path of its log."""
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text(CLUSTER)
    log = tmp_path / "watcher.log"
    with log.open("wb") as log_file:
        proc = subprocess.Popen(
            [
                str(BIN / "kpng-watcher"),
                "--source",
                f"file:{cluster}",
                "--nats",
                nats_url,
                "--nats-insecure",
                "--log-level",
                "debug",
            ],
            stdout=subprocess.DEVNULL,
            stderr=log_file,
            env=_env(),
        )
    try:
        yield log
    finally:
        _stop(proc)


@pytest.mark.integration
def test_example_consumer_prints_the_snapshot(nats_url: str, watcher: Path) -> None:
    consumer = subprocess.Popen(
        [
            sys.executable,
            str(CONSUMER),
            "--nats",
            nats_url,
            "--nats-insecure",
            "--node",
            "node-a1",
            "--prefix",
            "kpng",
            "--max-events",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(),
    )
    try:
        try:
            out, err = consumer.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            consumer.kill()
            out, err = consumer.communicate()
            raise AssertionError(
                f"consumer did not finish in time.\nconsumer stdout: {out.decode()}\n"
                f"consumer stderr: {err.decode()}\nwatcher log: {watcher.read_text()}"
            ) from None
    finally:
        _stop(consumer)
    assert consumer.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    assert len(lines) == 1, lines
    fields = dict(item.split("=", 1) for item in lines[0].split())
    assert fields["kind"] == "snapshot"
    assert fields["services"] == "1"
    assert fields["epoch"]
    assert int(fields["seq"]) == 0
