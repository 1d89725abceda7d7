"""The dump backend writes the view when it changed, and only then (issue 13: a rebase to a
new watcher's epoch, same content, writes nothing on any backend: the file is not
rewritten, its mtime unchanged)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from kpng.bus.consumer import Applied
from kpng_agent.backends.dump import DumpBackend
from tests.agent.helpers import ep, event, udp, view

OLD = 1_000_000_000_000_000_000  # an mtime long past: any write shows, however coarse


def _written(tmp_path: Path) -> tuple[DumpBackend, Path]:
    path = tmp_path / "dump.json"
    return DumpBackend("node-a", path), path


def _age(path: Path) -> None:
    os.utime(path, ns=(OLD, OLD))


async def test_a_rebase_to_a_new_epoch_does_not_rewrite_the_file(tmp_path: Path) -> None:
    backend, path = _written(tmp_path)
    v = view((udp(), [ep("10.244.1.1")]))
    await backend.program(event(v), full=True)
    _age(path)
    before = path.read_text()
    # what the client yields for a rebase: a delta event at the new (epoch, seq), no ops
    await backend.program(Applied("delta", "e2", 7, v, ()), full=False)
    assert path.stat().st_mtime_ns == OLD and path.read_text() == before
    assert json.loads(before)["epoch"] == "e1" and backend.writes == 1


async def test_a_full_snapshot_of_the_same_view_does_not_rewrite_the_file(
    tmp_path: Path,
) -> None:
    backend, path = _written(tmp_path)
    v = view((udp(), [ep("10.244.1.1")]))
    await backend.program(event(v), full=True)
    _age(path)
    again = view((udp(), [ep("10.244.1.1")]))  # an equal view (a consumer without digest)
    await backend.program(Applied("snapshot", "e2", 0, again, ()), full=True)
    assert path.stat().st_mtime_ns == OLD and backend.writes == 1


async def test_a_change_is_written_with_its_epoch_and_seq(tmp_path: Path) -> None:
    backend, path = _written(tmp_path)
    old = view((udp(), [ep("10.244.1.1")]))
    await backend.program(event(old), full=True)
    await backend.program(Applied("delta", "e2", 3, old, ()), full=False)  # a rebase
    _age(path)
    new = view((udp(), [ep("10.244.1.2")]))
    changed = event(new, old, seq=4)
    await backend.program(Applied("delta", "e2", 4, new, changed.ops), full=False)
    written = json.loads(path.read_text())
    assert path.stat().st_mtime_ns != OLD and backend.writes == 2
    assert (written["epoch"], written["seq"]) == ("e2", 4)
    ips = [e["ip"] for e in written["services"]["default/dns"]["endpoints"]]
    assert ips == ["10.244.1.2"]


async def test_the_first_event_is_written_even_without_operations(tmp_path: Path) -> None:
    backend, path = _written(tmp_path)
    await backend.program(Applied("delta", "e1", 1, view(), ()), full=False)
    assert json.loads(path.read_text())["seq"] == 1
