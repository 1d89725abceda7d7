"""Nftables over netlink, with ``nft`` for what is left: the fast dataplane adapter.

A transaction is cut in three steps (:mod:`~kpng.dataplane.nft.kernel.steps`): ``nft -f``
for what netlink does not encode here (only if there is any), one netlink batch, ``nft -f``
for chains and sets deleted (only if any, and only when the rest needed ``nft``). A full
sync from empty (the table, its sets, hook and dispatch chains, pick chains and every
element) is one batch, without any ``nft`` process, unless a service has session affinity
or source ranges (their chains, maps and interval elements are nft's, and then so is the
rest of the table's structure); element-only transactions, the common case, are one batch.
Reading a table back dumps its chains and set definitions, then the elements of each set,
over netlink; ``nft -j list set`` lists only an interval set of a concatenated key that
holds elements (load-balancer source ranges).
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import sys
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial

from kpng.dataplane.nft.jsonread import Listing, listing
from kpng.dataplane.nft.kernel.execnft import NftCommand
from kpng.dataplane.nft.kernel.nlsocket import NetlinkSocket
from kpng.dataplane.nft.kernel.steps import Steps, split
from kpng.dataplane.nft.netlink.batch import Batch, build
from kpng.dataplane.nft.netlink.batch import dump_request as elements_request
from kpng.dataplane.nft.netlink.codec import Layout, layout
from kpng.dataplane.nft.netlink.intervals import any_element, boundaries
from kpng.dataplane.nft.netlink.intervals import elements as interval_elements
from kpng.dataplane.nft.netlink.read import (
    NFT_MSG_GETCHAIN,
    NFT_MSG_GETSET,
    DumpError,
    chain_name,
    dump_request,
    set_definition,
)
from kpng.dataplane.nft.objects import NftError, Set, Table
from kpng.dataplane.nft.transaction import DIGESTS, Nftables, Op, Ruleset, Transaction
from kpng.runtime.gcpause import no_gc

log = logging.getLogger(__name__)
THREAD_ABOVE = 2000  # elements: bigger batches are sent from a worker thread
SEQ_BLOCK = 1 << 16  # sequence numbers reserved per batch (a batch of 10k services: ~200)
SEQ_WRAP = 1 << 31  # a seq stays below 2**32 with a block and a send's messages on top


@dataclass(slots=True)
class NetlinkNftables:
    """An :class:`~kpng.dataplane.nft.transaction.Nftables` for one network namespace."""

    nft: NftCommand = field(default_factory=NftCommand)
    sock: NetlinkSocket | None = None
    layouts: dict[Table, dict[str, Layout | None]] = field(default_factory=dict)
    sets: dict[Table, dict[str, Set]] = field(default_factory=dict)  # definitions, as known
    batches: int = 0
    elements: int = 0
    errors: int = 0  # batches the kernel refused
    # the socket's users (dumps; a batch's sequence numbers, send and answers) one at a time:
    # the families of one agent are programmed concurrently, from threads
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _sock(self) -> NetlinkSocket:
        """The socket; call with :attr:`lock` held."""
        if self.sock is None:
            self.sock = NetlinkSocket(self.nft.netns)
        return self.sock

    async def run(self, tx: Transaction) -> None:
        if not tx.ops and not tx.packed:
            return
        known = self._learn(tx)
        with no_gc():
            steps = split(tx, known, self.sets.get(tx.table, {}))
        count = sum(len(r[2]) for r in steps.runs) + 3 * len(steps.chains)
        batch = bool(steps.runs or steps.chains or steps.head or steps.tail or steps.final)
        if steps.before.ops and count > THREAD_ABOVE:
            # encode the batch while nft runs: another process, another CPU
            encoded, ran = await asyncio.gather(
                asyncio.to_thread(self._build, tx.table, steps),
                self.nft.run(steps.before),
                return_exceptions=True,
            )
            for outcome in (ran, encoded):
                if isinstance(outcome, BaseException):
                    raise outcome
            assert isinstance(encoded, Batch)
            await self._send(encoded, count)
        else:
            if steps.before.ops:
                await self.nft.run(steps.before)
            if batch:
                built = (
                    await asyncio.to_thread(self._build, tx.table, steps)
                    if count > THREAD_ABOVE
                    else self._build(tx.table, steps)
                )
                await self._send(built, count)
        if steps.after.ops:
            await self.nft.run(steps.after)

    def _learn(self, tx: Transaction) -> dict[str, Layout | None]:
        """Layouts and definitions of the sets this transaction adds; a table deleted forgets
        its own."""
        known = self.layouts.setdefault(tx.table, {})
        defined = self.sets.setdefault(tx.table, {})
        for op in tx.ops:
            if isinstance(op.obj, Table) and op.verb == "delete":
                known.clear()
                defined.clear()
            elif isinstance(op.obj, Set):
                if op.verb == "add":
                    known[op.obj.name] = layout(op.obj)
                    defined[op.obj.name] = op.obj
                else:
                    known.pop(op.obj.name, None)
                    defined.pop(op.obj.name, None)
        return known

    def _build(self, table: Table, steps: Steps) -> Batch:
        try:
            with no_gc():
                with self.lock:  # sequence numbers reserved for this batch (u32, wrapped)
                    sock = self._sock()
                    seq = sock.seq
                    sock.seq = (seq + SEQ_BLOCK) % SEQ_WRAP
                return build(
                    table,
                    steps.runs,
                    seq,
                    steps.chains,
                    steps.context,
                    steps.head,
                    steps.tail,
                    steps.final,
                )
        except NftError:
            self.errors += 1
            raise

    def _send_locked(self, batch: Batch) -> None:
        with self.lock:
            self._sock().send(batch)

    async def _send(self, batch: Batch, count: int) -> None:
        try:
            if count > THREAD_ABOVE:
                await asyncio.to_thread(self._send_locked, batch)
            else:
                self._send_locked(batch)
        except NftError:
            self.errors += 1
            raise
        self.batches += 1
        self.elements += batch.elements

    async def read(self, table: Table) -> Ruleset | None:
        if self.lock.acquire(blocking=False):  # two small dumps: on the loop, no thread hop
            try:
                found = self._definitions_locked(table)
            finally:
                self.lock.release()
        else:  # the other family's batch is being sent: wait for the socket in a thread
            found = await asyncio.to_thread(self._definitions, table)
        if found is None:
            self.layouts.pop(table, None)
            self.sets.pop(table, None)
            return None
        known = {name: layout(s) for name, s in found.sets.items()}
        self.layouts[table] = known
        self.sets[table] = dict(found.sets)
        intervals = [n for n, s in found.sets.items() if known[n] is None and not _dynamic(s)]
        now = [lay for n, lay in known.items() if lay is not None and n in FIRST]
        later = [lay for n, lay in known.items() if lay is not None and n not in FIRST]
        listed = await asyncio.to_thread(self._dump_all, table, now, found, intervals)
        # nft lists only an interval set of a concatenated key that holds elements
        docs = await asyncio.gather(*(self._list_set(table, n) for n in listed))
        for doc in docs:
            listing(doc, found)
        return found.ruleset(table, self._dump_later(table, later) if later else None)

    def _dump_later(self, table: Table, layouts: list[Layout]) -> Future[Raw]:
        """The raw sets in ``layouts``, dumped by a thread of their own while the caller
        plans from the rest (the ids it renders with are in ``pick``): the kernel's half of
        a dump, and the socket reads, release the GIL. A thread, not the loop's executor,
        so that a caller blocked on the result waits for nothing the loop has to run."""
        out: Future[Raw] = Future()

        def dump() -> None:
            try:  # no no_gc() here: it would turn the collector back on under the planner's
                with self.lock, switching(DUMP_SWITCH_S):
                    sock = self._sock()
                    out.set_result({lay.name: (lay, sock.dump_raw(table, lay)) for lay in layouts})
            except BaseException as e:  # raised where the result is taken (Ruleset.raw)
                out.set_exception(e)

        threading.Thread(target=dump, name=f"nft-dump-{table.name}", daemon=True).start()
        return out

    def _definitions(self, table: Table) -> Listing | None:
        with self.lock:
            return self._definitions_locked(table)

    def _definitions_locked(self, table: Table) -> Listing | None:
        """Chain names and set definitions over netlink (``nft -j -t`` lists every element
        in nft 1.0.6); None when the table does not exist. Call with :attr:`lock` held."""
        sock = self._sock()
        try:
            sets = sock.dump_messages(lambda seq: dump_request(table, NFT_MSG_GETSET, seq))
        except DumpError as e:
            if e.errno == errno.ENOENT:
                return None
            raise
        chains = sock.dump_messages(lambda seq: dump_request(table, NFT_MSG_GETCHAIN, seq))
        found = Listing()
        for _, buf, a, b in sets:
            s = set_definition(table, buf, a, b)
            if s is not None:
                found.sets[s.name] = s
                if s.data:
                    found.maps.add(s.name)
        for _, buf, a, b in chains:
            name = chain_name(table, buf, a, b)
            if name is not None:
                found.chains.append(name)
        return found

    async def _list_set(self, table: Table, name: str) -> dict[str, object]:
        rc, out, err = await self.nft.exec(["-j", "list", "set", table.family, table.name, name])
        if rc != 0:
            raise NftError(f"nft list set {table.ref} {name}: {err.strip()}")
        doc: dict[str, object] = json.loads(out)
        return doc

    def _dump_all(
        self, table: Table, layouts: list[Layout], into: Listing, intervals: list[str]
    ) -> list[str]:
        """The elements of the sets in ``layouts``, raw, and of the interval sets of
        addresses, as objects (:mod:`~kpng.dataplane.nft.netlink.intervals`). Returns the
        interval sets left for ``nft`` to list (a concatenated key, not empty)."""
        left = []
        with no_gc(), self.lock:
            sock = self._sock()
            for lay in layouts:
                into.raw[lay.name] = (lay, sock.dump_raw(table, lay))
            for name in intervals:
                found = sock.dump_messages(partial(elements_request, table, name))
                bits = _ADDRESS_BITS.get(into.sets[name].type)
                if bits is None:
                    if any(any_element(buf, a, b) for _, buf, a, b in found):
                        left.append(name)
                    continue
                edges = [e for _, buf, a, b in found for e in boundaries(buf, a, b)]
                for e in interval_elements(name, bits, edges):
                    into.elements[(e.set, e.key)] = e
        return left

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()


# the interpreter's switch interval while a dump overlaps the planning: each socket read of
# the dump (one kernel message buffer, <= 32 KB, ~300 at 10k services) waits for the GIL,
# which a planning thread gives up only every switch interval (5 ms by default): the dump
# then ended ~0.4 s after it began, past the planning, which waited for it
DUMP_SWITCH_S = 0.0005


@contextmanager
def switching(seconds: float) -> Iterator[None]:
    """The switch interval set for the block (call with :attr:`NetlinkNftables.lock` held,
    so that two blocks do not restore each other's)."""
    was = sys.getswitchinterval()
    sys.setswitchinterval(min(was, seconds))
    try:
        yield
    finally:
        sys.setswitchinterval(was)


# read before the table is returned: the target ids (``pick``'s comments) and the digests
FIRST = frozenset(("pick", DIGESTS))
Raw = Mapping[str, tuple[Layout, list[bytes]]]

_ADDRESS_BITS = {"ipv4_addr": 32, "ipv6_addr": 128}


def _dynamic(s: Set) -> bool:
    return "dynamic" in s.flags or s.timeout > 0


def _check_protocol(n: NetlinkNftables) -> Nftables:
    return n


__all__ = ["NetlinkNftables", "Op", "Steps", "split"]
