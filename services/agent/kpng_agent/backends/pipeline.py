"""Applying a full sync's steps while the next ones are planned.

A full sync into a new table comes as several transactions
(:meth:`~kpng.dataplane.nft.planner.Planner.plan_full_steps`). Each is planned in a worker
thread, so the event loop stays free to apply the earlier ones at once (start ``nft`` for
the skeleton, hand each netlink batch to a thread that builds and sends it). The kernel
inserts a step's elements inside ``sendto``, which releases the GIL: on a second CPU it
overlaps the planning of the next step, instead of following the whole plan. After a small
step (a small view: one step) the next is planned on the loop, as any plan was before: no
thread to wait for (a virtual-time loop cannot wait for one).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from kpng.dataplane.nft.transaction import Nftables, Transaction

THREAD_ABOVE = 2000  # operations: after a bigger step the next is planned in a thread


async def apply_steps(
    nft: Nftables, steps: Iterable[Transaction], thread_above: int | None = None
) -> int:
    """Apply ``steps`` in order, each while the next is planned (in a worker thread after a
    step of more than ``thread_above`` operations, default :data:`THREAD_ABOVE`); the
    operations written. The first step that fails stops the planning, and its error is
    raised once the steps already started have ended."""
    queue: asyncio.Queue[Transaction | None] = asyncio.Queue()
    applying = asyncio.ensure_future(_apply_all(nft, queue))
    planned = iter(steps)
    ops, size = 0, 0
    limit = THREAD_ABOVE if thread_above is None else thread_above
    try:
        while not applying.done():  # done before the end: a step failed, raised below
            if size > limit:
                tx = await asyncio.to_thread(next, planned, None)
            else:
                tx = next(planned, None)
            if tx is None:
                break
            size = len(tx)
            ops += size
            queue.put_nowait(tx)
    except BaseException:
        applying.cancel()
        await asyncio.gather(applying, return_exceptions=True)
        raise
    queue.put_nowait(None)
    await applying
    return ops


async def _apply_all(nft: Nftables, queue: asyncio.Queue[Transaction | None]) -> None:
    while (tx := await queue.get()) is not None:
        await nft.run(tx)
