"""A full sync's second family written by a forked child, and its plan taken back after.

The nftables backend's use of :mod:`kpng_agent.backends.forked` (see "Two families on two
CPUs" in docs/dataplane.md): which family of a sync goes to a child (:meth:`choose`), the
child's work (:meth:`write`: read the table, plan and write it in steps, over a netlink
socket of its own), and the planner's state coming back (:meth:`adopt`, once the parent's
own family is written; :meth:`wait`, before the family's next plan).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any

from kpng.dataplane.nft.kernel.nlnft import NetlinkNftables
from kpng.dataplane.nft.netlink.codec import layout
from kpng.dataplane.nft.planner import Planner
from kpng.diff import View
from kpng.model import ViewEndpoint
from kpng_agent.backends.forked import Child, can_fork, start_in_child
from kpng_agent.backends.memroom import (
    CHILD_SHARE,
    child_fits,
    child_need,
    resident_bytes,
    room_bytes,
)
from kpng_agent.backends.pipeline import apply_steps

log = logging.getLogger(__name__)
State = tuple[Any, ...]  # what a child hands back: see ParallelFamilies.write


class ParallelFamilies:
    def __init__(
        self,
        netlink: NetlinkNftables | None,
        above: int,
        room: Callable[[], int | None] = room_bytes,
        resident: Callable[[], int] = resident_bytes,
    ) -> None:
        # the parent's netlink adapter: the child makes its own from its command, and what
        # it learns of the table's sets comes back here
        self.netlink = netlink
        self.above = above  # services; 0: never (also once a child could not be made)
        self.room, self.resident = room, resident  # memory (kpng_agent.backends.memroom)
        self.short = False  # the last sync that could have had a child had no room for it
        self.started: list[tuple[Planner, Child[int, State]]] = []  # this sync's
        self.adopting: dict[int, asyncio.Future[None]] = {}  # family: its child's plan coming

    def choose(self, services: int, busy: Iterable[int]) -> int | None:
        """The family a full sync of ``services`` writes from a child: the last of the
        families it makes tables for (``busy``), if there are two, a second CPU, and memory
        for the child (:mod:`kpng_agent.backends.memroom`)."""
        if self.netlink is None or not 0 < self.above <= services:
            return None
        families = list(busy)
        if len(families) < 2 or not can_fork() or not self._fits():
            return None
        return families[-1]

    def _fits(self) -> bool:
        """Room for the child's memory (logged when that changes)."""
        resident, room = self.resident(), self.room()
        fits = child_fits(resident, room)
        if fits == self.short:  # changed
            mb = 1 << 20
            if fits:
                log.info("room for a child again: full syncs write the families in parallel")
            else:
                log.warning(
                    "no child for this full sync: it would need ~%d MB (%.1f x the agent's "
                    "%d MB resident) and %d MB are free under the memory limit or on the node; "
                    "both families are written here until there is room",
                    child_need(resident) // mb,
                    CHILD_SHARE,
                    resident // mb,
                    (room or 0) // mb,
                )
        self.short = not fits
        return fits

    async def write(self, planner: Planner, view: View[ViewEndpoint]) -> int | None:
        """The planner's family, full sync, written by a child: the operations written; None
        when no child can be made here (then no child ever will: write it in-process)."""
        assert self.netlink is not None
        command, table = self.netlink.nft, planner.config.nft_table

        async def work() -> tuple[int, State]:  # in the child
            nft = NetlinkNftables(command)
            try:
                live = await nft.read(table)
                ops = await apply_steps(nft, planner.plan_full_steps(view, live))
                known = nft.sets.get(table, {})  # the layouts' codecs do not pickle
                state = (planner.programmed, planner.ids, planner.claims, known)
                return ops, (*state, nft.batches, nft.elements)
            finally:
                nft.close()

        planner.programmed = None  # until the child's comes
        try:
            child = start_in_child(work, f"{table.ref} full sync")
        except OSError as exc:
            log.warning(
                "no child for the %s full sync (%s): written here from now on", table.ref, exc
            )
            self.above = 0
            return None
        self.started.append((planner, child))
        try:
            return await asyncio.shield(child.done)
        except asyncio.CancelledError:
            child.kill()
            raise

    def adopt(self, then: Callable[[], None]) -> None:
        """Take this sync's children's plans as they come (call once the sync's own work is
        done: unpickling holds the GIL); ``then()`` after each (the conflicts' report)."""
        for planner, child in self.started:
            fut = asyncio.ensure_future(self._adopt(planner, child, then))
            self.adopting[planner.config.family] = fut
        self.started.clear()

    async def wait(self, family: int) -> None:
        """The family's last child's plan, taken (or given up: then the planner has none)."""
        pending = self.adopting.pop(family, None)
        if pending is not None and not pending.done():
            await asyncio.wait({pending})  # not raised if cancelled: then the planner has no plan

    async def _adopt(
        self, planner: Planner, child: Child[int, State], then: Callable[[], None]
    ) -> None:
        assert self.netlink is not None
        table = planner.config.nft_table
        try:
            programmed, ids, claims, known, batches, elements = await child.result()
        except asyncio.CancelledError:
            child.kill()
            raise
        except Exception as exc:
            if child.done.done() and child.done.exception() is None:  # else the sync's error
                log.warning(
                    "%s: the child's plan is lost (%s); the next change resyncs", table.ref, exc
                )
            return
        planner.programmed, planner.ids, planner.claims = programmed, ids, claims
        self.netlink.sets[table] = known
        self.netlink.layouts[table] = {name: layout(s) for name, s in known.items()}
        self.netlink.batches += batches
        self.netlink.elements += elements
        log.info(
            "%s written by a child process (pid %d); its plan taken back", table.ref, child.pid
        )
        then()

    async def close(self) -> None:
        """Stop waiting for any plan (its child is killed if it still runs)."""
        pending = [f for f in self.adopting.values() if not f.done()]
        for f in pending:
            f.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        self.adopting.clear()
