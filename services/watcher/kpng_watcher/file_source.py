"""The cluster-YAML source: Kubernetes objects from a file, reloaded when the file changes.

Reads what ``kubectl get services,endpointslices,nodes -A -o yaml`` prints (a ``kind: List``)
or multi-document YAML; objects of other kinds are passed over. A change is read once the
file has stayed the same (size, mtime, inode) across two polls, so a file being written is
not taken half way (an atomic rename is simply a change). What is read is judged by
:mod:`kpng_watcher.file_content`: a file that is not valid YAML, or holds no document,
keeps the last good state; an invalid object keeps its last good version (stale); a
duplicate is reported; a load removing more than a share of the services is held back.
Reading and parsing run in a thread: a large file does not stall the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import yaml

from kpng.model import Object
from kpng.runtime.clock import SYSTEM, Clock
from kpng.source import Replace, SourceEvent, SourceStats, Synced
from kpng_watcher.file_content import (
    Content,
    NoDocuments,
    RemovalGuard,
    identities,
    load_documents,
    read_objects,
    service_keys,
)

log = logging.getLogger(__name__)

Stamp = tuple[int, int, int]
ReadResult = tuple[str, Content] | Exception
# how a read runs: in a thread (the default), or inline (a virtual-time loop, whose clock
# would run ahead of a thread)
Offload = Callable[[Callable[[], ReadResult]], Awaitable[ReadResult]]


async def in_thread(read: Callable[[], ReadResult]) -> ReadResult:
    return await asyncio.to_thread(read)


async def inline(read: Callable[[], ReadResult]) -> ReadResult:
    return read()


@dataclass(frozen=True, slots=True)
class FileSettings:
    poll_interval: float = 0.2
    # a reload removing more than this share of the services waits `hold_seconds` unchanged
    max_removal: float = 0.5
    hold_seconds: float = 10.0
    allow_removal: bool = False  # never hold a reload back


@dataclass(slots=True)
class FileSourceStats(SourceStats):
    stale_objects: dict[str, int] = field(default_factory=dict)  # by kind, per load
    duplicate_objects: int = 0
    empty_files: int = 0
    held_reloads: int = 0  # reloads held back for removing too many services
    reload_held: int = 0  # gauge: 1 while a reload is held back


class FileSource:
    def __init__(
        self,
        path: str | Path,
        poll_interval: float = 0.2,
        clock: Clock = SYSTEM,
        settings: FileSettings | None = None,
        offload: Offload = in_thread,
    ) -> None:
        self.offload = offload
        self.path = Path(path)
        self.settings = settings or FileSettings(poll_interval=poll_interval)
        self.poll_interval = self.settings.poll_interval
        self.clock = clock  # what the polling waits on
        self.file_stats = FileSourceStats()
        self.stats: SourceStats = self.file_stats  # the Source protocol's view of them
        s = self.settings
        self.guard = RemovalGuard(s.max_removal, s.hold_seconds, s.allow_removal)
        self._last_good: dict[tuple[str, str], Object] = {}
        self._published: tuple[Object, ...] | None = None
        self._digest = ""

    async def events(self) -> AsyncIterator[SourceEvent]:
        seen: Stamp | None = None
        read: Stamp | None = None
        held: tuple[str, tuple[Object, ...]] | None = None
        warned = synced = False
        while True:
            current = self._stamp()
            if current is None and not warned and not synced:
                log.warning("cluster file %s does not exist yet; waiting for it", self.path)
                warned = True
            elif current is not None and current == seen and current != read:
                read = current  # the same size, mtime and inode across two polls: complete
                result = self._take(await self.offload(partial(self._read, dict(self._last_good))))
                if result is not None:
                    held = result if result[0] != self._digest or not synced else None
                    if held is None and self.guard.holding:
                        self._admit(result[0], self._published or ())  # back as published
            if held is not None and (not synced or self._admit(*held)):
                yield Replace(self._publish(*held))
                held = None
                if not synced:
                    synced = True
                    yield Synced()
            seen = current
            await self.clock.sleep(self.poll_interval)

    def load(self) -> tuple[Object, ...] | None:
        """The file's objects now, or None (logged) when the file has none to offer."""
        result = self._take(self._read(dict(self._last_good)))
        return None if result is None else self._publish(*result)

    # -- reading (in a thread: no state touched) ---------------------------------------------
    def _stamp(self) -> Stamp | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _read(self, last_good: Mapping[tuple[str, str], Object]) -> ReadResult:
        try:
            data = self.path.read_bytes()
            documents = load_documents(data.decode())
        except (OSError, UnicodeDecodeError, yaml.YAMLError, NoDocuments) as exc:
            return exc
        return hashlib.sha256(data).hexdigest(), read_objects(documents, last_good)

    # -- judging -----------------------------------------------------------------------------
    def _take(
        self, result: tuple[str, Content] | Exception
    ) -> tuple[str, tuple[Object, ...]] | None:
        if isinstance(result, Exception):
            self.file_stats.load_errors += 1
            self.file_stats.empty_files += isinstance(result, NoDocuments)
            log.error(
                "cluster file %s not loaded, keeping the last good state: %s", self.path, result
            )
            return None
        digest, content = result
        self.file_stats.loads += 1
        self.file_stats.stale_objects = {}
        for problem in content.problems:
            exc = problem.error
            self.file_stats.count_invalid(exc.kind)
            if problem.stale:
                stale = self.file_stats.stale_objects
                stale[exc.kind] = stale.get(exc.kind, 0) + 1
            kept = "keeping its last good version" if problem.stale else "skipped"
            log.warning(
                "cluster file %s, item %d: invalid %s; %s", self.path, problem.index, exc, kept
            )
        for dup in content.duplicates:
            self.file_stats.duplicate_objects += 1
            log.warning(
                "cluster file %s: %s %s appears twice (items %d and %d); item %d is used",
                self.path,
                dup.kind,
                dup.key,
                dup.first,
                dup.used,
                dup.used,
            )
        log.info("cluster file %s read: %d objects", self.path, len(content.objects))
        return digest, content.objects

    def _admit(self, digest: str, objects: tuple[Object, ...]) -> bool:
        before, after = service_keys(self._published or ()), service_keys(objects)
        share = self.guard.removal_share(before, after)
        was_holding = self.guard.holding and self.guard.held_digest == digest
        admitted = self.guard.admit(share, digest, self.clock.monotonic())
        if admitted:
            if self.file_stats.reload_held:
                log.warning("cluster file %s: no reload held back any more", self.path)
            self.file_stats.reload_held = 0
        elif not was_holding:
            self.file_stats.held_reloads += 1
            self.file_stats.reload_held = 1
            log.warning(
                "cluster file %s: reload held back: it removes %d of %d services "
                "(%.0f%% > %.0f%%); published if unchanged for %.0fs",
                self.path,
                len(before - after),
                len(before),
                share * 100,
                self.guard.max_share * 100,
                self.guard.hold,
            )
        return admitted

    def _publish(self, digest: str, objects: tuple[Object, ...]) -> tuple[Object, ...]:
        self._digest, self._published = digest, objects
        self._last_good = identities(objects)
        return objects
