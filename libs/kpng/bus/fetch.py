"""Fetching a view's snapshot: the request, its chunks and, for a node snapshot that starts
with one, its cast (docs/bus.md sections 3.3-3.4a and 9a). :class:`kpng.bus.client.ViewClient`
fetches through one :class:`SnapshotFetcher`."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import Protocol

from kpng.bus.casts import CastReceiver, CastRefused
from kpng.bus.codec import (
    CAST,
    COMPACT_ENDPOINTS,
    COMPRESSED_OPS,
    DIGEST_FEATURES,
    CastChunk,
    CastRef,
    CastRequest,
    ErrorReply,
    MalformedMessage,
    OpCache,
    Scope,
    SnapshotChunk,
    SnapshotRequest,
    decode,
    encode,
)
from kpng.bus.protocol import Bus, BusError
from kpng.runtime.gcpause import no_gc

log = logging.getLogger(__name__)


class SnapshotUnavailable(BusError):
    pass


class Counters(Protocol):
    """What a fetch counts (the client's stats)."""

    malformed: int
    casts: int


class SnapshotFetcher:
    """Requests snapshots on ``subject`` and gathers their chunks. Node snapshots accept
    casts, heard by ``casts`` (a receiver shared by a process's clients) or, with None,
    a receiver of this fetcher's own; ``casts=False``: none asked for."""

    def __init__(
        self,
        bus: Bus,
        subject: str,
        scope: Scope,
        counters: Counters,
        *,
        timeout: float = 5.0,
        compressed: bool = True,
        op_cache: OpCache | None = None,
        casts: CastReceiver | bool = True,
    ) -> None:
        self.bus = bus
        self.subject = subject
        self.scope: Scope = scope
        self.counters = counters
        self.timeout = timeout
        self.compressed = compressed  # ask for zstd-compressed chunks
        self.op_cache = op_cache
        self.casts: CastReceiver | None = None
        if casts is not False and scope == "node":
            self.casts = casts if isinstance(casts, CastReceiver) else CastReceiver(bus, op_cache)
        self._cast_next = True  # False after a cast failed: the next request asks for none

    async def fetch(self, epoch: str = "", seq: int = -1, digest: str = "") -> list[SnapshotChunk]:
        """The snapshot's chunks (a catch-up's with ``seq`` >= 0, see SnapshotRequest), a
        cast's chunks first; raises SnapshotUnavailable."""
        inbox = self.bus.new_inbox()
        replies: asyncio.Queue[bytes] = asyncio.Queue()
        sub = await self.bus.subscribe(inbox, lambda data, s, r: replies.put_nowait(data))
        try:
            node = self.scope == "node"
            accept: tuple[str, ...] = (COMPACT_ENDPOINTS, *sorted(DIGEST_FEATURES)) if node else ()
            accept += (COMPRESSED_OPS,) if self.compressed else ()
            cast, self._cast_next = self.casts is not None and self._cast_next, True
            accept += (CAST,) if cast else ()
            request = SnapshotRequest(epoch, seq, accept, digest)
            await self.bus.publish(self.subject, encode(request), reply=inbox)
            # not wait_for: on 3.11 it loses a cancellation that comes as the reply completes
            async with asyncio.timeout(self.timeout):
                chunks = await self._gather(replies)
                ref = chunks[0].cast
                if ref is None:
                    return chunks
                if any(c.cast != ref for c in chunks):
                    raise SnapshotUnavailable("snapshot chunks name different casts")
                return joined(await self._cast(ref, inbox, replies), chunks)
        except TimeoutError:
            self._cast_next = False  # a cast may not reach us: the next asks for none
            raise SnapshotUnavailable("no complete reply in time") from None
        except BusError as exc:
            raise SnapshotUnavailable(str(exc)) from exc
        finally:
            await sub.unsubscribe()

    async def _cast(
        self, ref: CastRef, inbox: str, replies: asyncio.Queue[bytes]
    ) -> tuple[CastChunk, ...]:
        """The cast a snapshot starts with: subscribed, asked for (on the snapshot subject,
        with our inbox for an error reply), awaited; an error reply ends the wait."""
        assert self.casts is not None

        async def ask() -> None:
            await self.bus.publish(self.subject, encode(CastRequest(ref.id)), inbox)

        receiving = asyncio.ensure_future(self.casts.receive(ref, ask))
        failing = asyncio.ensure_future(self._gather(replies))  # only an error comes there
        try:
            await asyncio.wait((receiving, failing), return_when=asyncio.FIRST_COMPLETED)
            if receiving.done():
                cast = receiving.result()  # raises CastRefused
                self.counters.casts += 1
                return cast
            self._cast_next = False  # the next request asks for none: it cannot fail so
            failing.result()  # raises SnapshotUnavailable
            raise SnapshotUnavailable("a second reply to a snapshot request")
        except CastRefused as exc:
            self.casts = None  # the server's permissions predate casts: never again
            log.warning("%s; snapshots come without casts from now on", exc)
            raise SnapshotUnavailable(str(exc)) from None
        finally:
            for task in (receiving, failing):
                task.cancel()
            await asyncio.gather(receiving, failing, return_exceptions=True)

    async def _gather(self, replies: asyncio.Queue[bytes]) -> list[SnapshotChunk]:
        chunks: dict[int, SnapshotChunk] = {}
        while True:
            data = await replies.get()
            if not data:  # NATS's "no responders" status: no watcher is answering
                raise SnapshotUnavailable("no watcher answered")
            try:
                with no_gc():  # a chunk holds up to ~10^5 objects (kpng.runtime.gcpause)
                    message = decode(data, self.scope, self.op_cache, self.bus.max_payload)
            except MalformedMessage as exc:
                self.counters.malformed += 1
                raise SnapshotUnavailable(f"malformed snapshot reply: {exc}") from None
            if isinstance(message, ErrorReply):
                raise SnapshotUnavailable(message.reason)
            if not isinstance(message, SnapshotChunk):
                raise SnapshotUnavailable(f"unexpected {type(message).__name__} reply")
            chunks[message.chunk] = message
            if len(chunks) == message.chunks:
                return [chunks[i] for i in sorted(chunks)]


def joined(cast: tuple[CastChunk, ...], chunks: list[SnapshotChunk]) -> list[SnapshotChunk]:
    """One snapshot: the cast's operations, then the chunks' own."""
    first, total = chunks[0], len(cast) + len(chunks)
    out = [SnapshotChunk(first.epoch, first.seq, i, total, c.ops) for i, c in enumerate(cast)]
    out.extend(
        replace(c, chunk=len(cast) + i, chunks=total, cast=None) for i, c in enumerate(chunks)
    )
    return out
