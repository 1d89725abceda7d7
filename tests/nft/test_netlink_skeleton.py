"""The skeleton over netlink is what nft 1.0.6 sends for it, message by message.

``tests/nft/data/skeleton-<name>.hex`` is the batch ``nft -f`` sent for the skeleton of
:data:`tests.nft.capture.CONFIGS` (``python -m tests.nft.capture <name>`` rewrites it). Each
table, set, chain, rule and interval-element message kpng encodes must equal nft's, less the
set ids nft gives lookups and element lists (kpng names the set; see
:mod:`kpng.dataplane.nft.netlink.exprs`).
"""

from __future__ import annotations

import ipaddress
import struct

import pytest

from kpng.dataplane.nft.kernel.steps import Steps, split
from kpng.dataplane.nft.netlink.batch import build
from kpng.dataplane.nft.netlink.codec import NLA_F_NESTED, layout
from kpng.dataplane.nft.netlink.definitions import (
    delete_message,
    interval_elements,
    set_message,
    table_message,
)
from kpng.dataplane.nft.netlink.exprs import Context, compile_rule
from kpng.dataplane.nft.netlink.intervals import boundaries
from kpng.dataplane.nft.netlink.intervals import elements as read_intervals
from kpng.dataplane.nft.netlink.rules import chain_messages
from kpng.dataplane.nft.objects import Chain, Element, Set
from kpng.dataplane.nft.planner import Planner
from kpng.dataplane.nft.skeleton import chains, config_elements, sets
from kpng.dataplane.nft.transaction import Transaction
from kpng.diff import View
from kpng.model import ViewEndpoint
from tests.nft.capture import CONFIGS, DATA, messages
from tests.nft.helpers import ep, svc, view

NEWTABLE, NEWCHAIN, NEWRULE, NEWSET, NEWSETELEM = 0, 3, 6, 9, 12
Tree = list[tuple[int, "bytes | Tree"]]


def _tree(buf: bytes) -> Tree:
    out: Tree = []
    at = 0
    while at + 4 <= len(buf):
        n, kind = struct.unpack_from("=HH", buf, at)
        body = buf[at + 4 : at + n]
        out.append((kind, _tree(body) if kind & NLA_F_NESTED else body))
        at += (n + 3) & ~3
    return out


def _without_set_ids(t: Tree, in_lookup: bool = False) -> Tree:
    """Drop NFTA_LOOKUP_SET_ID (4, in a lookup's data) and NFTA_SET_ELEM_LIST_SET_ID (4)."""
    out: Tree = []
    names = [v for k, v in t if k == 1 and isinstance(v, bytes)]
    lookup = bool(names) and names[0] == b"lookup\0"
    for kind, value in t:
        if in_lookup and kind == 4:
            continue
        if isinstance(value, list):
            value = _without_set_ids(value, lookup and kind & 0x3FFF == 2)
        out.append((kind, value))
    return out


def _nft(family: str) -> list[tuple[int, int, Tree]]:
    """(type, flags, attributes) of each message nft sent."""
    out = []
    for raw in messages(bytes.fromhex((DATA / f"skeleton-{family}.hex").read_text())):
        _, kind, flags, _, _ = struct.unpack_from("=IHHII", raw)
        out.append((kind & 0xFF, flags, _tree(raw[20:])))
    return out


def _named(t: Tree, kind: int) -> str:
    for k, v in t:
        if k == kind and isinstance(v, bytes):
            return v.rstrip(b"\0").decode()
    return ""


