"""The consumer algorithm of bus contract v1, as a pure state machine.

Subscribe first, then ask for a snapshot; buffered deltas with ``seq <= snapshot.seq`` are
dropped and the rest applied in order. A gap, an epoch change, a tick ahead of what was
applied, or an operation that does not fit the view means something was lost: resync.

A resync of a consumer whose view is trusted asks for a catch-up from its (epoch, seq)
(:meth:`Consumer.since`); a reply based on that seq is applied on top of the view, like a
delta. A view is not trusted before the first snapshot, after an operation that did not
fit it, or after a bad or mismatched reply: then only a full snapshot will do.

A tick that carries a digest (:mod:`kpng.digest`) at the seq the consumer applied is
checked against the view's: a view that differs (a forged or corrupted operation) is not
trusted and resynced at once. A resync from a trusted view also presents its digest, so
that a watcher of a new epoch holding the same view answers with a rebase: no operations,
the (epoch, seq) the view now stands at.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any, Generic, Literal, overload

from kpng.bus.codec import Delta, SnapshotChunk, Tick
from kpng.diff import E, InconsistentOp, Op, View, apply_in_place
from kpng.digest import to_hex
from kpng.sharedviews import SnapshotPrefixes, apply_snapshot


@dataclass(frozen=True, slots=True)
class Applied(Generic[E]):
    """A new view: from a snapshot (``ops`` is then the whole view) or from one delta.

    ``view`` is the consumer's view, which later deltas update in place (so that applying
    a delta costs what its operations cost, not what the view costs): it is the view as of
    this event until the next event is taken; copy it to keep it longer."""

    kind: Literal["snapshot", "delta"]
    epoch: str
    seq: int
    view: View[E]
    ops: Sequence[Op[E]]  # a tuple, or a snapshot's runs (SnapshotOps)
    time: float | None = None
    trigger_time: float | None = None


class SnapshotOps(Sequence[Op[Any]]):
    """A full snapshot's operations, as the runs they came in: a snapshot of 10^5 operations
    is not copied into one tuple (a process following many nodes would do it per node)."""

    __slots__ = ("_joined", "_len", "_runs")

    def __init__(self, runs: Sequence[Sequence[Op[Any]]]) -> None:
        self._runs = runs
        self._len = sum(len(r) for r in runs)
        self._joined: tuple[Op[Any], ...] | None = None

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[Op[Any]]:
        return chain.from_iterable(self._runs)

    @overload
    def __getitem__(self, i: int) -> Op[Any]: ...
    @overload
    def __getitem__(self, i: slice) -> tuple[Op[Any], ...]: ...
    def __getitem__(self, i: int | slice) -> Op[Any] | tuple[Op[Any], ...]:
        if self._joined is None:
            self._joined = tuple(self)
        return self._joined[i]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and tuple(self) == tuple(other)

    __hash__ = None  # type: ignore[assignment]  # compared by content, like a list


@dataclass(frozen=True, slots=True)
class Resync:
    reason: str


@dataclass(slots=True)
class Consumer(Generic[E]):
    """Tracks (epoch, seq) and the view; says when to resync. Starts out needing a snapshot."""

    view: View[E] = field(default_factory=View)
    epoch: str = ""
    seq: int = -1
    synced: bool = False
    # a tick's digest at the applied seq, waiting for the view's own to be known (its
    # computation is spread over idle moments, not done at once: see :meth:`digest_due`)
    pending_check: tuple[str, int, str] | None = None
    trusted: bool = False  # the view is exactly the watcher's at (epoch, seq)
    _buffer: list[Delta] = field(default_factory=list)
    # shared by the consumers of one process that follow many nodes (kpng.bus.codec.OpCache)
    prefixes: SnapshotPrefixes | None = field(default=None, compare=False, repr=False)

    def since(self) -> tuple[str, int] | None:
        """Where a catch-up may start: (epoch, seq) of a trusted view, else None (full)."""
        return (self.epoch, self.seq) if self.trusted and self.seq >= 0 else None

    def digest(self) -> str:
        """The digest of the view (16 hex digits), kept current as operations apply."""
        return to_hex(self.view.digest())

    def start_resync(self) -> None:
        """Forget the stream position (not the view: it stays programmed) and buffer deltas."""
        self.synced = False
        self._buffer.clear()

    def on_snapshot(self, chunks: Sequence[SnapshotChunk]) -> list[Applied[E] | Resync]:
        """A full snapshot, or a catch-up (``base`` >= 0), yielded as a "delta" event whose
        ops are the missed operations (none when already up to date)."""
        first = chunks[0]
        version = (first.epoch, first.seq, first.chunks, first.base)
        if any((c.epoch, c.seq, c.chunks, c.base) != version for c in chunks):
            self.trusted = False
            return [Resync("snapshot chunks of different versions")]
        parts = [c.ops for c in sorted(chunks, key=lambda c: c.chunk)]
        if first.base >= 0:
            return self._catch_up(first, tuple(chain.from_iterable(parts)))
        try:
            view: View[E] = apply_snapshot(parts, self.prefixes)
        except InconsistentOp as exc:
            self.trusted = False
            return [Resync(f"bad snapshot: {exc}")]
        self.view, self.epoch, self.seq = view, first.epoch, first.seq
        self.synced = self.trusted = True
        ops = SnapshotOps(parts)
        return self._drain([Applied("snapshot", self.epoch, self.seq, view, ops)])

    def _catch_up(
        self, first: SnapshotChunk, ops: tuple[Op[Any], ...]
    ) -> list[Applied[E] | Resync]:
        base_epoch = first.base_epoch or first.epoch
        if not self.trusted or (self.epoch, self.seq) != (base_epoch, first.base):
            at = f"{self.epoch}/{self.seq}" if self.trusted else "an untrusted view"
            self.trusted = False
            return [Resync(f"catch-up from {base_epoch}/{first.base} does not fit {at}")]
        try:
            apply_in_place(ops, self.view)
        except InconsistentOp as exc:
            self.trusted = False
            return [Resync(f"catch-up does not fit the view: {exc}")]
        self.epoch, self.seq, self.synced = first.epoch, first.seq, True
        return self._drain([Applied("delta", self.epoch, self.seq, self.view, ops)])

    def _drain(self, out: list[Applied[E] | Resync]) -> list[Applied[E] | Resync]:
        """Apply the deltas buffered while the snapshot was on its way."""
        buffered, self._buffer = self._buffer, []
        for delta in buffered:
            if delta.epoch != self.epoch:
                continue  # from before the snapshot; a newer epoch shows itself by its ticks
            out.extend(self.on_delta(delta))
            if not self.synced:
                break
        return out

    def on_delta(self, delta: Delta) -> list[Applied[E] | Resync]:
        if not self.synced:
            self._buffer.append(delta)
            return []
        if delta.epoch != self.epoch:
            return [self._lost(f"epoch changed from {self.epoch} to {delta.epoch}")]
        if delta.seq <= self.seq:
            return []
        if delta.seq != self.seq + 1:
            return [self._lost(f"gap: expected seq {self.seq + 1}, got {delta.seq}")]
        try:
            view: View[E] = apply_in_place(delta.ops, self.view)
        except InconsistentOp as exc:
            self.trusted = False
            return [self._lost(f"delta {delta.seq} does not fit the view: {exc}")]
        self.seq = delta.seq
        return [
            Applied("delta", self.epoch, self.seq, view, delta.ops, delta.time, delta.trigger_time)
        ]

    def on_tick(self, tick: Tick) -> list[Applied[E] | Resync]:
        if not self.synced:
            return []
        if tick.epoch != self.epoch:
            return [self._lost(f"epoch changed from {self.epoch} to {tick.epoch}")]
        if tick.seq > self.seq:
            return [self._lost(f"tick at seq {tick.seq}, applied only {self.seq}")]
        if tick.digest and tick.seq < self.seq:  # applied a seq the watcher never sent
            self.trusted = False
            return [self._lost(f"tick at seq {tick.seq}, behind the applied {self.seq}")]
        if tick.digest and tick.seq == self.seq:
            if self.view.known_digest is None:  # hashing a whole view now would stall the
                self.pending_check = (tick.epoch, tick.seq, tick.digest)  # deltas behind it
                return []
            return self._compare(tick.digest)
        return []

    @property
    def follows_many(self) -> bool:
        """This consumer's process follows many nodes (it shares snapshot prefixes: the
        observer, the scale bench): their views' digests are hashed only when idle, never
        all at once on a tick or a storm of requests."""
        return self.prefixes is not None

    def digest_due(self) -> bool:
        """A tick's digest waits for the view's: compute it now (in steps), not when idle."""
        return self.pending_check is not None and self.view.known_digest is None

    def check_pending(self) -> list[Applied[E] | Resync]:
        """The waiting tick's digest against the view's, once that is known, if the view is
        still at the tick's (epoch, seq); a later tick compares its own otherwise."""
        pending, self.pending_check = self.pending_check, None
        if pending is None or not self.synced or (self.epoch, self.seq) != pending[:2]:
            return []
        return self._compare(pending[2])

    def _compare(self, digest: str) -> list[Applied[E] | Resync]:
        if digest != self.digest():
            self.trusted = False  # a forged or corrupted operation: only a full snapshot
            return [self._lost(f"view digest {self.digest()} differs from {digest}")]
        return []

    def _lost(self, reason: str) -> Resync:
        self.start_resync()
        return Resync(reason)
