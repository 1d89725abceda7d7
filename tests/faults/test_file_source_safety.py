"""Reproduction 6 of issue 14: an empty, half-written or partly invalid cluster file is not
taken as the cluster; duplicates are reported; a mass removal is held back; parsing does
not block the event loop. Driven poll by poll on a FakeClock."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from kpng.bus.fake import FakeBus, FakeServer
from kpng.bus.subjects import Subjects
from kpng.model import EndpointSlice, Object, Service
from kpng.runtime.clock import FakeClock
from kpng.source import Replace, SourceEvent, Synced
from kpng_watcher import file_content
from kpng_watcher.file_source import FileSettings, FileSource, inline
from kpng_watcher.main import metrics_registry
from kpng_watcher.publisher import Publisher
from tests.integration.harness import node, service, slice_

POLL = 0.2


def write(path: Path, objects: list[dict[str, Any]]) -> None:
    path.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": objects}))


def services(n: int) -> list[dict[str, Any]]:
    return [service(f"s{i}", f"10.96.0.{i + 1}") for i in range(n)]


class Pump:
    """Runs a FileSource's events on a FakeClock; :meth:`run` lets the polls of some
    seconds happen (the file is read at the polls, between the calls' writes)."""

    def __init__(self, source: FileSource, clock: FakeClock) -> None:
        self.clock = clock
        self.events: list[SourceEvent] = []
        self._events = source.events()
        self._task = asyncio.create_task(self._pump())

    async def _pump(self) -> None:
        async for event in self._events:
            self.events.append(event)

    async def run(self, seconds: float) -> None:
        until = self.clock.now + seconds - 1e-9
        while self.clock.now < until:
            await asyncio.sleep(0.001 if self.clock.now == 0 else 0)
            assert not self._task.done(), self._task

    def replaces(self) -> list[tuple[Object, ...]]:
        return [e.objects for e in self.events if isinstance(e, Replace)]

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self._events.aclose()


def service_names(objects: tuple[Object, ...]) -> list[str]:
    return sorted(o.name for o in objects if isinstance(o, Service))


@contextlib.asynccontextmanager
async def pumping(path: Path, **settings: Any) -> Any:
    clock = FakeClock()
    source = FileSource(path, clock=clock, settings=FileSettings(POLL, **settings), offload=inline)
    pump = Pump(source, clock)
    try:
        await pump.run(2 * POLL)
        assert isinstance(pump.events[-1], Synced)
        yield source, pump
    finally:
        await pump.stop()


@pytest.mark.parametrize("content", ["", "\n", "---\n", "# being written\n---\n"])
async def test_an_empty_file_is_not_an_empty_cluster(tmp_path: Path, content: str) -> None:
    path = tmp_path / "cluster.yaml"
    write(path, services(3))
    async with pumping(path, allow_removal=True) as (source, pump):
        path.write_text(content)  # `: > cluster.yaml`
        await pump.run(30.0)
        assert len(pump.replaces()) == 1  # the first load only
        assert source.file_stats.empty_files >= 1


async def test_an_explicit_empty_list_is_an_empty_cluster(tmp_path: Path) -> None:
    path = tmp_path / "cluster.yaml"
    write(path, services(3))
    async with pumping(path, allow_removal=True) as (_, pump):
        write(path, [])
        await pump.run(3 * POLL)
        assert pump.replaces()[-1] == ()


async def test_a_half_written_file_is_not_read(tmp_path: Path) -> None:
    path = tmp_path / "cluster.yaml"
    write(path, services(4))
    async with pumping(path, allow_removal=True) as (_, pump):
        complete = [*services(4), service("new", "10.96.1.1")]
        text = yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": complete})
        cut = text.index("- apiVersion", len(text) // 2)  # a valid YAML prefix: 2 services
        path.write_text(text[:cut])
        await pump.run(POLL)  # one poll sees the half ...
        path.write_text(text)  # ... the writer finishes before the next
        await pump.run(5 * POLL)
        assert [service_names(r) for r in pump.replaces()[1:]] == [["new", "s0", "s1", "s2", "s3"]]


async def test_an_invalid_field_keeps_the_last_good_version(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "cluster.yaml"
    good = slice_("s0", [("10.244.1.5", "n1"), ("10.244.1.6", "n1")])
    write(path, [node("n1", "z1", "192.168.0.1"), *services(1), good])
    async with pumping(path) as (source, pump):
        bad = slice_("s0", [("10.244.1.5", "n1"), ("10.244.1.300", "n1")])
        with caplog.at_level(logging.WARNING):
            write(path, [node("n1", "z1", "192.168.0.1"), *services(1), bad, service("t", "")])
            await pump.run(3 * POLL)
        slices = [o for o in pump.replaces()[-1] if isinstance(o, EndpointSlice)]
        assert [sorted(e.ip for e in s.endpoints) for s in slices] == [["10.244.1.5", "10.244.1.6"]]
        assert source.file_stats.stale_objects == {"EndpointSlice": 1}
        assert "default/s0-1" in caplog.text and "keeping its last good version" in caplog.text


async def test_duplicates_are_reported_and_the_later_one_is_used(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "cluster.yaml"
    with caplog.at_level(logging.WARNING):
        write(path, [service("web", "10.96.0.1"), service("web", "10.96.0.2")])
        objects = FileSource(path).load()
    assert objects is not None
    assert [o.cluster_ips for o in objects if isinstance(o, Service)] == [("10.96.0.2",)]
    assert "Service default/web appears twice (items 0 and 1); item 1 is used" in caplog.text


async def test_a_mass_removal_is_held_back_until_it_stays(tmp_path: Path) -> None:
    path = tmp_path / "cluster.yaml"
    write(path, services(4))
    async with pumping(path, hold_seconds=10.0) as (source, pump):
        write(path, services(3))  # 25%: at once
        await pump.run(3 * POLL)
        assert service_names(pump.replaces()[-1]) == ["s0", "s1", "s2"]
        write(path, services(1))  # 67% > 50%: held
        await pump.run(9.0)
        assert len(pump.replaces()) == 2
        assert source.file_stats.reload_held == 1 and source.file_stats.held_reloads == 1
        await pump.run(2.0)
        assert service_names(pump.replaces()[-1]) == ["s0"]
        assert source.file_stats.reload_held == 0


async def test_a_held_reload_withdrawn_is_never_published(tmp_path: Path) -> None:
    path = tmp_path / "cluster.yaml"
    write(path, services(4))
    async with pumping(path) as (source, pump):
        write(path, [])
        await pump.run(3.0)
        write(path, services(4))  # fixed before the hold expired
        await pump.run(20.0)
        assert len(pump.replaces()) == 1
        assert source.file_stats.reload_held == 0


async def test_allowing_removal_publishes_at_once(tmp_path: Path) -> None:
    path = tmp_path / "cluster.yaml"
    write(path, services(4))
    async with pumping(path, allow_removal=True) as (_, pump):
        write(path, services(1))
        await pump.run(3 * POLL)
        assert service_names(pump.replaces()[-1]) == ["s0"]


async def test_the_file_is_parsed_in_a_thread_with_the_c_loader(tmp_path: Path) -> None:
    if hasattr(yaml, "CSafeLoader"):
        assert file_content._LOADER is yaml.CSafeLoader
    path = tmp_path / "cluster.yaml"
    write(path, services(2))
    source = FileSource(path, poll_interval=0.01)
    threads: list[int] = []
    read = source._read

    def recording(last_good: Any) -> Any:
        threads.append(threading.get_ident())
        return read(last_good)

    source._read = recording  # type: ignore[method-assign]
    events = source.events()
    assert isinstance(await anext(events), Replace)
    await events.aclose()
    assert threads and threads[0] != threading.get_ident()


async def test_stale_objects_and_a_held_reload_are_metrics(tmp_path: Path) -> None:
    path = tmp_path / "cluster.yaml"
    write(path, services(3))
    async with pumping(path) as (source, pump):
        write(path, [service("s0", "10.96.0.300")])  # s0 kept (stale), 2 of 3 removed: held
        await pump.run(3 * POLL)
        registry = metrics_registry(Publisher(FakeBus(FakeServer(), Subjects()), source), source)
        assert registry.get_sample_value("kpng_watcher_source_reload_held") == 1
        stale = registry.get_sample_value("kpng_watcher_stale_objects_total", {"kind": "Service"})
        assert stale == 1
