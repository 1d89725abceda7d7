"""Reproduction 6, end to end on a FakeServer: an emptied or cut cluster file removes nothing
anywhere, and a held-back reload is shown by the observer (GET /api/v1/watcher)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from kpng.bus.fake import FakeServer
from kpng.runtime.clock import SYSTEM
from kpng_observer.api import create_app
from kpng_observer.feed import Feed
from kpng_observer.state import ObserverState
from kpng_watcher.announce import announce
from kpng_watcher.file_source import FileSettings, FileSource
from kpng_watcher.publisher import Publisher, PublisherSettings
from tests.faults.test_file_source_safety import services, write
from tests.integration.harness import node, until
from tests.leaks import cancel_all


async def test_a_held_reload_removes_nothing_and_the_observer_shows_it(tmp_path: Path) -> None:
    path = tmp_path / "cluster.yaml"
    write(path, [node("n1", "z1", "192.168.0.1"), *services(4)])
    server = FakeServer()
    watcher_bus, observer_bus = server.connect(name="watcher"), server.connect(name="observer")
    source = FileSource(path, settings=FileSettings(poll_interval=0.01, hold_seconds=3600.0))
    publisher = Publisher(watcher_bus, source, PublisherSettings(coalesce=0.01))
    state = ObserverState()
    feed = Feed(observer_bus, state)
    await feed.start()
    tasks = [
        asyncio.create_task(publisher.run()),
        asyncio.create_task(feed.follow_global()),
        asyncio.create_task(announce(watcher_bus, publisher.epoch, source.stats, SYSTEM, 0.02)),
    ]
    app = create_app(state, _no_view, lambda: True)
    transport = httpx.ASGITransport(app=app)
    try:
        await until(lambda: len(state.view.services) == 4)
        async with httpx.AsyncClient(transport=transport, base_url="http://o") as client:
            assert (await client.get("/api/v1/watcher")).json()["status"]["reloadHeld"] is False
            path.write_text("")  # `: > cluster.yaml`
            await until(lambda: source.file_stats.empty_files >= 1)
            write(path, [node("n1", "z1", "192.168.0.1"), *services(1)])  # cut short
            await until(
                lambda: state.watcher_status is not None and state.watcher_status.reload_held
            )
            body = (await client.get("/api/v1/watcher")).json()
            assert body["state"] == "ok" and body["status"]["heldReloads"] == 1
            await asyncio.sleep(0.1)
            assert len(state.view.services) == 4  # nothing removed anywhere
            held = [e.data for e in state.events.since(0)[0] if e.type == "watcher"]
            assert held[-1]["reloadHeld"] is True
    finally:
        await cancel_all(tasks)
        for bus in (watcher_bus, observer_bus):
            await bus.close()


async def _no_view(node: str) -> tuple[str, int, object]:
    raise LookupError(node)
