"""The pick chains over netlink: the rule bytes nft writes, and where split() sends chains."""

from __future__ import annotations

import struct

import pytest

from kpng.dataplane.nft.kernel.nlnft import split
from kpng.dataplane.nft.kernel.nlsocket import _error
from kpng.dataplane.nft.netlink.batch import HEADER, NFNL_SUBSYS_NFTABLES, Answer, build
from kpng.dataplane.nft.netlink.codec import attrs, layout
from kpng.dataplane.nft.netlink.rules import (
    NFT_MSG_DELRULE,
    NFT_MSG_NEWCHAIN,
    NFT_MSG_NEWRULE,
    chain_messages,
    encodable,
    rule_expressions,
)
from kpng.dataplane.nft.objects import Chain, Element, Hook, NftError, Table
from kpng.dataplane.nft.skeleton import Config, chains, pick_chain, sets
from kpng.dataplane.nft.transaction import Transaction
from tests.nft.helpers import CONFIG

RULE = "meta l4proto tcp dnat {f} to ct mark & 0xffffff . numgen random mod 3 map @endpoints_4"

# NFT_MSG_NEWRULE attributes nft 1.0.6 sent for RULE in table kpng, chain pick_3_4
# (``nft --debug=mnl add rule ...``): table, chain, expressions
NFT_WROTE = {
    "ip": "090001006b706e67000000000d0002007069636b5f335f34000000006001048024000180090001006d65"
    "74610000000014000280080002000000001008000100000000012c00018008000100636d70002000028008"
    "0001000000000108000200000000000c000380050001000600000020000180070001006374000014000280"
    "080002000000000308000100000000014c0001800c00010062697477697365003c00028008000100000000"
    "010800020000000001080006000000000008000300000000040c00048008000100ffffff000c0005800800"
    "010000000000340001800b0001006e756d67656e00002400028008000100000000090800020000000003080"
    "003000000000108000400000000003c0001800b0001006c6f6f6b757000002c00028008000200000000010"
    "80003000000000110000100656e64706f696e74735f34000800040000000029300001800800010"
    "06e617400240002800800010000000001080002000000000208000300000000010800050000000009",
    "ip6": "090001006b706e67000000000d0002007069636b5f335f34000000006001048024000180090001006d6"
    "574610000000014000280080002000000001008000100000000012c00018008000100636d70002000028008"
    "0001000000000108000200000000000c000380050001000600000020000180070001006374000014000280"
    "080002000000000308000100000000014c0001800c00010062697477697365003c00028008000100000000"
    "010800020000000001080006000000000008000300000000040c00048008000100ffffff000c0005800800"
    "010000000000340001800b0001006e756d67656e00002400028008000100000000090800020000000003080"
    "003000000000108000400000000003c0001800b0001006c6f6f6b757000002c00028008000200000000010"
    "80003000000000110000100656e64706f696e74735f340008000400000000"
    "0a30000180080001006e617400240002800800010000000001080002000000000a0800030000000001"
    "0800050000000002",
}
NFTA_LOOKUP_SET_ID = 4


def tree(buf: bytes, start: int = 0, end: int | None = None, depth: int = 0) -> list[object]:
    """Attributes as (type, children or payload), nested attributes walked."""
    out: list[object] = []
    for kind, a, b in attrs(buf, start, len(buf) if end is None else end):
        nested = struct.unpack_from("=H", buf, a - 2)[0] & 0x8000
        out.append((kind, tree(buf, a, b, depth + 1) if nested else buf[a:b]))
    return out


def without_set_id(t: list[object]) -> list[object]:
    """nft also names the lookup's set by its id in nft's own batch; kpng's sets exist."""
    out: list[object] = []
    for kind, body in t:  # type: ignore[misc]
        if isinstance(body, list):
            if any(k == 1 and v == b"lookup\0" for k, v in body):
                data = [
                    (k, [x for x in v if x[0] != NFTA_LOOKUP_SET_ID]) for k, v in body if k == 2
                ]
                body = [x for x in body if x[0] != 2] + data
            else:
                body = without_set_id(body)
        out.append((kind, body))
    return out


def messages(data: bytes) -> list[tuple[int, int, bytes]]:
    out = []
    at = 0
    while at < len(data):
        length, kind, flags, _, _ = HEADER.unpack_from(data, at)
        out.append((kind, flags, data[at + 20 : at + length]))
        at += length
    return out


