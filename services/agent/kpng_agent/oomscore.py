"""The agent's own OOM score, as kube-proxy's ``--oom-score-adj`` sets its own: a node under
memory pressure should kill a workload before the process that routes every service's packets.
A value that cannot be written is a warning, logged and put in the agent's status, never a
failure to start (kube-proxy only logs it): lowering the score needs ``CAP_SYS_RESOURCE``, which
an unprivileged container lacks (there the kubelet sets the score: -997 for a pod of priority
class ``system-node-critical``, as the chart's agent is)."""

from __future__ import annotations

import argparse
import errno
import logging
from pathlib import Path

log = logging.getLogger(__name__)

OOM_SCORE_ADJ = Path("/proc/self/oom_score_adj")
LOWEST, HIGHEST = -1000, 1000


def oom_score_adj(text: str) -> int:
    """An ``--oom-score-adj`` value: a whole number from -1000 to 1000."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not LOWEST <= value <= HIGHEST:
        raise argparse.ArgumentTypeError(f"{value} is not within {LOWEST}..{HIGHEST}")
    return value


def apply(value: int | None, path: Path = OOM_SCORE_ADJ) -> tuple[str, ...]:
    """Set this process's OOM score adjustment to ``value`` (None: leave it); the warnings,
    each logged."""
    if value is None:
        return ()
    try:
        current: str | None = path.read_text().strip()
    except OSError:
        current = None
    try:
        path.write_text(f"{value}\n")
    except OSError as exc:
        why = (
            "lowering it needs CAP_SYS_RESOURCE (in a pod, the kubelet sets it by the pod's "
            "priority class and QoS)"
            if exc.errno in (errno.EACCES, errno.EPERM)
            else exc.strerror or str(exc)
        )
        warning = f"could not set the agent's oom_score_adj to {value} (it is {current}): {why}"
        log.warning("%s", warning)
        return (warning,)
    log.info("set the agent's oom_score_adj to %d (it was %s)", value, current)
    return ()
