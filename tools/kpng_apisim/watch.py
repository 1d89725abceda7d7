"""The watch stream: replayed and live events as JSON lines, bookmarks, timeouts, cuts."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from kpng_apisim.errors import ApiError, JsonObject
from kpng_apisim.resources import ResourceType
from kpng_apisim.selectors import Selector
from kpng_apisim.store import ADDED, DELETED, MODIFIED, Event, Store, Subscription

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WatchOptions:
    selector: Selector
    bookmarks: bool
    bookmark_interval: float
    timeout: float | None
    initial_events_end: bool


def event_line(kind: str, obj: JsonObject) -> bytes:
    return json.dumps({"type": kind, "object": obj}, separators=(",", ":")).encode() + b"\n"


def error_line(err: ApiError) -> bytes:
    return event_line("ERROR", err.status())


def bookmark(rt: ResourceType, rv: int, *, initial_end: bool = False) -> bytes:
    meta: JsonObject = {"resourceVersion": str(rv)}
    if initial_end:
        meta["annotations"] = {"k8s.io/initial-events-end": "true"}
    return event_line(
        "BOOKMARK", {"kind": rt.kind, "apiVersion": rt.group_version, "metadata": meta}
    )


def filtered_type(event: Event, selector: Selector) -> str | None:
    """The event type a watcher with ``selector`` sees, or None when it sees nothing.

    An object that stops matching looks deleted to the watcher; one that starts matching
    looks added, as with the real API server.
    """
    if selector.empty:
        return event.type
    now = selector.matches(event.obj)
    before = selector.matches(event.prev) if event.prev is not None else False
    if event.type == ADDED:
        return ADDED if now else None
    if event.type == DELETED:
        return DELETED if now or before else None
    if now and before:
        return MODIFIED
    if now:
        return ADDED
    return DELETED if before else None


async def stream_events(
    store: Store, sub: Subscription, rt: ResourceType, opts: WatchOptions
) -> AsyncIterator[bytes]:
    """Yield the lines of one watch; unsubscribes however the stream ends."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + opts.timeout if opts.timeout is not None else None
    try:
        for event in sub.initial:
            if kind := filtered_type(event, opts.selector):
                yield event_line(kind, event.obj)
        if opts.initial_events_end:
            yield bookmark(rt, sub.start_rv, initial_end=True)
        async for line in _live(store, sub, rt, opts, deadline):
            yield line
    finally:
        store.unsubscribe(sub)


async def _live(
    store: Store, sub: Subscription, rt: ResourceType, opts: WatchOptions, deadline: float | None
) -> AsyncIterator[bytes]:
    loop = asyncio.get_running_loop()
    next_bookmark = loop.time() + opts.bookmark_interval
    while True:
        now = loop.time()
        if deadline is not None and now >= deadline:
            return
        wakes = [t for t in (next_bookmark if opts.bookmarks else None, deadline) if t is not None]
        wait = max(0.0, min(wakes) - now) if wakes else None
        try:
            event = await asyncio.wait_for(sub.queue.get(), timeout=wait)
        except TimeoutError:
            if opts.bookmarks and loop.time() >= next_bookmark:
                next_bookmark = loop.time() + opts.bookmark_interval
                if sub.queue.empty():
                    yield bookmark(rt, store.resource_version)
            continue
        if event is None:
            log.info("watch cut", extra={"resource": rt.plural})
            return
        if kind := filtered_type(event, opts.selector):
            yield event_line(kind, event.obj)
