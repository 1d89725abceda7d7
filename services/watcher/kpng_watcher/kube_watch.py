"""One resource's list/watch loop, as an informer's reflector does it.

List (paginated) then watch from the list's resourceVersion; follow bookmarks; when a
watch ends, watch again from the last resourceVersion seen (no relist); on ``410 Gone``
relist and hand the whole set over as a :class:`Replace` of that kind, so that only the
real difference reaches the agents; on any other failure retry with exponential backoff
and jitter. The Kubernetes client lives behind :class:`ResourceApi` (see ``kube_source``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from kpng.model import Object
from kpng.parse import Ignored, InvalidObject, Parsed
from kpng.source import Delete, Replace, SourceEvent, SourceStats, Upsert

log = logging.getLogger(__name__)

RawObject = Mapping[str, Any]


class Gone(Exception):
    """410: the resourceVersion asked for is older than the server's history."""


class ApiUnavailable(Exception):
    """The API could not be reached or answered with an error; worth retrying."""


@dataclass(frozen=True, slots=True)
class Page:
    items: list[RawObject]
    resource_version: str
    continue_token: str


class ResourceApi(Protocol):
    """List and watch one resource; raises :class:`Gone` or :class:`ApiUnavailable`."""

    async def list_page(self, limit: int, continue_token: str) -> Page: ...

    def watch(
        self, resource_version: str, timeout: int, idle_timeout: float
    ) -> AsyncGenerator[RawObject, None]:
        """Raw watch events (``{"type", "object"}``) until the server ends the stream;
        raises ApiUnavailable when nothing arrives for ``idle_timeout`` seconds."""
        ...


@dataclass(frozen=True, slots=True)
class WatchSettings:
    page_size: int = 500
    watch_timeout: int = 300  # seconds, as kube's reflectors (5 to 10 minutes, jittered)
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    # A watch that brings nothing, not even a bookmark, for this long is presumed dead
    # (a half-open connection, a server that accepted and hung) and is started again.
    idle_timeout: float = 120.0


@dataclass(slots=True)
class WatchStats:
    """Per kind: lists (pages), relists after 410, watches opened, failures."""

    pages: dict[str, int] = field(default_factory=dict)
    relists: dict[str, int] = field(default_factory=dict)
    watches: dict[str, int] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)

    @staticmethod
    def bump(counter: dict[str, int], kind: str) -> None:
        counter[kind] = counter.get(kind, 0) + 1


@dataclass(slots=True)
class Backoff:
    """Exponential backoff with jitter: each delay is drawn in [d/2, d], d doubling to a cap."""

    initial: float
    maximum: float
    rand: Callable[[], float] = random.random
    attempts: int = 0

    def next(self) -> float:
        ceiling = min(self.maximum, self.initial * 2.0**self.attempts)
        self.attempts += 1
        return ceiling / 2 + self.rand() * ceiling / 2

    def reset(self) -> None:
        self.attempts = 0


def object_key(kind: str, raw: RawObject) -> str:
    """``namespace/name`` (``name`` for a Node) from raw metadata, or "" if it has none."""
    meta = raw.get("metadata")
    if not isinstance(meta, Mapping) or not isinstance(meta.get("name"), str):
        return ""
    if kind == "Node":
        return str(meta["name"])
    return f"{meta.get('namespace') or 'default'}/{meta['name']}"


def _resource_version(raw: RawObject) -> str:
    meta = raw.get("metadata")
    rv = meta.get("resourceVersion") if isinstance(meta, Mapping) else None
    return rv if isinstance(rv, str) else ""


