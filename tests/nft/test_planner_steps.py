"""A full sync into a new table in steps: the same table as one transaction, each object
written once, and a plan that later changes follow."""

from __future__ import annotations

import asyncio
import gc
from collections import Counter

from kpng.dataplane.nft.fake import FakeNftables
from kpng.dataplane.nft.planner import Planner
from kpng.dataplane.nft.transaction import Ruleset, Transaction
from kpng.diff import View, diff
from kpng.model import ServicePort, TransportProtocol, ViewEndpoint
from tests.nft.helpers import CONFIG, NODE, Harness, ep, svc, view

POD = "10.244.1.5"


def cluster(n: int, eps: int = 3) -> View[ViewEndpoint]:
    """``n`` services; every third with two ports (its cluster IP element twice), a
    hairpin endpoint on this node in each (the pair is the same object in each), and
    endpoint sets shared by services 0 and 1."""
    two = (
        ServicePort("http", TransportProtocol.TCP, 80, 8080),
        ServicePort("alt", TransportProtocol.TCP, 81, 8080),
    )
    out = []
    for i in range(n):
        kw = {"ports": two} if i % 3 == 0 else {}
        s = svc(f"s{i}", ip=f"10.96.{i // 250}.{i % 250 + 1}", **kw)
        base = 0 if i < 2 else i
        backends = [ep(f"10.244.{base // 250}.{k + 1}") for k in range(eps)]
        out.append((s, [*backends, ep("10.244.200.1", node=NODE)]))
    return view(*out)


def stepped(planner: Planner, v: View[ViewEndpoint], live: Ruleset | None, step: int):  # type: ignore[no-untyped-def]
    return list(planner.plan_full_steps(v, live, step))


def apply(nft: FakeNftables, steps: list[Transaction]) -> None:
    async def go() -> None:
        for tx in steps:
            await nft.run(tx)

    asyncio.run(go())


def test_steps_into_a_new_table_write_what_one_transaction_writes() -> None:
    v = cluster(23)
    one, many = Harness(), Harness()
    one.full(v)
    steps = stepped(many.planner, v, None, 5)
    assert len(steps) == 5  # 23 services, 5 at a time
    apply(many.nft, steps)
    t = CONFIG.nft_table
    assert many.nft.dump(t) == one.nft.dump(t)
    assert sum(map(len, steps)) == len(Harness().planner.plan_full(v, None))
    for i in (0, 1, 7, 22):
        p = (POD, f"10.96.0.{i + 1}", 80)
        assert many.trace(*p) == one.trace(*p)


def test_each_object_is_written_by_one_step() -> None:
    steps = stepped(Planner(CONFIG), cluster(12), None, 4)
    written = Counter(op for tx in steps for op in tx)
    assert written and max(written.values()) == 1
    assert [op.obj for op in steps[0].ops[:1]] == [CONFIG.nft_table]  # the first makes the table
    assert all(op.verb == "add" for tx in steps[1:] for op in tx)


def test_a_later_step_writes_its_new_elements_in_the_order_they_were_rendered() -> None:
    """Per set, each first occurrence once, in the services' order: what a step adds does
    not depend on how the counts are kept."""
    v = cluster(12)
    p = Planner(CONFIG)
    steps = stepped(p, v, None, 4)
    assert p.programmed is not None
    keys = list(v.services)
    seen = set().union(*(p.programmed.by_service[k] for k in ["", *keys[:4]]))
    for n, tx in enumerate(steps[1:], start=1):
        expected: dict[int, list[bytes]] = {}
        for key in keys[4 * n : 4 * n + 4]:
            for o in p.programmed.by_service[key]:
                if isinstance(o, bytes) and o not in seen:
                    seen.add(o)
                    expected.setdefault(o[0], []).append(o)
        got = {run[2][0][0]: run[2] for run in tx.packed}
        assert all(run[0] == "add" for run in tx.packed)
        assert got == expected and got


def test_the_plan_after_steps_is_the_plan_of_one_transaction() -> None:
    v = cluster(17)
    a, b = Planner(CONFIG), Planner(CONFIG)
    a.plan_full(v, None)
    stepped(b, v, None, 3)
    assert a.programmed is not None and b.programmed is not None
    assert b.programmed.counts == a.programmed.counts
    assert b.programmed.by_service == a.programmed.by_service
    assert b.ids.by_key == a.ids.by_key


def test_a_change_after_steps_is_incremental() -> None:
    v = cluster(10)
    h = Harness()
    apply(h.nft, stepped(h.planner, v, None, 3))
    new = cluster(10)
    key = "default/s4"
    new.endpoints[key] = {**new.endpoints[key], "10.244.0.99": ep("10.244.0.99")}
    tx = h.planner.plan_ops(new, diff(v, new))
    assert 0 < len(tx) <= 8
    apply(h.nft, [tx])
    assert h.trace(POD, "10.96.0.5", 80).endpoint_ips >= {"10.244.0.99"}


def test_against_a_live_table_one_step_writes_only_what_differs() -> None:
    v = cluster(9)
    h = Harness()
    h.full(v)

    async def live() -> Ruleset | None:
        return await h.nft.read(CONFIG.nft_table)

    steps = stepped(Planner(CONFIG), v, asyncio.run(live()), 2)
    assert len(steps) == 1 and len(steps[0]) == 0


def test_an_empty_view_is_one_step_with_the_skeleton() -> None:
    h, one = Harness(), Harness()
    one.full(view())
    steps = stepped(h.planner, view(), None, 100)
    assert len(steps) == 1
    apply(h.nft, steps)
    assert h.nft.dump(CONFIG.nft_table) == one.nft.dump(CONFIG.nft_table)
    assert h.planner.programmed is not None and list(h.planner.programmed.by_service) == [""]


def test_the_collector_stays_paused_from_the_first_step_to_the_last() -> None:
    """Resumed between steps, it ran ~100 times over a 10k-service sync (75 ms)."""
    assert gc.isenabled()
    runs: list[str] = []

    def seen(phase: str, info: dict[str, int]) -> None:
        runs.append(phase)

    gc.callbacks.append(seen)
    try:
        for _ in Planner(CONFIG).plan_full_steps(cluster(30), None, 3):
            assert not gc.isenabled()
            _ = [[] for _ in range(5000)]  # what the loop allocates meanwhile
            assert runs == []
    finally:
        gc.callbacks.remove(seen)
    assert gc.isenabled()