@pytest.mark.parametrize("family", ["ip", "ip6"])
def test_a_pick_rule_is_the_expressions_nft_writes(family: str) -> None:
    found = chain_messages("kpng", Chain("pick_3_4", (RULE.format(f=family),)))
    assert found is not None
    [_, _, (kind, flags, body)] = found
    assert (kind, flags) == (NFT_MSG_NEWRULE, 0x400 | 0x800)  # create, append
    assert tree(body) == without_set_id(tree(bytes.fromhex(NFT_WROTE[family])))


def test_the_protocol_modulus_mask_and_map_are_the_rules_own() -> None:
    a = rule_expressions(RULE.format(f="ip"))
    b = rule_expressions(
        "meta l4proto sctp dnat ip to ct mark & 0xff . numgen random mod 40 map @endpoints_11"
    )
    assert a is not None and b is not None
    assert b"endpoints_11\0" in b and b"endpoints_4\0" in a
    assert struct.pack(">I", 40) in b and bytes((132,)) in b and struct.pack("=I", 0xFF) in b


def test_every_pick_chain_is_encoded_and_no_skeleton_chain_holds_one() -> None:
    for family in (4, 6):
        c = Config(family=family, pod_cidrs=("10.244.0.0/16",) if family == 4 else ())
        assert not any(ch.name.startswith("pick_") for ch in chains(c))
        assert all(encodable(pick_chain(c, n, i)) for n in (1, 15, 16, 33, 400) for i in (0, 15))
    assert encodable(pick_chain(CONFIG, 40, 3))
    assert not encodable(Chain("aff_1", ("ip saddr @x goto pick_2_1",)))
    assert not encodable(Chain("x", (RULE.format(f="ip"),), Hook("nat", "output", 0)))
    assert chain_messages("kpng", Chain("x", ("drop",))) is None


def test_a_chain_is_added_flushed_and_given_its_rules_before_the_elements() -> None:
    pick = pick_chain(CONFIG, 3, 4)
    lay = layout(next(s for s in sets(CONFIG) if s.name == "pick"))
    assert lay is not None
    el = Element("pick", ("7",), ("goto pick_3_4",))
    b = build(Table("ip", "kpng"), [("add", lay, [el])], 10, [pick])
    kinds = [(k & 0xFF, k >> 8, f) for k, f, _ in messages(b"".join(b.parts))]
    assert kinds[1:6] == [
        (NFT_MSG_NEWCHAIN, NFNL_SUBSYS_NFTABLES, 1 | 0x400),
        (NFT_MSG_DELRULE, NFNL_SUBSYS_NFTABLES, 1),  # flush: table and chain, no handle
        *[(NFT_MSG_NEWRULE, NFNL_SUBSYS_NFTABLES, 1 | 0x400 | 0x800)] * 3,
    ]
    assert kinds[6][0] == 12  # then the elements (NFT_MSG_NEWSETELEM)
    assert list(b.messages) == [16]  # only element messages ask for acks
    assert b.labels[11] == "add chain pick_3_4" and b.labels[13] == "add rule 1 to chain pick_3_4"
    err = _error(b, Answer(13, 2), 1)
    assert "kernel refused add rule 1 to chain pick_3_4: No such file" in str(err)


def test_a_chain_that_cannot_be_encoded_is_refused_by_name() -> None:
    with pytest.raises(NftError, match="chain odd has rules"):
        build(Table("ip", "kpng"), [], 1, [Chain("odd", ("drop",))])


def test_split_sends_pick_chains_in_the_batch_unless_an_nft_chain_jumps_to_them() -> None:
    tx = Transaction(Table("ip", "kpng"))
    tx.add(pick_chain(CONFIG, 3, 4))
    tx.add(pick_chain(CONFIG, 40, 2))
    tx.add(Chain("aff_7", ("ip saddr @aff_7_map goto pick_40_2",)))
    tx.add(Chain("dispatch", ("jump local_ext",)))
    steps = split(tx, {})
    assert [c.name for c in steps.chains] == ["pick_3_4"]
    assert [op.obj.name for op in steps.before.ops] == ["aff_7", "dispatch", "pick_40_2"]
    assert "pick_40_2" in steps.before.script() and "pick_3_4" not in steps.before.script()
