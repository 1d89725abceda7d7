"""Which positions and statuses the observer believes (pure: values in, verdicts out).

A node's published position moves only along the watcher's stream: a delta one past the
known seq, a tick at the known seq, or the first message of the watcher's current epoch (the
global view's). Anything else, such as a tick claiming seq 2^63-1 or a delta beyond a gap,
is *ahead*: flagged and not stored, and the node's position is asked of the watcher (a
refresh). A status counts for node N only on N's status subject and when it names N.
"""

from __future__ import annotations

from typing import Literal

from kpng.bus.subjects import Subjects

Verdict = Literal["accept", "old", "ahead"]


def judge_position(
    known: tuple[str, int], claim: tuple[str, int], global_epoch: str, delta: bool
) -> Verdict:
    """``known``: the node's published (epoch, seq) (``""``, -1 when not known yet);
    ``claim``: what a delta or tick on the node's subject says."""
    known_epoch, known_seq = known
    epoch, seq = claim
    if epoch != known_epoch:
        return "accept" if global_epoch in ("", epoch) else "ahead"
    if seq <= known_seq:
        return "old" if seq < known_seq or delta else "accept"
    return "accept" if delta and seq == known_seq + 1 else "ahead"


def status_names_subject(subject_token: str, named: str) -> bool:
    """Whether a status naming node ``named`` belongs on the subject token it came on."""
    try:
        return Subjects.token(named) == subject_token
    except ValueError:
        return False


def status_ahead(known: tuple[str, int], applied: tuple[str, int]) -> bool:
    """An agent reporting a seq the observer never saw published (it missed deltas, or the
    status lies): flagged, and the node's published position refreshed."""
    return bool(known[0]) and applied[0] == known[0] and applied[1] > known[1]
