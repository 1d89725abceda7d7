"""After a full sync the agent keeps the cyclic collector off its long-lived view."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from kpng.bus.consumer import Applied
from kpng.bus.fake import FakeServer
from kpng_agent.backends.dump import DumpBackend
from tests.agent.helpers import NODE, ep, make_agent, udp, view


@pytest.fixture
def freezes(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    calls: list[int] = []
    real = gc.freeze

    def freeze() -> None:
        real()
        calls.append(gc.get_freeze_count())

    monkeypatch.setattr(gc, "freeze", freeze)
    yield calls
    gc.unfreeze()


async def test_a_full_sync_freezes_what_exists_and_a_delta_does_not(
    tmp_path: Path, freezes: list[int]
) -> None:
    server = FakeServer()
    bus = server.connect()
    agent = make_agent(bus, DumpBackend(NODE, tmp_path / "view.json"))
    current = view((udp(), [ep("10.244.1.5")]))
    assert await agent._program(Applied("snapshot", "e1", 1, current, ()), full=True)
    assert len(freezes) == 1 and freezes[0] > 0  # the view among what the collector skips
    assert await agent._program(Applied("delta", "e1", 2, current, ()), full=False)
    assert len(freezes) == 1
    assert bus.published == 2  # status went out after each
