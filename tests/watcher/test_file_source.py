"""The cluster-YAML source: kubectl's List format, multi-document YAML, bad input."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
import yaml

from kpng.model import EndpointSlice, Node, Service
from kpng.source import Replace, SourceEvent, Synced
from kpng_watcher.file_source import FileSource
from tests.integration.harness import node, service, slice_


def write(path: Path, objects: list[dict[str, object]], as_list: bool) -> None:
    if as_list:
        path.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": objects}))
    else:
        path.write_text(yaml.safe_dump_all(objects))


@pytest.mark.parametrize("as_list", [True, False])
def test_list_and_multi_document_yaml_give_the_same_objects(tmp_path: Path, as_list: bool) -> None:
    path = tmp_path / "cluster.yaml"
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "x"}}
    write(
        path,
        [
            node("n1", "z1", "192.168.0.1"),
            service("web", "10.96.0.1"),
            slice_("web", [("10.244.1.5", "n1")]),
            pod,
        ],
        as_list,
    )
    objects = FileSource(path).load()
    assert objects is not None
    assert sorted(type(o).__name__ for o in objects) == ["EndpointSlice", "Node", "Service"]


def test_invalid_object_is_skipped_named_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "cluster.yaml"
    write(path, [service("web", "10.96.0.1"), service("bad", "10.96.0.300")], as_list=False)
    source = FileSource(path)
    with caplog.at_level(logging.WARNING):
        objects = source.load()
    assert objects is not None and [o.name for o in objects if isinstance(o, Service)] == ["web"]
    assert source.stats.invalid_objects == {"Service": 1}
    message = caplog.text
    assert str(path) in message and "default/bad" in message and "spec.clusterIP" in message


def test_broken_yaml_keeps_the_last_good_state(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "cluster.yaml"
    path.write_text("kind: Service\nmetadata: {name: [unclosed\n")
    source = FileSource(path)
    with caplog.at_level(logging.ERROR):
        assert source.load() is None
    assert source.stats.load_errors == 1
    assert "keeping the last good state" in caplog.text


async def test_events_replace_then_synced_then_reloads_on_change(tmp_path: Path) -> None:
    path = tmp_path / "cluster.yaml"
    write(path, [node("n1", "z1", "192.168.0.1")], as_list=True)
    source = FileSource(path, poll_interval=0.01)
    events: list[SourceEvent] = []

    async def collect() -> None:
        async for event in source.events():
            events.append(event)
            if len(events) == 3:
                return

    task = asyncio.create_task(collect())
    for _ in range(500):
        if len(events) >= 2:
            break
        await asyncio.sleep(0.01)
    assert isinstance(events[0], Replace) and isinstance(events[1], Synced)
    write(path, [node("n1", "z1", "192.168.0.1"), node("n2", "z2", "192.168.0.2")], as_list=True)
    await asyncio.wait_for(task, 5)
    third = events[2]
    assert isinstance(third, Replace)
    assert sorted(o.name for o in third.objects if isinstance(o, Node)) == ["n1", "n2"]
    assert not any(isinstance(o, EndpointSlice) for o in third.objects)


async def test_missing_file_waits_without_syncing(tmp_path: Path) -> None:
    source = FileSource(tmp_path / "absent.yaml", poll_interval=0.01)
    events: list[SourceEvent] = []

    async def collect() -> None:
        async for event in source.events():
            events.append(event)

    task = asyncio.create_task(collect())
    await asyncio.sleep(0.1)
    assert events == []
    write(tmp_path / "absent.yaml", [node("n1", "z1", "192.168.0.1")], as_list=False)
    for _ in range(200):
        if len(events) >= 2:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert isinstance(events[1], Synced)
