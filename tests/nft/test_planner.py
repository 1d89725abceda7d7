"""Incremental plans follow the change; full syncs of an equal table write nothing."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from kpng.dataplane.nft.fake import FakeNftables
from kpng.dataplane.nft.objects import Chain, Element, NftError, Set, Table
from kpng.dataplane.nft.packed import packer
from kpng.dataplane.nft.planner import Planner
from kpng.dataplane.nft.render import render_service
from kpng.dataplane.nft.state import Ids
from kpng.dataplane.nft.transaction import Transaction
from kpng.diff import apply, diff
from kpng.model import EndpointPort, PortMarks, ServicePort, TransportProtocol, ViewEndpoint
from tests.nft.helpers import CONFIG, Harness, ep, svc, view

POD = "10.244.1.5"


def many(n: int, eps: int = 3):  # type: ignore[no-untyped-def]
    return view(
        *(
            (
                svc(f"s{i}", ip=f"10.96.{i // 250}.{i % 250 + 1}"),
                [ep(f"10.244.{i // 250}.{k + 1}") for k in range(eps)],
            )
            for i in range(n)
        )
    )


def step(h: Harness, new):  # type: ignore[no-untyped-def]
    async def go() -> int:
        tx = h.planner.plan_ops(new, diff(h.view, new))
        await h.nft.run(tx)
        return len(tx)

    n = asyncio.run(go())
    h.view = new
    return n


def test_one_endpoint_change_is_a_few_element_ops() -> None:
    h = Harness()
    v = many(50)
    h.full(v)
    key = "default/s7"
    new = apply(diff(v, v), v)
    new.endpoints = {**v.endpoints, key: {**v.endpoints[key], "10.244.0.99": ep("10.244.0.99")}}
    ops = step(h, new)
    assert 0 < ops <= 8
    assert h.trace(POD, "10.96.0.8", 80).endpoint_ips >= {"10.244.0.99"}


def test_incremental_equals_full() -> None:
    a, b = Harness(), Harness()
    v1, v2 = many(20), many(25, eps=2)
    del v2.services["default/s3"], v2.endpoints["default/s3"]
    a.full(v1)
    step(a, v2)
    b.full(v2)
    t = CONFIG.nft_table
    # the pick shapes of 3 endpoints stay until a full sync (kpng.dataplane.nft.picks)
    kept = [line for line in a.nft.dump(t).splitlines() if _shape_line(line, 3)]
    assert len(kept) == 16 * 3 + 16 + 16  # 16 shards: 3 rules, a digest, a pick_static each
    assert a.nft.dump(t).count("element") - 32 == b.nft.dump(t).count("element")
    assert not any(_shape_line(line, 3) for line in b.nft.dump(t).splitlines())
    for i in (0, 3, 24):
        p = (POD, f"10.96.0.{i + 1}", 80)
        assert a.trace(*p) == b.trace(*p)
    a.full(v2)
    assert len(a.nft.dump(t).splitlines()) == len(b.nft.dump(t).splitlines())


def _shape_line(line: str, n: int) -> bool:
    """A fake dump's line of a ``pick_<n>_<S>`` chain, its digest or ``pick_static`` element."""
    return (
        line.startswith(f"chain pick_{n}_")
        or (line.startswith("element pick_static ") and f"goto pick_{n}_" in line)
        or (line.startswith("element chain_digests ") and f'"pick_{n}_' in line)
    )


def test_full_sync_of_an_equal_table_writes_nothing() -> None:
    h = Harness()
    h.full(many(30))
    restarted = Planner(CONFIG)

    async def go() -> Transaction:
        return restarted.plan_full(many(30), await h.nft.read(CONFIG.nft_table))

    assert len(asyncio.run(go())) == 0


def test_removing_everything_leaves_the_skeleton() -> None:
    h = Harness()
    h.full(many(5))
    h.full(view())
    dump = h.nft.dump(CONFIG.nft_table)
    assert "element endpoints" not in dump and "element pick " not in dump
    assert "chain pick_33" not in dump  # the skeleton holds pick_1..pick_32 only


def test_fake_is_atomic_and_checks_references() -> None:
    nft = FakeNftables()
    t = Table("ip", "x")
    tx = Transaction(t)
    tx.add(t)
    tx.add(Set("m", "mark", "verdict"))
    tx.add(Element("m", ("1",), ("goto nowhere",)))
    with pytest.raises(NftError, match="missing chain"):
        asyncio.run(nft.run(tx))
    assert asyncio.run(nft.read(t)) is None
    tx = Transaction(t)
    tx.add(t)
    tx.add(Chain("c", ("ip saddr @gone drop",)))
    with pytest.raises(NftError, match="missing set"):
        asyncio.run(nft.run(tx))