@pytest.mark.parametrize("name", ["ip", "ip6", "ip-bridge", "ip6-prefix"])
def test_table_sets_chains_and_rules_are_what_nft_sends(name: str) -> None:
    """Also with pod traffic told by input interface (``iifname "cbr0"``, ``"pod*"``)."""
    c = CONFIGS[name]
    family = c.nft_family
    sent = _nft(name)
    kind, flags, attrs = sent[1]
    mine = table_message("kpng")
    assert (kind, flags & ~1, attrs) == (mine[0], mine[1], _tree(mine[2]))

    nft_sets = {_named(a, 2): (f, a) for k, f, a in sent if k == NEWSET}
    for i, s in enumerate(sets(c), 1):
        found = set_message("kpng", s, i)
        assert found is not None, s
        assert (nft_sets[s.name][0] & ~1, nft_sets[s.name][1]) == (found[1], _tree(found[2])), s

    swapped = frozenset({"firewall_allow"})
    for chain in chains(c):
        found = chain_messages("kpng", chain, Context(family, swapped))
        assert found is not None, chain.name
        heads = [(f, a) for k, f, a in sent if k == NEWCHAIN and _named(a, 3) == chain.name]
        assert (heads[0][0] & ~1, heads[0][1]) == (found[0][1], _tree(found[0][2]))
        rules = [
            (f, _without_set_ids(a))
            for k, f, a in sent
            if k == NEWRULE and _named(a, 2) == chain.name
        ]
        assert len(rules) == len(chain.rules) > 0
        mine_rules = [(f, _tree(body)) for _, f, body in found[2:]]
        assert [(f & ~1, a) for f, a in rules] == mine_rules, chain.name


@pytest.mark.parametrize("family", ["ip", "ip6"])
def test_interval_elements_are_what_nft_sends(family: str) -> None:
    c = CONFIGS[family]
    sent = _nft(family)
    by_set = {s.name: s for s in sets(c)}
    for name in ("pod_cidrs", "nodeport_addrs"):
        elements = [e for e in config_elements(c) if e.set == name]
        found = interval_elements("kpng", by_set[name], elements)
        assert found is not None
        theirs = [a for k, _, a in sent if k == NEWSETELEM and _named(a, 2) == name][-1]
        mine = _tree(found[2])
        assert [(k, v) for k, v in theirs if k != 4] == mine


def test_interval_elements_nft_would_merge_or_that_are_not_addresses_are_refused() -> None:
    s = Set("pod_cidrs", "ipv4_addr", flags=("interval",))
    two = [Element("pod_cidrs", ("10.0.0.0/8",)), Element("pod_cidrs", ("10.1.0.0/16",))]
    assert interval_elements("kpng", s, two) is None  # overlapping
    adjacent = [Element("pod_cidrs", ("10.0.0.0/24",)), Element("pod_cidrs", ("10.0.1.0/24",))]
    assert interval_elements("kpng", s, adjacent) is None
    concat = Set("fw", "ipv4_addr . inet_service", flags=("interval",))
    assert interval_elements("kpng", concat, [Element("fw", ("10.0.0.1", "80"))]) is None
    everything = interval_elements("kpng", s, [Element("pod_cidrs", ("0.0.0.0/0",))])
    assert everything is not None and struct.pack(">I", 1) not in everything[2]  # no end


def test_sets_and_rules_of_other_shapes_are_left_to_nft() -> None:
    assert (
        set_message("kpng", Set("aff", "ipv4_addr", "ipv4_addr", ("dynamic", "timeout"), 60), 1)
        is None
    )
    ctx = Context("ip")
    assert compile_rule("meta l4proto { tcp, udp } dnat ip to ip saddr map @aff", ctx) is None
    assert compile_rule("update @aff { ip saddr : ip daddr . th dport }", ctx) is None
    assert compile_rule("ct mark set 0x0 log", ctx) is None
    assert chain_messages("kpng", Chain("aff_1", ("ip saddr @x counter",)), ctx) is None


def _steps(v: View[ViewEndpoint]) -> Steps:
    c = CONFIGS["ip"]
    tx = Planner(c).plan_full(v, None)
    defined = {s.name: s for s in sets(c)}
    return split(tx, {n: layout(s) for n, s in defined.items()}, defined)


