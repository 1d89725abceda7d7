"""The file source polls on its Clock."""

from __future__ import annotations

from pathlib import Path

from kpng.runtime.clock import FakeClock
from kpng.source import Replace, Synced
from kpng_watcher.file_source import FileSource
from tests.integration.harness import node
from tests.watcher.test_file_source import write


async def test_polling_waits_the_poll_interval_on_the_clock(tmp_path: Path) -> None:
    path = tmp_path / "cluster.yaml"
    write(path, [node("n1", "z1", "192.168.0.1")], as_list=True)
    clock = FakeClock()
    events = FileSource(path, poll_interval=0.7, clock=clock).events()
    assert isinstance(await anext(events), Replace)
    assert isinstance(await anext(events), Synced)
    assert clock.sleeps == [0.7]  # read once the file stayed the same across two polls
    write(path, [node("n1", "z1", "192.168.0.1"), node("n2", "z1", "192.168.0.2")], as_list=True)
    assert isinstance(await anext(events), Replace)  # changed at a poll, the same at the next
    assert clock.sleeps == [0.7, 0.7, 0.7]
    await events.aclose()
