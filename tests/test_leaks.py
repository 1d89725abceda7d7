"""The leaked-task check fails a test that leaves a task running, and names its coroutine."""

from __future__ import annotations

import asyncio

import pytest

from tests.leaks import cancel_all, pending_tasks, report


async def forever() -> None:
    await asyncio.Event().wait()


async def quick() -> None:
    await asyncio.sleep(0)


async def test_a_task_still_pending_is_found_and_named() -> None:
    before = asyncio.all_tasks()
    done_soon = asyncio.create_task(quick())
    leaked = asyncio.create_task(forever(), name="the-leak")
    found = await pending_tasks(before)
    assert found == [leaked] and done_soon.done()
    text = report(found)
    assert "forever at " in text and "test_leaks.py" in text and "the-leak" in text
    await cancel_all(found)
    assert leaked.cancelled()
    assert await pending_tasks(before) == []


async def test_a_task_cancelled_at_the_end_is_given_time_to_unwind() -> None:
    before = asyncio.all_tasks()
    task = asyncio.create_task(forever())
    await asyncio.sleep(0)
    task.cancel()  # not awaited: it still needs a loop iteration to end
    assert await pending_tasks(before) == []


PROJECT_FIXTURES = """
from tests.conftest import no_leaked_tasks, _leaked_task_check
"""

TESTS = """
import asyncio

async def sleeps_forever():
    await asyncio.Event().wait()

async def test_leaks():
    asyncio.create_task(sleeps_forever())

async def test_cleans_up():
    task = asyncio.create_task(sleeps_forever())
    await asyncio.sleep(0)
    task.cancel()

def test_sync():
    pass
"""


def test_the_autouse_fixture_fails_only_the_test_that_leaks(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
    )
    pytester.makeconftest(PROJECT_FIXTURES)
    pytester.makepyfile(test_inner=TESTS)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_leaks*",
            "*1 asyncio task(s) still pending after the test:",
            "*sleeps_forever at *test_inner.py:*",
        ]
    )