class Reflector:
    """Keeps one kind in step with the API and emits source events for it."""

    def __init__(
        self,
        kind: str,
        api: ResourceApi,
        parse: Callable[[RawObject], Parsed],
        emit: Callable[[SourceEvent], Awaitable[None]],
        stats: SourceStats,
        settings: WatchSettings = WatchSettings(),
        watch_stats: WatchStats | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.kind = kind
        self.api = api
        self.parse = parse
        self.emit = emit
        self.stats = stats
        self.settings = settings
        self.watch_stats = watch_stats or WatchStats()
        self.sleep = sleep
        self.backoff = Backoff(settings.backoff_initial, settings.backoff_max, rand)
        self.resource_version = ""

    async def run(self) -> None:
        """List, then watch forever; never returns (cancel it)."""
        while True:
            try:
                if not self.resource_version:
                    await self.relist()
                if not await self.watch_once():
                    await self._pause("the watch ended before any event", logging.INFO)
            except Gone as exc:
                WatchStats.bump(self.watch_stats.relists, self.kind)
                log.info("kube %s: %s; relisting", self.kind, exc or "410 Gone")
                self.resource_version = ""
            except ApiUnavailable as exc:
                await self._pause(str(exc))
            except Exception as exc:  # a bug must not stop the watcher: log, back off, retry
                log.exception("kube %s: unexpected error", self.kind)
                await self._pause(repr(exc))

    async def _pause(self, why: str, level: int = logging.WARNING) -> None:
        WatchStats.bump(self.watch_stats.failures, self.kind)
        delay = self.backoff.next()
        log.log(level, "kube %s: %s; retrying in %.2fs", self.kind, why, delay)
        await self.sleep(delay)

    async def relist(self) -> None:
        """A full (paginated) list, handed over as one Replace of this kind."""
        items, rv = await self._list_all()
        objects = tuple(o for raw in items if (o := self._parse(raw, "listed")) is not None)
        await self.emit(Replace(objects, frozenset({self.kind})))
        self.resource_version = rv
        self.backoff.reset()
        log.info("kube %s: listed %d objects at resourceVersion %s", self.kind, len(items), rv)

    async def _list_all(self) -> tuple[list[RawObject], str]:
        items: list[RawObject] = []
        token = ""
        while True:
            page = await self.api.list_page(self.settings.page_size, token)
            WatchStats.bump(self.watch_stats.pages, self.kind)
            items.extend(page.items)
            token = page.continue_token
            if not token:
                return items, page.resource_version

    async def watch_once(self) -> bool:
        """Watch from the current resourceVersion until the stream ends; True if it
        delivered anything (then a new watch starts at once, without a relist)."""
        WatchStats.bump(self.watch_stats.watches, self.kind)
        progressed = False
        settings = self.settings
        stream = self.api.watch(
            self.resource_version, settings.watch_timeout, settings.idle_timeout
        )
        async with contextlib.aclosing(stream):
            async for event in stream:
                await self.handle(event)
                progressed = True
                self.backoff.reset()
        return progressed

    async def handle(self, event: RawObject) -> None:
        kind, raw = event.get("type"), event.get("object")
        if not isinstance(raw, Mapping):
            raise ApiUnavailable(f"watch event without an object: {str(event)[:200]}")
        if kind == "ERROR":
            if raw.get("code") == 410:
                raise Gone(f"watch: {raw.get('message', '410 Gone')}")
            raise ApiUnavailable(f"watch error: {raw.get('code')} {raw.get('message')}")
        if kind in ("ADDED", "MODIFIED"):
            obj = self._parse(raw, kind)
            key = object_key(self.kind, raw)
            if obj is not None:
                await self.emit(Upsert(obj))
            elif key:
                # Malformed or ignored now: it can no longer be programmed as the API says,
                # so it goes away, exactly as a relist would drop it (see kube_source).
                await self.emit(Delete(self.kind, key))
        elif kind == "DELETED" and (key := object_key(self.kind, raw)):
            await self.emit(Delete(self.kind, key))
        elif kind != "BOOKMARK":
            log.warning("kube %s: unknown watch event type %r ignored", self.kind, kind)
        self.resource_version = _resource_version(raw) or self.resource_version

    def _parse(self, raw: RawObject, how: str) -> Object | None:
        try:
            parsed = self.parse(raw)
        except InvalidObject as exc:
            self.stats.count_invalid(self.kind)
            log.warning("kube %s; skipped (%s)", exc, how)
            return None
        if isinstance(parsed, Ignored):
            log.debug("kube %s %s ignored: %s", parsed.kind, parsed.key, parsed.reason)
            return None
        return parsed
