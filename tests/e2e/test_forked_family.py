"""A dual-stack full sync with the second family written by a forked child
(``Settings.fork_above``): the same tables as one process writes, the child's plan adopted
for the changes that follow, and a child's failure raised, then repaired by the next sync.
Real nftables, in namespaces of their own."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest

from kpng.bus.consumer import Applied
from kpng.dataplane.nft.kernel.execnft import NftCommand
from kpng.dataplane.nft.objects import NftError
from kpng.dataplane.nft.planner import Planner
from kpng.diff import DeleteEndpoint, Op, SetEndpoint, View
from kpng.model import ViewEndpoint
from kpng_agent.backends.forked import ChildFailed
from kpng_agent.backends.nftables import NftablesBackend, Settings
from kpng_bench.workload import NODE, NODE_IP, NODE_IP6, endpoint, node_view
from kpng_netns.netns import sh
from tests.e2e.netns import Cluster

pytestmark = pytest.mark.netns


class Node:
    """A backend programming one namespace, both families."""

    def __init__(self, ns: str, fork_above: int) -> None:
        settings = Settings(
            NODE,
            cluster_cidrs=("10.244.0.0/16", "fd00:244::/64"),
            nodeport_addresses=(f"{NODE_IP}/32", f"{NODE_IP6}/128"),
            fork_above=fork_above,
        )
        self.ns = ns
        self.backend = NftablesBackend(
            settings, NftCommand(("ip", "netns", "exec", ns, "nft")), lambda: [NODE_IP]
        )
        self.seq = 0

    def program(self, v: View[ViewEndpoint], full: bool, ops: tuple[Op[Any], ...] = ()) -> int:
        self.seq += 1
        event = Applied("snapshot" if full else "delta", "e1", self.seq, v, ops)

        async def go() -> None:
            try:
                await self.backend.program(event, full)
            finally:  # the child's plan taken (or given up) in this loop, even if the sync failed
                adopting = self.backend.parallel.adopting.values()
                await asyncio.gather(*(f for f in adopting if not f.done()))

        asyncio.run(go())
        return self.backend.last_ops

    def table(self, family: str) -> dict[str, Any]:
        """The table as ``nft -j`` lists it: rules in order, each set's elements sorted."""
        doc = json.loads(sh("nft", "-j", "list", "table", family, "kpng", ns=self.ns))
        out: dict[str, Any] = {}
        for item in doc["nftables"]:
            for kind, body in item.items():
                if kind in ("set", "map"):
                    elems = sorted(json.dumps(e, sort_keys=True) for e in body.get("elem", []))
                    out[f"{kind} {body['name']}"] = (body["type"], elems)
                elif kind == "chain":
                    out[f"chain {body['name']}"] = body.get("hook")
                elif kind == "rule":
                    out.setdefault(f"rules {body['chain']}", []).append(body["expr"])
        return out


@pytest.fixture
def nodes(cluster: Cluster) -> Iterator[tuple[Node, Node]]:
    forked, plain = Node(cluster.ns("fork"), 1), Node(cluster.ns("plain"), 0)
    yield forked, plain
    for n in (forked, plain):
        asyncio.run(n.backend.close())


def change(v: View[ViewEndpoint], family: int) -> tuple[Op[Any], ...]:
    """One more endpoint of the family for the first service."""
    key = next(iter(v.services))
    e = endpoint(10**5, 0, 1, family)
    v.endpoints[key] = {**v.endpoints[key], e.ip: e}
    return (SetEndpoint(key, e),)


def test_the_child_writes_the_table_one_process_writes_and_its_plan_serves_the_next_change(
    nodes: tuple[Node, Node],
) -> None:
    forked, plain = nodes
    v = node_view(30, 3, "dual")
    full = forked.program(v, full=True)
    assert full == plain.program(v, full=True) > 300
    for family in ("ip", "ip6"):
        assert forked.table(family) == plain.table(family), family
    assert forked.backend.planners[6].programmed is not None  # the child's, adopted
    netlink = forked.backend.parallel.netlink
    assert netlink is not None and netlink.layouts.get(forked.backend.planners[6].config.nft_table)
    # a change of each family is planned incrementally from the adopted plan: what one process
    # writes (a shape of 4 endpoints, new here: its pick chain too), not a full sync
    for family in (6, 4):
        ops = change(v, family)
        assert forked.program(v, full=False, ops=ops) == plain.program(v, full=False, ops=ops)
        assert 0 < forked.backend.last_ops < full / 10
    key = next(iter(v.services))
    gone = endpoint(10**5, 0, 1, 6)
    del v.endpoints[key][gone.ip]
    ops2: tuple[Op[Any], ...] = (DeleteEndpoint(key, gone.ip),)
    assert 0 < forked.program(v, full=False, ops=ops2) == plain.program(v, full=False, ops=ops2)
    for family in ("ip", "ip6"):
        assert forked.table(family) == plain.table(family), family
    # restarted, the child reads its table back as one process does: the first full sync
    # drops the pick shape no target uses any more, the next writes nothing
    assert restart(forked.ns, 1, v) == restart(plain.ns, 0, v)
    assert restart(forked.ns, 1, v) == 0


