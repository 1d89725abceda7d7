"""What the observer believes of a position or a status (kpng_observer.trust)."""

from __future__ import annotations

import pytest

from kpng_observer.trust import judge_position, status_ahead, status_names_subject


@pytest.mark.parametrize(
    ("known", "claim", "global_epoch", "delta", "verdict"),
    [
        (("", -1), ("e1", 5), "", False, "accept"),  # first sight, global epoch unknown
        (("", -1), ("e1", 5), "e1", True, "accept"),
        (("", -1), ("e9", 5), "e1", False, "ahead"),  # not the watcher's epoch
        (("e1", 4), ("e1", 5), "e1", True, "accept"),  # the next delta
        (("e1", 4), ("e1", 4), "e1", False, "accept"),  # a tick at the known seq
        (("e1", 4), ("e1", 4), "e1", True, "old"),  # a duplicate delta
        (("e1", 4), ("e1", 3), "e1", False, "old"),
        (("e1", 4), ("e1", 6), "e1", True, "ahead"),  # a gap
        (("e1", 4), ("e1", 2**63 - 1), "e1", False, "ahead"),
        (("e1", 4), ("e2", 0), "e2", True, "accept"),  # the watcher restarted
        (("e1", 4), ("e2", 0), "e1", False, "ahead"),
    ],
)
def test_judge_position(
    known: tuple[str, int], claim: tuple[str, int], global_epoch: str, delta: bool, verdict: str
) -> None:
    assert judge_position(known, claim, global_epoch, delta) == verdict


def test_a_status_names_its_subjects_node() -> None:
    assert status_names_subject("a_b", "a.b")
    assert not status_names_subject("a_b", "c")
    assert not status_names_subject("x", "*")


def test_status_ahead() -> None:
    assert status_ahead(("e1", 4), ("e1", 5))
    assert not status_ahead(("e1", 4), ("e1", 4))
    assert not status_ahead(("", -1), ("e1", 5))
    assert not status_ahead(("e1", 4), ("e2", 9))
