"""Golden tables: cluster YAML in, the verdict for each packet on each node out.

A case is a directory under ``golden/``: ``cluster.yaml`` (what the watcher's file source
reads), ``packets.txt`` (one packet a line: node, source, protocol, destination:port; node
``*`` is every node, and ``node`` as source or destination is that node's address) and
``expected.txt``, the table the chain must give. ``KPNG_UPDATE_GOLDEN=1`` rewrites the
expected tables from what the chain gives (then review the diff).
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path

from kpng_watcher.file_source import FileSource, inline
from tests.component.chain import Chain, NodeSpec, nodes_of, running
from tests.component.verdicts import from_trace

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("KPNG_UPDATE_GOLDEN", "") not in ("", "0")
HEADER = "# node    source          proto  destination             verdict\n"


@dataclass(frozen=True, slots=True)
class PacketLine:
    node: str  # a node name or "*"
    source: str  # an address or "node"
    proto: str
    destination: str  # an address or "node"
    port: int


def read_packets(path: Path) -> list[PacketLine]:
    out = []
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].split()
        if not line:
            continue
        try:
            node, source, proto, target = line
            destination, port = target.rsplit(":", 1)
            out.append(PacketLine(node, source, proto, destination, int(port)))
        except ValueError:
            raise ValueError(f"{path}:{number}: expected 'node source proto dst:port'") from None
    return out


def _on(nodes: tuple[NodeSpec, ...], p: PacketLine) -> list[NodeSpec]:
    chosen = [n for n in nodes if p.node in ("*", n.name)]
    if not chosen:
        raise ValueError(f"no node {p.node} in the cluster")
    return chosen


def table(chain: Chain, packets: list[PacketLine]) -> str:
    """The verdict of every packet on its nodes, one aligned line each."""
    nodes = tuple(a.node for a in chain.agents.values())
    lines = [HEADER]
    for p in packets:
        for node in _on(nodes, p):
            src = node.ip if p.source == "node" else p.source
            dst = node.ip if p.destination == "node" else p.destination
            verdict = from_trace(chain[node.name].trace(src, p.proto, dst, p.port), src)
            lines.append(
                f"{node.name:<9} {src:<15} {p.proto:<6} {f'{dst}:{p.port}':<23} {verdict.text()}\n"
            )
    return "".join(lines)


async def run_case(case: Path) -> str:
    """The case's table, from the whole chain fed by its cluster file."""
    source = FileSource(case / "cluster.yaml", poll_interval=0.5, offload=inline)
    objects = source.load()
    assert objects is not None, f"{case}/cluster.yaml does not load"
    assert not source.stats.invalid_objects, source.stats.invalid_objects
    async with running(source, nodes_of(objects)) as chain:
        await chain.settle()
        return table(chain, read_packets(case / "packets.txt"))


def compare(case: Path, got: str) -> None:
    """Fail with a diff when ``got`` is not the case's expected table (or rewrite it)."""
    expected_file = case / "expected.txt"
    if UPDATE:
        expected_file.write_text(got)
        return
    expected = expected_file.read_text() if expected_file.exists() else ""
    if got != expected:
        diff = difflib.unified_diff(
            expected.splitlines(keepends=True),
            got.splitlines(keepends=True),
            f"{case.name}/expected.txt",
            f"{case.name} (the chain)",
        )
        raise AssertionError(
            f"golden case {case.name} differs (KPNG_UPDATE_GOLDEN=1 rewrites it):\n" + "".join(diff)
        )
