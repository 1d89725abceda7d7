"""Setting the conntrack sysctls at start, as kube-proxy does (the plan:
:mod:`kpng.dataplane.ctsysctl`). A setting that cannot be written is a warning, logged and put
in the agent's status, never a failure to start: in a network namespace other than the
node's first one ``nf_conntrack_max`` is read-only, and so is all of ``/proc/sys`` in an
unprivileged container."""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

from kpng.dataplane.ctsysctl import (
    HASHSIZE,
    MAX,
    ConntrackSettings,
    Write,
    hashsize_for,
    needed,
    writes,
)

log = logging.getLogger(__name__)

PROC_SYS = Path("/proc/sys")
SYS_MODULE = Path("/sys/module")


def _read(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _why(exc: OSError) -> str:
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return (
            "read-only here (an unprivileged container, or a network namespace other than the "
            "node's own): set it on the node"
        )
    if exc.errno == errno.ENOENT:
        return "absent (is the nf_conntrack module loaded?)"
    return exc.strerror or str(exc)


def _write(path: Path, shown: str, value: int, current: int | None) -> str:
    """Write ``value``; a warning's text when that fails (else "")."""
    try:  # never created: a sysctl that is not there is not made a file
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
        try:
            os.write(fd, f"{value}\n".encode())
        finally:
            os.close(fd)
    except OSError as exc:
        return f"could not set {shown} to {value} (it is {current}): {_why(exc)}"
    log.info("set %s to %d (it was %s)", shown, value, current)
    return ""


def apply(
    settings: ConntrackSettings,
    cpus: int | None = None,
    proc_sys: Path = PROC_SYS,
    sys_module: Path = SYS_MODULE,
) -> tuple[str, ...]:
    """Bring the conntrack sysctls to ``settings`` for a node of ``cpus`` CPUs (default: the
    machine's); the warnings, each logged."""
    warnings: list[str] = []
    for w in writes(settings, cpus or os.cpu_count() or 1):
        path, shown = proc_sys / w.name, w.name.replace("/", ".")
        current = _read(path)
        if not needed(w, current):
            continue
        problem = _write(path, shown, w.value, current)
        if not problem and w.name == MAX:  # the hash table grows with the limit
            grow = Write(HASHSIZE, hashsize_for(w.value), raise_only=True)
            hashsize = sys_module / HASHSIZE
            now = _read(hashsize)
            if needed(grow, now):
                problem = _write(hashsize, "nf_conntrack hashsize", grow.value, now)
        if problem:
            log.warning("%s", problem)
            warnings.append(problem)
    return tuple(warnings)
