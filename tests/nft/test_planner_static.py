"""The skeleton's packed objects are built once per configuration."""

from __future__ import annotations

from dataclasses import replace

from kpng.dataplane.nft.packed import packer
from kpng.dataplane.nft.planner import Planner, static_planned
from kpng.dataplane.nft.state import static_objects
from kpng.diff import View
from kpng.model import ViewEndpoint
from tests.nft.helpers import CONFIG


def test_a_full_sync_reuses_the_skeleton_packed_for_its_configuration() -> None:
    static_planned.cache_clear()
    planner = Planner(CONFIG)
    empty: View[ViewEndpoint] = View()
    planner.plan_full(empty, None)
    first = planner.programmed
    planner.plan_full(empty, None)
    assert first is not None and planner.programmed is not None
    assert planner.programmed.by_service[""] is first.by_service[""]
    assert static_planned.cache_info().hits == 1
    assert first.by_service[""] == packer(CONFIG).pack_all(static_objects(CONFIG))


def test_another_configuration_has_its_own_skeleton() -> None:
    other = replace(CONFIG, masquerade_bit=3)
    assert static_planned(other) != static_planned(CONFIG)
    assert static_planned(other) == packer(other).pack_all(static_objects(other))
