"""The event ring and its SSE text: ids, resumption with Last-Event-ID, reset on loss."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from kpng_observer.events import EventLog, parse_last_event_id, sse_stream


def parse(chunks: list[str]) -> list[tuple[str | None, str, dict[str, object]]]:
    """(id, event, data) of each SSE message in the chunks (comments and retry skipped)."""
    out = []
    for block in "".join(chunks).split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in fields:
            out.append((fields.get("id"), fields["event"], json.loads(fields["data"])))
    return out


async def take(stream: AsyncIterator[str], count: int) -> list[str]:
    """The first ``count`` SSE messages with an event (plus what came before them)."""
    chunks: list[str] = []
    while len(parse(chunks)) < count:
        chunks.append(await asyncio.wait_for(anext(stream), 2))
    return chunks


def filled(n: int, capacity: int = 100) -> EventLog:
    log = EventLog(capacity=capacity, first_id=1000)
    for i in range(n):
        log.append("delta", float(i), {"seq": i})
    return log


async def test_new_client_gets_the_backlog_then_live_events() -> None:
    log = filled(3)
    stream = sse_stream(log, None, keepalive=0.05)
    assert [e[0] for e in parse(await take(stream, 3))] == ["1000", "1001", "1002"]
    log.append("status", 9.0, {"node": "n1"})
    (event,) = parse(await take(stream, 1))
    assert event == ("1003", "status", {"node": "n1", "time": 9.0, "type": "status"})
    await stream.aclose()


async def test_resume_after_last_event_id_sends_only_newer_events() -> None:
    log = filled(5)
    stream = sse_stream(log, 1002, keepalive=0.05)
    assert [e[2]["seq"] for e in parse(await take(stream, 2))] == [3, 4]
    await stream.aclose()


async def test_resume_from_the_latest_id_waits_with_keepalives() -> None:
    log = filled(2)
    stream = sse_stream(log, 1001, keepalive=0.01)
    chunks = [await anext(stream) for _ in range(3)]
    assert chunks[0].startswith("retry:") and chunks[1:] == [": keepalive\n\n"] * 2
    await stream.aclose()


async def test_resume_from_an_id_no_longer_in_the_ring_sends_reset_first() -> None:
    log = filled(10, capacity=4)  # ids 1006..1009 kept
    stream = sse_stream(log, 1001, keepalive=0.05)
    events = parse(await take(stream, 5))
    assert [e[1] for e in events] == ["reset", "delta", "delta", "delta", "delta"]
    assert events[1][0] == "1006"
    await stream.aclose()


async def test_an_id_from_the_future_means_another_observer_reset() -> None:
    log = filled(2)
    events = parse(await take(sse_stream(log, 99999, keepalive=0.05), 3))
    assert [e[1] for e in events] == ["reset", "delta", "delta"]


def test_since_and_ids() -> None:
    log = filled(3, capacity=2)
    assert log.last_id == 1002
    assert log.since(1001) == ([log.events[1]], False)
    assert log.since(999)[1] is True
    assert parse_last_event_id(" 42 ") == 42
    assert parse_last_event_id("x") is None and parse_last_event_id(None) is None
