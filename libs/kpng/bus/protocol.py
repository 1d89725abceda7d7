"""The bus seam: what kpng needs of a message bus, and nothing about NATS.

Every service and client is typed against :class:`Bus`. Two implementations stand behind
it: :mod:`kpng.bus.nats` (nats-py, the only importer of it) and :mod:`kpng.bus.fake` (in
memory, with faults on demand, for tests). Both follow NATS's semantics: subjects are
dot-separated tokens; a subscription may use ``*`` (one token) and ``>`` (the rest); a
message goes once to every plain subscription that matches it and to one member of each
queue group; messages from one publisher reach one subscription in the order sent; a
request whose subject has no subscriber gets one empty reply ("no responders").
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Protocol, Self

from kpng.bus.subjects import Subjects

# (data, subject, reply subject or ""); may be a coroutine function
Handler = Callable[[bytes, str, str], Awaitable[None] | None]


class BusError(RuntimeError):
    """Anything that went wrong talking to the bus."""


class Subscription(Protocol):
    subject: str

    @property
    def sid(self) -> int:
        """Identifies the subscription in slow-consumer notices."""
        ...

    async def unsubscribe(self) -> None: ...


@dataclass(slots=True)
class BusListeners:
    """Callbacks for the connection's state: called in the event loop, must not block."""

    reconnected: list[Callable[[], None]] = field(default_factory=list)
    disconnected: list[Callable[[], None]] = field(default_factory=list)
    # the sid of a subscription whose messages were dropped because it fell behind
    slow_consumer: list[Callable[[int], None]] = field(default_factory=list)
    # the server refused a publish or subscription this connection's role does not allow
    permission_violation: list[Callable[[str], None]] = field(default_factory=list)


class Bus(Protocol):
    """A connection to the bus, with kpng's subjects under its prefix."""

    subjects: Subjects
    listeners: BusListeners
    permission_violations: int  # refusals by the server so far (see BusListeners)

    @property
    def max_payload(self) -> int:
        """The largest message the server takes, in bytes."""
        ...

    @property
    def connected(self) -> bool: ...

    def new_inbox(self) -> str:
        """A subject nobody else uses, to receive replies on."""
        ...

    async def subscribe(
        self, subject: str, handler: Handler, *, queue: str = "", pending_msgs: int = 1_000_000
    ) -> Subscription:
        """Deliver every message matching ``subject`` to ``handler``; more than
        ``pending_msgs`` undelivered messages make it a slow consumer (dropped messages,
        a ``slow_consumer`` notice)."""
        ...

    async def publish(self, subject: str, data: bytes, reply: str = "") -> None:
        """Send ``data``; raises BusError if it cannot (too large, closed)."""
        ...

    async def request(self, subject: str, data: bytes, timeout: float = 5.0) -> bytes:
        """Publish with a fresh inbox as reply subject and return the first reply; raises
        BusError on timeout or when nobody answers."""
        ...

    async def flush(self, timeout: float = 5.0) -> None:
        """Wait until everything published so far has reached the server."""
        ...

    async def close(self) -> None: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None: ...
