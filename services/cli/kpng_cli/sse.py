"""Server-Sent Events read from lines (pure): ``id:``, ``event:``, ``data:`` fields, an event
per blank line, comments (``:`` keep-alives) ignored."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class SseEvent:
    type: str
    data: Any
    id: str | None = None


@dataclass(slots=True)
class _Pending:
    type: str = "message"
    id: str | None = None
    data: list[str] = field(default_factory=list)


def parse_events(lines: Iterable[str]) -> Iterator[SseEvent]:
    """The events of an SSE stream; ``data`` decoded as JSON when it is JSON."""
    pending = _Pending()
    for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            if pending.data:
                text = "\n".join(pending.data)
                yield SseEvent(pending.type, _json_or_text(text), pending.id)
            pending = _Pending()
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            pending.type = value
        elif name == "data":
            pending.data.append(value)
        elif name == "id":
            pending.id = value


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text