def test_endpoint_changes_up_to_15_write_no_jump_or_goto_elements() -> None:
    """Adding a jump/goto element makes the kernel validate every verdict map of the table
    (O(services) per change): endpoint counts 1..15 travel in the mark instead."""
    h = Harness()
    v = many(20, eps=2)
    h.full(v)
    key, seen = "default/s3", []
    for n in (3, 15, 16, 17, 15, 0, 1) * 2:
        new = apply(diff(v, v), v)
        new.endpoints = {
            **v.endpoints,
            key: {f"10.245.0.{k + 1}": ep(f"10.245.0.{k + 1}") for k in range(n)},
        }
        tx = h.planner.plan_ops(new, diff(h.view, new))
        asyncio.run(h.nft.run(tx))
        h.view = v = new
        gotos = [
            op.obj
            for op in tx
            if op.verb == "add"
            and isinstance(op.obj, Element)
            and op.obj.value
            and op.obj.value[0].startswith(("goto", "jump"))
        ]
        seen.append(len(gotos))
        eps = h.trace(POD, "10.96.0.4", 80).endpoint_ips
        assert eps == {f"10.245.0.{k + 1}" for k in range(n)}
    # 15 -> 16 and 16 -> 17 rewrite the pick verdict (back to 15 is a "return"); losing every
    # endpoint adds the no_endpoint_ips "goto reject_chain"; the first target of 3, 15 and 1
    # endpoints in its shard brings that shape's pick_static element (kpng.dataplane.nft.picks),
    # kept when the target leaves it: the second round adds none
    assert seen == [1, 1, 1, 1, 0, 1, 1, 0, 0, 1, 1, 0, 1, 0]


def test_endpoints_sharing_an_address_are_one_backend_per_address_and_port() -> None:
    """A view keys endpoints by address; a table keyed otherwise may hold two of one
    address: the target's backends are still its (address, port) pairs, sorted, each once."""

    def at(port: int) -> tuple[EndpointPort, ...]:
        return (EndpointPort("http", TransportProtocol.TCP, port),)

    eps = {
        "b": ep("10.244.0.2", ports=at(8080)),
        "a": ep("10.244.0.1", ports=at(8080)),
        "c": ep("10.244.0.2", ports=at(8080)),
        "d": ep("10.244.0.2", ports=at(9090)),
        "e": ep("10.244.0.3", ports=at(8080), internal=False),
    }
    pk = packer(CONFIG)
    objs = render_service(svc("s"), eps, CONFIG, Ids())
    found = [pk.unpack(o) for o in objs if isinstance(o, bytes) and o[0] == pk.index["endpoints_1"]]
    assert [(e.key[1], *(e.value or ())) for e in found] == [
        ("0", "10.244.0.1", "8080"),
        ("1", "10.244.0.2", "8080"),
        ("2", "10.244.0.2", "9090"),
    ]


def test_an_address_that_does_not_pack_fails_only_a_target_that_uses_it() -> None:
    """Addresses are packed once per service; one that does not pack raises only where a
    target uses it, as when each target packed its own."""
    other = (EndpointPort("metrics", TransportProtocol.TCP, 9100),)
    eps = {"x": ep("10.244.0.300", ports=other), "a": ep("10.244.0.1")}
    objs = render_service(svc("s"), eps, CONFIG, Ids())
    assert any(isinstance(o, bytes) for o in objs)
    with pytest.raises(OSError):
        render_service(svc("s"), {**eps, "x": ep("10.244.0.300")}, CONFIG, Ids())


def test_an_endpoint_gaining_port_marks_is_an_incremental_change() -> None:
    """A rollout dropping a named port: the old pod's metrics mark comes in a delta (the
    new pod turned ready); the incremental plan serves metrics from the old pod, as a full
    sync of the new view does."""
    metrics = EndpointPort("metrics", TransportProtocol.TCP, 9091)
    http = EndpointPort("http", TransportProtocol.TCP, 8080)
    ports = (
        ServicePort("http", TransportProtocol.TCP, 80, "http"),
        ServicePort("metrics", TransportProtocol.TCP, 9090, "metrics"),
    )
    s = svc("roll", ports=ports)
    old = ViewEndpoint("10.244.0.2", (http, metrics), "node-b", internal=True, external=True)
    before = view((s, [old]))
    new = ViewEndpoint("10.244.0.3", (http,), "node-b", internal=True, external=True)
    marks = (PortMarks("metrics", TransportProtocol.TCP, True, True),)
    leaving = replace(old, ready=False, terminating=True, internal=False, external=False)
    after = view((s, [leaving.with_port_marks(marks), new]))
    a, b = Harness(), Harness()
    a.full(before)
    assert 0 < step(a, after) <= 12
    b.full(after)
    for port, backends in ((80, {("10.244.0.3", 8080)}), (9090, {("10.244.0.2", 9091)})):
        assert a.trace(POD, "10.96.0.10", port).endpoints == backends
        assert b.trace(POD, "10.96.0.10", port).endpoints == backends
    assert sorted(a.nft.dump(CONFIG.nft_table).splitlines()) == sorted(
        b.nft.dump(CONFIG.nft_table).splitlines()
    )
