"""The planner's packed elements: what render packs is what the codec encodes, a dump's
elements come back to the sent form, and a restart compares them without decoding."""

from __future__ import annotations

import asyncio
import struct
import sys
from concurrent.futures import Future
from dataclasses import replace

from kpng.dataplane.nft.kernel.nlnft import SEQ_WRAP, NetlinkNftables, Raw, switching
from kpng.dataplane.nft.kernel.nlsocket import NetlinkSocket
from kpng.dataplane.nft.kernel.steps import Steps
from kpng.dataplane.nft.netlink.batch import build, dump_raw
from kpng.dataplane.nft.netlink.codec import NFTA_SET_ELEM_DATA, NFTA_SET_ELEM_KEY, attrs
from kpng.dataplane.nft.objects import Element
from kpng.dataplane.nft.packed import Packer, adopt, key_only, packer, sent_forms
from kpng.dataplane.nft.planner import Planner
from kpng.dataplane.nft.state import Ids
from kpng.dataplane.nft.transaction import Ruleset, Transaction
from tests.nft.helpers import CONFIG, Harness, ep, svc, view
from tests.nft.test_netlink import TABLE

PK = packer(CONFIG)


def _dumped(raw: bytes) -> bytes:
    """An element as the kernel dumps it: no NLA_F_NESTED on the element, its key and data,
    nor on a verdict's nest."""
    out = bytearray(raw)
    struct.pack_into("=H", out, 2, struct.unpack_from("=H", out, 2)[0] & 0x3FFF)
    for kind, a, _ in attrs(raw, 4, len(raw)):
        if kind in (NFTA_SET_ELEM_KEY, NFTA_SET_ELEM_DATA):
            for at in (a - 4, a):
                struct.pack_into(
                    "=H", out, at + 2, struct.unpack_from("=H", out, at + 2)[0] & 0x3FFF
                )
    return bytes(out)


def _plan(n: int = 40) -> Harness:
    h = Harness()
    pairs = [
        (
            svc(f"s{i}", ip=f"10.96.0.{i + 1}", np=30000 + i if i % 3 == 0 else 0),
            [ep(f"10.244.0.{i + 1}")],
        )
        for i in range(n)
    ]
    pairs.append((svc("lonely", ip="10.96.1.1"), []))
    pairs.append((svc("sticky", ip="10.96.1.2", affinity_timeout=30), [ep("10.244.9.1")]))
    h.full(view(*pairs))
    return h


def test_render_packs_what_the_codec_encodes() -> None:
    h = _plan()
    assert h.planner.programmed is not None
    packed = [p for p in h.planner.programmed.counts if isinstance(p, bytes)]
    sets = {PK.names[p[0]] for p in packed}
    assert {"endpoints_1", "service_ips", "cluster_ips", "pick", "no_endpoint_ips"} <= sets
    for p in packed:
        assert PK.pack(PK.unpack(p)) == p


def test_verdict_elements_of_another_shape_come_back_one_by_one() -> None:
    """The ``pick`` fast path (key, then data, then a comment) leaves any other shape to
    the attribute walk: a flags attribute between key and data, no comment, an attribute
    after the comment, a second data attribute (which the walk flags too)."""
    h = _plan(3)
    assert h.planner.programmed is not None
    i = PK.index["pick"]
    picks = [p[1:] for p in h.planner.programmed.counts if isinstance(p, bytes) and p[0] == i]
    flags = struct.pack("=HHI", 8, 3, 0)  # NFTA_SET_ELEM_FLAGS
    odd = []
    for raw in picks[:3]:
        (klen,) = struct.unpack_from("=H", raw, 4)
        cut = 4 + ((klen + 3) & ~3)
        spans = [(a - 4, b) for _, a, b in attrs(raw, 4, len(raw))]
        no_comment = raw[: spans[1][1] + (-spans[1][1] & 3)]
        data = raw[spans[1][0] : spans[1][1] + (-spans[1][1] & 3)]
        variants = (raw[:cut] + flags + raw[cut:], no_comment, raw + flags, raw + data)
        for body in variants:
            odd.append(struct.pack("=H", len(body)) + body[2:])
    raws = [picks[0], *odd, picks[1]]
    body = b"".join(map(_dumped, raws))
    assert sent_forms(PK.layouts["pick"], body, 0, len(body)) == raws


