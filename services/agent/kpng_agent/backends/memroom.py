"""Room for a forked child's memory, so that a dual-stack full sync's child never gets the
agent OOM-killed.

The child that writes a full sync's second family (:mod:`kpng_agent.backends.parallel`)
copies the pages of the view and heap it touches and builds its family's plan: at its end it
holds ~1.1-1.25 times the parent's resident memory at the fork, privately (105 MB beside 95
MB at 10k services x 10 endpoints, 200 MB beside 163 MB at 20k), for under a second. That
memory counts against the agent container's limit as the parent's does. So the child is made
only when there is room for :data:`CHILD_SHARE` times the parent's resident memory, both under
the process's memory limit (its cgroup's and its ancestors', cgroup v2 or v1) and on the node
(``MemAvailable``); else the parent writes both families itself, as it does on one CPU.
"""

from __future__ import annotations

import os
from pathlib import Path

CHILD_SHARE = 1.5  # of the parent's resident memory: the child's measured peak, and a margin
UNLIMITED = 1 << 60  # a cgroup v1 "no limit" is 2^63 rounded down to a page


def resident_bytes(proc: Path = Path("/proc")) -> int:
    """This process's resident memory now."""
    pages = int((proc / "self" / "statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def room_bytes(root: Path = Path("/")) -> int | None:
    """The memory this process may still take: the least of its cgroups' limits minus their
    usage (its own cgroup and each ancestor that is visible) and the node's ``MemAvailable``;
    None if none of them can be read. ``root``: where ``proc`` and ``sys`` are (tests)."""
    rooms = [*_cgroup_rooms(root), *_available(root)]
    return min(rooms) if rooms else None


def child_need(resident: int) -> int:
    """The room a child of a parent with ``resident`` bytes is given to need."""
    return int(CHILD_SHARE * resident)


def child_fits(resident: int, room: int | None) -> bool:
    """Whether a child of a parent with ``resident`` bytes fits in ``room`` (None: unknown,
    so no limit is known to be in the way)."""
    return room is None or room >= child_need(resident)


def _available(root: Path) -> list[int]:
    try:
        for line in (root / "proc" / "meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return [int(line.split()[1]) * 1024]
    except (OSError, ValueError, IndexError):
        pass
    return []


def _cgroup_rooms(root: Path) -> list[int]:
    """Limit minus usage of each limited cgroup from this process's up to its mount's root."""
    try:
        lines = (root / "proc" / "self" / "cgroup").read_text().splitlines()
    except OSError:
        return []
    base = root / "sys" / "fs" / "cgroup"
    rooms: list[int] = []
    for line in lines:
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and not controllers:  # v2: limit memory.max, usage memory.current
            found = _walk(base, path, "memory.max", "memory.current")
        elif "memory" in controllers.split(","):  # v1
            found = _walk(base / "memory", path, "memory.limit_in_bytes", "memory.usage_in_bytes")
        else:
            continue
        rooms += found
    return rooms


def _walk(mount: Path, path: str, limit_file: str, usage_file: str) -> list[int]:
    """Rooms of the cgroup at ``path`` under ``mount`` and of its ancestors. In a container
    with its own cgroup namespace the mount's root is the container's cgroup, and ``path``
    may name nothing under it: then the root's own files count."""
    parts = [p for p in path.split("/") if p]
    rooms = []
    for depth in range(len(parts), -1, -1):
        here = mount.joinpath(*parts[:depth])
        try:
            limit_text = (here / limit_file).read_text().strip()
            usage = int((here / usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit_text == "max":
            continue
        try:
            limit = int(limit_text)
        except ValueError:
            continue
        if limit < UNLIMITED:
            rooms.append(max(limit - usage, 0))
    return rooms
