"""Room for a dual-stack full sync's forked child: the memory limit of the agent's cgroup (v2,
v1, with or without a cgroup namespace) and the node's, and the backend's choice."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, cast

import pytest

from kpng_agent.backends import parallel
from kpng_agent.backends.memroom import child_fits, resident_bytes, room_bytes
from kpng_agent.backends.parallel import ParallelFamilies

MB = 1 << 20
V1_UNLIMITED = "9223372036854771712"


def tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
    return root


def meminfo(available_mb: int) -> str:
    return f"MemTotal: 33554432 kB\nMemFree: 1024 kB\nMemAvailable: {available_mb * 1024} kB"


def test_cgroup_v2_the_containers_limit_less_its_usage(tmp_path: Path) -> None:
    ctr = "sys/fs/cgroup/kubepods/pod1/ctr"
    root = tree(
        tmp_path,
        {
            "proc/self/cgroup": "0::/kubepods/pod1/ctr",
            "proc/meminfo": meminfo(8000),
            f"{ctr}/memory.max": str(512 * MB),
            f"{ctr}/memory.current": str(200 * MB),
            "sys/fs/cgroup/kubepods/pod1/memory.max": "max",
            "sys/fs/cgroup/kubepods/pod1/memory.current": str(900 * MB),
        },
    )
    assert room_bytes(root) == 312 * MB


def test_cgroup_v2_an_ancestor_tighter_than_the_container_wins(tmp_path: Path) -> None:
    root = tree(
        tmp_path,
        {
            "proc/self/cgroup": "0::/pod/ctr",
            "sys/fs/cgroup/pod/ctr/memory.max": str(512 * MB),
            "sys/fs/cgroup/pod/ctr/memory.current": str(100 * MB),
            "sys/fs/cgroup/pod/memory.max": str(600 * MB),
            "sys/fs/cgroup/pod/memory.current": str(450 * MB),  # a sidecar's too
        },
    )
    assert room_bytes(root) == 150 * MB


def test_cgroup_v2_in_its_own_namespace_reads_the_mounts_root(tmp_path: Path) -> None:
    root = tree(
        tmp_path,
        {
            "proc/self/cgroup": "0::/",
            "sys/fs/cgroup/memory.max": str(256 * MB),
            "sys/fs/cgroup/memory.current": str(56 * MB),
        },
    )
    assert room_bytes(root) == 200 * MB


def test_cgroup_v1_limited_container_unlimited_ancestors(tmp_path: Path) -> None:
    mem = "sys/fs/cgroup/memory"
    root = tree(
        tmp_path,
        {
            "proc/self/cgroup": "12:pids:/x\n4:memory:/kubepods/burstable/pod1/ctr\n1:cpu:/x",
            f"{mem}/kubepods/burstable/pod1/ctr/memory.limit_in_bytes": str(512 * MB),
            f"{mem}/kubepods/burstable/pod1/ctr/memory.usage_in_bytes": str(300 * MB),
            f"{mem}/kubepods/memory.limit_in_bytes": V1_UNLIMITED,
            f"{mem}/kubepods/memory.usage_in_bytes": str(5000 * MB),
            f"{mem}/memory.limit_in_bytes": V1_UNLIMITED,
            f"{mem}/memory.usage_in_bytes": str(9000 * MB),
        },
    )
    assert room_bytes(root) == 212 * MB


def test_cgroup_v1_where_the_path_names_nothing_under_the_mount(tmp_path: Path) -> None:
    # a container's own view: the mount's root is its cgroup, /proc names the host's path
    mem = "sys/fs/cgroup/memory"
    root = tree(
        tmp_path,
        {
            "proc/self/cgroup": "4:memory:/kubepods/pod1/ctr",
            f"{mem}/memory.limit_in_bytes": str(400 * MB),
            f"{mem}/memory.usage_in_bytes": str(100 * MB),
        },
    )
    assert room_bytes(root) == 300 * MB


def test_the_node_may_have_less_than_the_limit(tmp_path: Path) -> None:
    root = tree(
        tmp_path,
        {
            "proc/self/cgroup": "0::/",
            "proc/meminfo": meminfo(120),
            "sys/fs/cgroup/memory.max": str(1024 * MB),
            "sys/fs/cgroup/memory.current": str(100 * MB),
        },
    )
    assert room_bytes(root) == 120 * MB


def test_unlimited_or_unreadable_is_no_known_limit(tmp_path: Path) -> None:
    assert room_bytes(tmp_path) is None
    unlimited = tree(
        tmp_path / "u",
        {
            "proc/self/cgroup": "0::/",
            "sys/fs/cgroup/memory.max": "max",
            "sys/fs/cgroup/memory.current": "123",
        },
    )
    assert room_bytes(unlimited) is None


def test_this_machine_can_be_read() -> None:
    assert resident_bytes() > 10 * MB
    room = room_bytes()
    assert room is None or room > 0


@pytest.mark.parametrize(
    ("resident", "room", "fits"),
    [(100, None, True), (100, 150, True), (100, 149, False), (100, 0, False)],
)
def test_a_child_needs_one_and_a_half_times_the_parents_resident_memory(
    resident: int, room: int | None, fits: bool
) -> None:
    assert child_fits(resident * MB, None if room is None else room * MB) is fits


def test_without_room_the_sync_has_no_child_and_says_so_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(parallel, "can_fork", lambda: True)
    room = [1000 * MB]
    families = ParallelFamilies(cast(Any, object()), 2000, lambda: room[0], lambda: 200 * MB)
    assert families.choose(5000, [4, 6]) == 6
    assert families.choose(1999, [4, 6]) is None  # under the threshold: not asked
    caplog.set_level(logging.INFO, logger=parallel.__name__)
    room[0] = 250 * MB
    assert families.choose(5000, [4, 6]) is None
    assert families.choose(5000, [4, 6]) is None
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1
    assert "~300 MB" in warned[0] and "200 MB resident" in warned[0] and "250 MB" in warned[0]
    room[0] = 300 * MB
    assert families.choose(5000, [4, 6]) == 6
    assert any("room for a child again" in r.getMessage() for r in caplog.records)
