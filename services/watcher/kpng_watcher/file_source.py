"""The cluster-YAML source: Kubernetes objects from a file, reloaded when the file changes.

Reads what ``kubectl get services,endpointslices,nodes -A -o yaml`` prints (a ``kind: List``)
or multi-document YAML. Objects of other kinds are passed over; an invalid object is
skipped with a log line naming the file, the object and the field, and counted; a file that
is not valid YAML keeps the last good state.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import yaml

from kpng.model import Object
from kpng.parse import KINDS, Ignored, InvalidObject, parse_object
from kpng.runtime.clock import SYSTEM, Clock
from kpng.source import Replace, SourceEvent, SourceStats, Synced

log = logging.getLogger(__name__)


class FileSource:
    def __init__(self, path: str | Path, poll_interval: float = 0.2, clock: Clock = SYSTEM) -> None:
        self.path = Path(path)
        self.poll_interval = poll_interval
        self.clock = clock  # what the polling waits on
        self.stats = SourceStats()

    async def events(self) -> AsyncIterator[SourceEvent]:
        stamp: tuple[int, int, int] | None = None
        synced = False
        while True:
            current = self._stamp()
            if current is not None and current != stamp:
                stamp = current
                objects = self.load()
                if objects is not None:
                    yield Replace(objects)
                    if not synced:
                        synced = True
                        yield Synced()
            elif current is None and stamp is None:
                log.warning("cluster file %s does not exist yet; waiting for it", self.path)
                stamp = (0, 0, 0)
            await self.clock.sleep(self.poll_interval)

    def _stamp(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def load(self) -> tuple[Object, ...] | None:
        """The file's objects, or None (logged) when the file cannot be read as YAML."""
        try:
            text = self.path.read_text()
            documents = list(yaml.safe_load_all(text))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            self.stats.load_errors += 1
            log.error("cluster file %s not loaded, keeping the last good state: %s", self.path, exc)
            return None
        self.stats.loads += 1
        objects = tuple(self._parse(documents))
        log.info("cluster file %s loaded: %d objects", self.path, len(objects))
        return objects

    def _parse(self, documents: list[Any]) -> Iterator[Object]:
        for index, raw in _items(documents):
            if not isinstance(raw, dict) or raw.get("kind") not in KINDS:
                continue
            try:
                parsed = parse_object(raw)
            except InvalidObject as exc:
                self.stats.count_invalid(exc.kind)
                log.warning("cluster file %s, item %d: skipped invalid %s", self.path, index, exc)
                continue
            if not isinstance(parsed, Ignored):
                yield parsed


def _items(documents: list[Any]) -> Iterator[tuple[int, Any]]:
    """Every object of the documents, flattening ``kind: List``."""
    index = 0
    for document in documents:
        if isinstance(document, dict) and document.get("kind") == "List":
            items = document.get("items") or []
            for item in items if isinstance(items, list) else []:
                yield index, item
                index += 1
        elif document is not None:
            yield index, document
            index += 1