def test_dumped_elements_come_back_to_the_sent_form() -> None:
    h = _plan()
    assert h.planner.programmed is not None
    by_set: dict[str, list[bytes]] = {}
    for p in h.planner.programmed.counts:
        if isinstance(p, bytes):
            by_set.setdefault(PK.names[p[0]], []).append(p[1:])
    assert len(by_set["pick"]) > 1 and len(by_set["endpoints_1"]) > 1
    for name, raws in by_set.items():
        lay = PK.layouts[name]
        body = b"".join(map(_dumped, raws))
        assert sent_forms(lay, body, 0, len(body)) == raws, name
    picks = by_set["pick"]
    assert dict(adopt(picks)) == {
        PK.unpack(PK.prefixes[PK.index["pick"]] + r).comment: int(
            PK.unpack(PK.prefixes[PK.index["pick"]] + r).key[0]
        )
        for r in picks
    }


def test_a_dump_of_packed_adds_reads_back_as_sent() -> None:
    eps = [PK.pack(Element("endpoints_0", (str(i), "0"), ("10.0.0.1", "80"))) for i in range(1, 4)]
    assert all(isinstance(p, bytes) for p in eps)
    b = build(TABLE, [("add", PK.layouts["endpoints_0"], eps)], seq=1)  # type: ignore[list-item]
    body = b.parts[2]
    elements = b"".join(p[1:] for p in eps)  # type: ignore[index]
    assert body.endswith(elements)
    dumped = body[: -len(elements)] + b"".join(_dumped(p[1:]) for p in eps)  # type: ignore[index]
    out: list[bytes] = []
    assert not dump_raw(PK.layouts["endpoints_0"], dumped, out)
    assert out == [p[1:] for p in eps]  # type: ignore[index]


def test_a_delete_sends_the_key_only() -> None:
    p = PK.pack(Element("pick", ("3",), ("goto pick_2_3",), "default/web|http|TCP|i"))
    assert isinstance(p, bytes)
    d = p[:1] + key_only(p)
    assert PK.unpack(d) == Element("pick", ("3",))
    assert len(d) == 1 + 4 + 12


def _raw_ruleset(h: Harness, pk: Packer) -> Ruleset:
    """The fake's table as netlink reads it: elements of sets with a layout kept raw."""
    live = asyncio.run(h.nft.read(CONFIG.nft_table))
    assert live is not None
    decoded = {k: e for k, e in live.decoded.items() if e.set not in pk.layouts}
    raw: dict[str, list[bytes]] = {}
    for e in live.decoded.values():
        if e.set in pk.layouts:
            p = pk.pack(e)
            assert isinstance(p, bytes)
            raw.setdefault(e.set, []).append(p[1:])
    raws = {n: (pk.layouts[n], r) for n, r in raw.items()}
    return Ruleset(live.table, live.chains, live.sets, live.maps, decoded, raws)


def test_a_restart_on_raw_elements_writes_nothing_then_only_what_differs() -> None:
    h = _plan()
    live = _raw_ruleset(h, PK)
    assert live.elements == asyncio.run(h.nft.read(CONFIG.nft_table)).elements  # type: ignore[union-attr]
    restarted = Planner(CONFIG)
    assert len(restarted.plan_full(h.view, live)) == 0
    assert restarted.ids.by_key == h.planner.ids.by_key
    lay, raws = live.raw["cluster_ips"]
    stale = PK.pack(Element("cluster_ips", ("10.96.7.7",)))
    assert isinstance(stale, bytes)
    changed = dict(live.raw)
    changed["cluster_ips"] = (lay, [*raws, stale[1:]])
    again = Planner(CONFIG)
    tx = again.plan_full(
        h.view, Ruleset(live.table, live.chains, live.sets, live.maps, live.decoded, changed)
    )
    assert [(op.verb, op.obj) for op in tx] == [("delete", Element("cluster_ips", ("10.96.7.7",)))]


def _split_ruleset(live: Ruleset, rest: Future[Raw]) -> Ruleset:
    """``live`` as a netlink read returns it: ``pick`` and the digests now, the rest later."""
    now = {n: r for n, r in live.raw.items() if n in ("pick", "chain_digests")}
    return Ruleset(live.table, live.chains, live.sets, live.maps, live.decoded, now, rest)


