"""Fixtures shared by every test tier."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from kpng_devrun.procs import ProcessGroup
from tests.integration.harness import Deployment
from tests.leaks import cancel_all, pending_tasks, report

pytest_plugins = ("pytester",)  # tests/test_leaks.py runs the fixture on a test of its own


@pytest.fixture(autouse=True)
def no_leaked_tasks(request: pytest.FixtureRequest) -> None:
    """An async test fails if a task it (or its fixtures) started is still pending at the end.

    Set up before the test's other fixtures, so checked after they are torn down."""
    if pytest_asyncio.is_async_test(request.node):
        request.getfixturevalue("_leaked_task_check")


@pytest_asyncio.fixture
async def _leaked_task_check() -> AsyncIterator[None]:
    before = asyncio.all_tasks()
    yield
    leaked = await pending_tasks(before)
    if leaked:
        message = report(leaked)  # before cancelling: where each one waits
        await cancel_all(leaked)
        pytest.fail(message, pytrace=False)


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    """A small kpng deployment of processes, all stopped afterwards (also on failure)."""
    with ProcessGroup(tmp_path / "logs") as group:
        yield Deployment(tmp_path, group)