def restart(ns: str, fork_above: int, v: View[ViewEndpoint]) -> int:
    """The operations a new backend's first full sync writes."""
    node = Node(ns, fork_above)
    try:
        return node.program(v, full=True)
    finally:
        asyncio.run(node.backend.close())


def _in_child_only(parent: int, fail: Any) -> Any:
    real = Planner.plan_full_steps

    def plan_full_steps(self: Planner, *args: Any, **kw: Any) -> Any:
        if os.getpid() != parent and self.config.family == 6:
            fail()
        return real(self, *args, **kw)

    return plan_full_steps


@pytest.mark.parametrize(
    ("fail", "raised", "message"),
    [
        (lambda: (_ for _ in ()).throw(NftError("refused")), NftError, "NftError: refused"),
        (lambda: os.kill(os.getpid(), signal.SIGKILL), ChildFailed, "killed by signal 9"),
    ],
)
def test_a_failed_child_fails_the_sync_and_the_next_full_sync_repairs_it(
    nodes: tuple[Node, Node],
    monkeypatch: pytest.MonkeyPatch,
    fail: Any,
    raised: type[Exception],
    message: str,
) -> None:
    forked, plain = nodes
    v = node_view(30, 3, "dual")
    monkeypatch.setattr(Planner, "plan_full_steps", _in_child_only(os.getpid(), fail))
    with pytest.raises(raised, match=f"ip6 kpng full sync: .*{message}"):
        forked.program(v, full=True)
    assert forked.backend.planners[6].programmed is None  # nothing adopted: read back next
    monkeypatch.undo()
    forked.program(v, full=True)
    plain.program(v, full=True)
    for family in ("ip", "ip6"):
        assert forked.table(family) == plain.table(family), family


def test_a_change_right_after_the_sync_waits_for_the_childs_plan(nodes: tuple[Node, Node]) -> None:
    forked, plain = nodes
    v = node_view(30, 3, "dual")
    full = plain.program(v, full=True)
    expected = plain.program(v, full=False, ops=change(v, 6))
    v = node_view(30, 3, "dual")

    async def both() -> tuple[bool, int]:
        b = forked.backend
        await b.program(Applied("snapshot", "e1", 1, v, ()), True)
        pending = 6 in b.parallel.adopting and not b.parallel.adopting[6].done()
        await b.program(Applied("delta", "e1", 2, v, change(v, 6)), False)
        return pending, b.last_ops

    pending, written = asyncio.run(both())
    assert pending  # the sync returned before the child's plan was taken
    assert written == expected < full / 10
    for family in ("ip", "ip6"):
        assert forked.table(family) == plain.table(family), family


def test_without_a_child_the_family_is_written_here_from_then_on(
    nodes: tuple[Node, Node], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A seccomp profile that refuses ``memfd_create`` (or ``fork``, ``pidfd_open``)."""
    forked, plain = nodes

    def refused(*_: Any) -> int:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "memfd_create", refused)
    v = node_view(30, 3, "dual")
    assert forked.program(v, full=True) == plain.program(v, full=True)
    assert forked.backend.parallel.above == 0 and not forked.backend.parallel.adopting
    for family in ("ip", "ip6"):
        assert forked.table(family) == plain.table(family), family


def test_a_plan_no_longer_awaited_leaves_the_family_to_read_its_table_back(
    nodes: tuple[Node, Node],
) -> None:
    forked, plain = nodes
    v = node_view(30, 3, "dual")
    plain.program(v, full=True)

    async def go() -> int:
        b = forked.backend
        await b.program(Applied("snapshot", "e1", 1, v, ()), True)
        b.parallel.adopting[6].cancel()  # as close() does
        await b.program(Applied("delta", "e1", 2, v, change(v, 6)), False)
        return b.last_ops

    written = asyncio.run(go())
    # no plan came back: the change was a full sync of ip6 reading its table back, and it
    # wrote only the change (the adopted plan would have written the same)
    assert written == plain.program(v, full=False, ops=change_again(v))
    for family in ("ip", "ip6"):
        assert forked.table(family) == plain.table(family), family


def change_again(v: View[ViewEndpoint]) -> tuple[Op[Any], ...]:
    """The op of :func:`change` already applied to ``v`` (for a second backend)."""
    key = next(iter(v.services))
    e = endpoint(10**5, 0, 1, 6)
    return (SetEndpoint(key, v.endpoints[key][e.ip]),)