def test_a_restart_renders_from_pick_alone_and_compares_once_the_rest_is_dumped() -> None:
    h = _plan()
    live = _raw_ruleset(h, PK)
    never: Future[Raw] = Future()
    never.set_exception(AssertionError("waited for the rest of the dump"))
    # the ids come from pick alone: adopting does not wait for (nor fail with) the rest
    assert Ids.adopt(_split_ruleset(live, never)).by_key == h.planner.ids.by_key
    rest: Future[Raw] = Future()
    rest.set_result({n: r for n, r in live.raw.items() if n not in ("pick", "chain_digests")})
    split = _split_ruleset(live, rest)
    assert split.raw == live.raw
    assert len(Planner(CONFIG).plan_full(h.view, split)) == 0
    failed: Future[Raw] = Future()
    failed.set_exception(OSError("dump failed"))
    try:
        Planner(CONFIG).plan_full(h.view, _split_ruleset(live, failed))
    except OSError as e:
        assert str(e) == "dump failed"  # the dump's error, raised to the planning
    else:
        raise AssertionError("planned without the rest of the table")


def test_a_dump_switches_threads_often_and_puts_the_interval_back() -> None:
    was = sys.getswitchinterval()
    with switching(0.0005):
        assert sys.getswitchinterval() == 0.0005
    assert sys.getswitchinterval() == was
    try:
        with switching(0.0002):
            raise ValueError
    except ValueError:
        pass
    assert sys.getswitchinterval() == was


def test_a_table_of_an_earlier_layout_is_recreated_even_if_its_elements_do_not_pack() -> None:
    h = _plan(3)
    cidr = Element("cluster_ips", ("10.96.0.0/12",))  # cluster_ips was an interval set
    live = Ruleset(
        CONFIG.nft_table, {}, {"cluster_ips": ""}, frozenset(), {("cluster_ips", cidr.key): cidr}
    )
    tx = Planner(CONFIG).plan_full(h.view, live)
    first = next(iter(tx))
    assert (first.verb, first.obj) == ("delete", CONFIG.nft_table)


def test_a_base_chain_made_otherwise_recreates_the_table() -> None:
    """The kernel changes no hook priority in place (EOPNOTSUPP), and an ``add chain`` keeps a
    policy: a base chain whose digest differs (or is missing) means another layout."""
    h = _plan(3)
    live = asyncio.run(h.nft.read(CONFIG.nft_table))
    assert live is not None
    assert len(Planner(CONFIG).plan_full(h.view, live)) == 0
    for chain, recreated in (("filter_output", True), ("dispatch", False)):
        chains = {**live.chains, chain: ""}
        other = Ruleset(live.table, chains, live.sets, live.maps, live.decoded, live.raw)
        first = next(iter(Planner(CONFIG).plan_full(h.view, other)))
        assert ((first.verb, first.obj) == ("delete", CONFIG.nft_table)) == recreated


def test_a_service_without_addresses_of_a_family_is_not_in_its_table() -> None:
    """A single-stack service is the other family's (no pick elements, no target ids); a
    node port is served by both families' node addresses."""
    v6 = replace(CONFIG, family=6, pod_cidrs=(), nodeport_cidrs=())
    h = Harness(v6)
    h.full(view((svc("v4"), [ep("10.244.0.1")]), (svc("np", np=30001), [ep("10.244.0.2")])))
    assert h.planner.programmed is not None
    assert "default/v4" not in h.planner.programmed.by_service
    assert "default/np" in h.planner.programmed.by_service
    assert not any(k.startswith("default/v4|") for k in h.planner.ids.by_key)


def test_batch_sequence_numbers_wrap_before_32_bits() -> None:
    nl = NetlinkNftables(sock=NetlinkSocket())  # the socket opens on first use: none here
    assert nl.sock is not None
    nl.sock.seq = SEQ_WRAP - 5
    run = [("add", PK.layouts["cluster_ips"], [PK.pack(Element("cluster_ips", ("10.96.0.1",)))])]
    for _ in range(3):
        nl._build(TABLE, Steps(Transaction(TABLE), run, Transaction(TABLE)))  # type: ignore[arg-type]
    assert 0 < nl.sock.seq < SEQ_WRAP
