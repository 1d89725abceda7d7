"""A virtual-time event loop: its clock jumps to the next timer instead of sleeping.

:class:`VirtualTimeLoop` is an ``asyncio.SelectorEventLoop`` whose ``time()`` is virtual. Its
selector polls with a zero timeout; when nothing is ready it advances the virtual clock by
the timeout the loop asked for (the wait until its next timer) and returns at once. Every
``asyncio.sleep``, ``wait_for`` and ``call_later`` then costs no wall time, so a component
test runs minutes of ticks, retries and backoffs in milliseconds, in the order they would
happen. A loop with no timer and nothing ready would wait for ever: it raises
:class:`Deadlock` instead.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine, Mapping
from typing import Any, TypeVar

T = TypeVar("T")
_FileObj = Any


class Deadlock(RuntimeError):
    """Nothing is ready and no timer is due: the loop would block for ever."""


class VirtualSelector(selectors.BaseSelector):
    """A selector that never blocks: an idle wait advances :attr:`now` instead."""

    def __init__(self, inner: selectors.BaseSelector | None = None, start: float = 0.0) -> None:
        self.inner = inner if inner is not None else selectors.DefaultSelector()
        self.now = start
        self.jumps = 0  # how many idle waits were skipped

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = self.inner.select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:
            raise Deadlock("no timer pending and nothing ready: the loop would wait for ever")
        self.now += timeout
        self.jumps += 1
        return []

    def register(self, fileobj: _FileObj, events: int, data: Any = None) -> selectors.SelectorKey:
        return self.inner.register(fileobj, events, data)

    def unregister(self, fileobj: _FileObj) -> selectors.SelectorKey:
        return self.inner.unregister(fileobj)

    def modify(self, fileobj: _FileObj, events: int, data: Any = None) -> selectors.SelectorKey:
        return self.inner.modify(fileobj, events, data)

    def get_map(self) -> Mapping[_FileObj, selectors.SelectorKey]:
        return self.inner.get_map()

    def close(self) -> None:
        self.inner.close()


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self, start: float = 0.0) -> None:
        self.virtual = VirtualSelector(start=start)
        super().__init__(self.virtual)

    def time(self) -> float:
        return self.virtual.now


def run_virtual(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` on a fresh virtual-time loop; fails if it leaves tasks behind."""
    leaked: list[str] = []

    async def checked() -> T:
        result = await main
        current = asyncio.current_task()
        leaked.extend(repr(t) for t in asyncio.all_tasks() if t is not current)
        return result

    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        result = runner.run(checked())
    assert not leaked, f"tasks left running: {leaked}"
    return result
