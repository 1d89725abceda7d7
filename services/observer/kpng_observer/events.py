"""The observer's event stream: a bounded ring of events with increasing ids, served as SSE.

Ids start from the observer's start time in milliseconds, so that they keep increasing across
observer restarts too. A client resumes with ``Last-Event-ID``: it gets every event after that
id still in the ring; if some were already dropped (or the id is from the future: another
observer), it first gets a ``reset`` event, meaning "refetch the state".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    type: str
    time: float
    data: dict[str, Any]

    def to_sse(self) -> str:
        body = json.dumps({"type": self.type, "time": self.time, **self.data}, sort_keys=True)
        return f"id: {self.id}\nevent: {self.type}\ndata: {body}\n\n"


class EventLog:
    def __init__(self, capacity: int = 1000, first_id: int = 1) -> None:
        self.events: deque[Event] = deque(maxlen=capacity)
        self.next_id = first_id
        self._changed = asyncio.Event()

    @property
    def last_id(self) -> int:
        return self.next_id - 1

    def append(self, type_: str, time: float, data: dict[str, Any]) -> Event:
        event = Event(self.next_id, type_, time, data)
        self.next_id += 1
        self.events.append(event)
        self._changed.set()
        self._changed = asyncio.Event()
        return event

    def since(self, last_id: int | None) -> tuple[list[Event], bool]:
        """The events after ``last_id`` (all when None), and whether some were missed."""
        if last_id is None:
            return list(self.events), False
        if last_id > self.last_id:
            return list(self.events), True
        missed = bool(self.events) and last_id < self.events[0].id - 1
        return [e for e in self.events if e.id > last_id], missed

    async def wait(self, timeout: float) -> None:
        """Until the next append, or ``timeout`` seconds."""
        changed = self._changed
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), timeout)


def parse_last_event_id(text: str | None) -> int | None:
    if text is None or not text.strip().isdigit():
        return None
    return int(text.strip())


async def sse_stream(
    log: EventLog, last_id: int | None, keepalive: float = 15.0, retry_ms: int = 2000
) -> AsyncIterator[str]:
    """The text of an SSE response: the backlog after ``last_id``, then events as they come."""
    yield f"retry: {retry_ms}\n\n"
    backlog, missed = log.since(last_id)
    if missed:
        yield f"event: reset\ndata: {json.dumps({'after': last_id})}\n\n"
    cursor = log.last_id if last_id is None or missed else last_id
    for event in backlog:
        yield event.to_sse()
    if backlog:
        cursor = backlog[-1].id
    while True:
        fresh, missed = log.since(cursor)
        if missed:  # fell behind the ring while writing to a slow client
            yield f"event: reset\ndata: {json.dumps({'after': cursor})}\n\n"
        for event in fresh:
            yield event.to_sse()
            cursor = event.id
        if not fresh:
            await log.wait(keepalive)
            if not log.since(cursor)[0]:
                yield ": keepalive\n\n"
