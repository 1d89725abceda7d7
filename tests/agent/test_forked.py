"""A piece of work run in a forked child: its outcome, then its result, or its failure."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

import pytest

from kpng.dataplane.nft.objects import NftError
from kpng_agent.backends.forked import ChildFailed, start_in_child

INHERITED: dict[str, Any] = {}


async def both(work: Any, what: str = "the work") -> tuple[Any, Any]:
    child = start_in_child(work, what)
    done = await child.done
    return done, await child.result()


async def test_the_child_sees_the_parents_objects_and_sends_back_outcome_then_result() -> None:
    INHERITED["view"] = ["a", "b"]  # set after import: only a fork (not a spawn) carries it

    async def work() -> tuple[int, dict[str, Any]]:
        INHERITED["view"].append("child")  # the child's copy
        return os.getpid(), {"seen": list(INHERITED["view"]), "blob": b"x" * (3 << 20)}

    pid, result = await both(work)
    assert pid != os.getpid()
    assert result["seen"] == ["a", "b", "child"] and len(result["blob"]) == 3 << 20
    assert INHERITED["view"] == ["a", "b"]  # the parent's own is untouched


async def test_the_child_forgets_the_parents_signal_handlers() -> None:
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, lambda: None)
    try:

        async def work() -> tuple[bool, None]:
            return signal.getsignal(signal.SIGTERM) == signal.SIG_DFL, None

        assert (await both(work))[0] is True
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


async def test_an_nft_error_in_the_child_is_raised_as_one_naming_the_work() -> None:
    async def work() -> tuple[int, None]:
        raise NftError("kernel refused add element 10.0.0.1 in set service_ips")

    child = start_in_child(work, "ip6 kpng full sync")
    with pytest.raises(NftError, match="ip6 kpng full sync: NftError: kernel refused add"):
        await child.done
    with pytest.raises(NftError, match="kernel refused"):
        await child.result()


async def test_any_other_error_is_a_child_failure() -> None:
    async def work() -> tuple[int, None]:
        raise KeyError("lost")

    child = start_in_child(work, "the work")
    for outcome in (child.done, child.result()):
        with pytest.raises(ChildFailed, match="the work: KeyError: 'lost'"):
            await outcome


async def test_a_child_killed_or_exiting_without_a_result_is_named() -> None:
    async def sleeps() -> tuple[int, None]:
        await asyncio.sleep(60)
        return 0, None

    child = start_in_child(sleeps, "slow")
    await asyncio.sleep(0.2)
    child.kill()
    with pytest.raises(ChildFailed, match="slow: the child was killed by signal 9"):
        await asyncio.wait_for(child.done, 10)

    async def leaves() -> tuple[int, None]:
        os._exit(3)

    with pytest.raises(ChildFailed, match="the child exited with code 3 without a result"):
        await both(leaves)


async def test_a_result_that_does_not_pickle_fails_after_the_outcome() -> None:
    async def work() -> tuple[int, Any]:
        return 7, (lambda: None)

    child = start_in_child(work, "unpicklable")
    assert await child.done == 7  # the work itself was done
    with pytest.raises(ChildFailed, match="unpicklable: AttributeError: Can't pickle local"):
        await child.result()