def test_a_new_table_is_one_batch_without_nft_unless_a_chain_needs_it() -> None:
    steps = _steps(view((svc("web"), [ep("10.244.1.2"), ep("10.244.1.3")])))
    assert not steps.before.ops and not steps.after.ops
    assert [label for _, label in steps.head][:2] == ["add table kpng", "add set service_ips"]
    assert {ch.name for ch in steps.chains} >= {"nat_prerouting", "dispatch", "pick_2_1"}
    assert sorted(label for _, label in steps.tail) == [
        "add elements to set nodeport_addrs",
        "add elements to set pod_cidrs",
    ]
    # an affinity chain (an anonymous set, a dynamic map) is nft's, and so is the structure
    # it refers to; the pick chains no nft chain jumps to stay in the batch
    steps = _steps(view((svc("web", affinity_timeout=60), [ep("10.244.1.2")])))
    names = [getattr(op.obj, "name", "") for op in steps.before.ops]
    assert "kpng" in names and "aff_1" in names and "dispatch" in names and "pick_1_1" in names
    assert steps.head == [] and steps.tail == []


def test_deletes_of_chains_and_sets_are_what_nft_sends_and_go_last_in_the_batch() -> None:
    # ``delete chain ip k c`` and ``delete set ip k s``: the attributes nft 1.0.6 sent (strace)
    chain = delete_message("k", Chain("c"))
    assert chain == (5, 0, bytes.fromhex("060001006b0000000600030063000000"))
    assert delete_message("k", Set("s", "ipv4_addr")) == (
        11,
        0,
        bytes.fromhex("060001006b0000000600020073000000"),
    )
    c = CONFIGS["ip"]
    defined = {s.name: s for s in sets(c)}
    layouts = {n: layout(s) for n, s in defined.items()}
    tx = Transaction(c.nft_table)
    tx.delete(Element("pick_static", ("50331652",), ("goto pick_3_4",)))
    tx.delete(Chain("pick_3_4"))
    steps = split(tx, layouts, defined)
    assert not steps.before.ops and not steps.after.ops
    assert [label for _, label in steps.final] == ["delete chain pick_3_4"]
    b = build(c.nft_table, steps.runs, 1, steps.chains, steps.context, final=steps.final)
    kinds = [struct.unpack_from("=H", m, 4)[0] & 0xFF for m in messages(b"".join(b.parts))]
    assert kinds == [0x10, 14, 5, 0x11]  # begin, the element deleted, then the chain, end


@pytest.mark.parametrize("family", ["ip", "ip6"])
def test_interval_sets_read_back_as_nft_lists_them(family: str) -> None:
    """The element messages nft sent (the set's creation with its end at 0, then the adds)
    hold the elements a dump gives: read back, they are the elements kpng renders."""
    c = CONFIGS[family]
    raw = [bytes.fromhex(line) for line in (DATA / f"skeleton-{family}.hex").read_text().split()]
    for name in ("pod_cidrs", "nodeport_addrs"):
        want = [e for e in config_elements(c) if e.set == name]
        sent = [m for m in raw if m[4] == NEWSETELEM and f"{name}\0".encode() in m[:64]]
        assert len(sent) == 2  # at the set's creation (with nft's end at 0), then the add
        for m in sent:
            edges = boundaries(m, 20, len(m))
            assert read_intervals(name, 32 if family == "ip" else 128, edges) == want


def test_intervals_pair_boundaries_in_any_order() -> None:
    def edges(*pairs: tuple[str, bool]) -> list[tuple[int, bool]]:
        return [(int(ipaddress.ip_address(a)), end) for a, end in pairs]

    found = edges(
        ("10.0.1.0", True),
        ("10.0.0.0", False),
        ("10.0.1.0", False),  # adjacent: the next one starts where the first ends
        ("10.0.3.0", True),
        ("0.0.0.0", True),  # nft's end at 0
        ("192.168.0.10", False),
        ("192.168.0.11", True),
        ("255.255.255.0", False),  # to the last address: no end
    )
    tokens = [e.key[0] for e in read_intervals("s", 32, found)]
    assert tokens == ["10.0.0.0/24", "10.0.1.0-10.0.2.255", "192.168.0.10", "255.255.255.0/24"]
