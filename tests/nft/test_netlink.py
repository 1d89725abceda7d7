"""The netlink element encoder, batches and answers, byte for byte (no root needed)."""

from __future__ import annotations

import struct

import pytest

from kpng.dataplane.nft.kernel.nlnft import split
from kpng.dataplane.nft.kernel.nlsocket import _error
from kpng.dataplane.nft.netlink.batch import (
    NFNL_MSG_BATCH_BEGIN,
    NFNL_MSG_BATCH_END,
    NLM_F_ACK_TLVS,
    NLM_F_CAPPED,
    NLMSG_DONE,
    NLMSG_ERROR,
    Answer,
    answers,
    build,
    dump_elements,
)
from kpng.dataplane.nft.netlink.bulk import pack_all, unpack_all
from kpng.dataplane.nft.netlink.codec import Layout, decode_element, layout, nla
from kpng.dataplane.nft.netlink.read import (
    NFT_DATA_VERDICT,
    NFT_SET_EVAL,
    NFT_SET_MAP,
    NFT_SET_TIMEOUT,
    NFTA_SET_DATA_TYPE,
    NFTA_SET_FLAGS,
    NFTA_SET_KEY_TYPE,
    NFTA_SET_NAME,
    NFTA_SET_TABLE,
    NFTA_SET_TIMEOUT,
    DumpError,
    messages,
    set_definition,
    type_name,
)
from kpng.dataplane.nft.objects import Chain, Element, NftError, Set, Table
from kpng.dataplane.nft.packed import packer
from kpng.dataplane.nft.skeleton import sets
from kpng.dataplane.nft.transaction import Transaction
from tests.nft.helpers import CONFIG

TABLE = Table("ip", "kpng")
LAYOUTS = {s.name: layout(s) for s in sets(CONFIG)}


def lay(name: str) -> Layout:
    found = LAYOUTS[name]
    assert found is not None
    return found


def roundtrip(e: Element) -> Element:
    raw = lay(e.set).encode(e)
    assert struct.unpack_from("=HH", raw) == (len(raw), 0x8001)  # nested NFTA_LIST_ELEM
    return decode_element(lay(e.set), raw, 4, len(raw))


def test_endpoint_key_is_two_host_order_registers_and_data_addr_and_padded_port() -> None:
    e = Element("endpoints_0", ("7", "2"), ("10.0.0.1", "8080"))
    raw = lay("endpoints_0").encode(e)
    key = struct.pack("=HHHH", 16, 0x8001, 12, 1) + struct.pack("=II", 7, 2)
    data = struct.pack("=HHHH", 16, 0x8002, 12, 1) + bytes([10, 0, 0, 1, 0x1F, 0x90, 0, 0])
    assert raw == struct.pack("=HH", 4 + len(key) + len(data), 0x8001) + key + data
    assert roundtrip(e) == e


def test_service_key_concatenates_addr_proto_and_port_in_4_byte_registers() -> None:
    e = Element("service_ips", ("10.96.0.10", "udp", "53"), ("536870913",))
    raw = lay("service_ips").encode(e)
    assert raw[12:24] == bytes([10, 96, 0, 10, 17, 0, 0, 0, 0, 53, 0, 0])
    assert raw[-4:] == struct.pack("=I", 536870913)  # mark: host order
    assert roundtrip(e) == e


def test_verdict_is_nested_code_and_chain_and_comment_is_a_udata_tlv() -> None:
    e = Element("pick", ("3",), ("goto pick_2",), "default/web|http|TCP|i")
    raw = lay("pick").encode(e)
    verdict = struct.pack(">i", -4)  # NFT_GOTO
    assert verdict + b"\x0b\x00\x02\x00pick_2\x00" in raw
    comment = b"default/web|http|TCP|i\x00"
    assert bytes((0, len(comment))) + comment in raw
    assert roundtrip(e) == e
    for v in ("return", "drop", "jump affupd_4"):
        assert roundtrip(Element("pick", ("3",), (v,))) == Element("pick", ("3",), (v,))


def test_sets_without_data_and_deletes_carry_only_the_key() -> None:
    e = Element("hairpin", ("10.244.1.2", "10.244.1.2"))
    assert roundtrip(e) == e
    d = lay("pick").encode(Element("pick", ("3",), ("goto pick_2",), "x"), full=False)
    assert len(d) == 4 + 12 and d[-4:] == struct.pack("=I", 3)


def test_interval_and_dynamic_sets_are_left_to_nft() -> None:
    assert LAYOUTS["pod_cidrs"] is None and LAYOUTS["firewall_allow"] is None
    aff = Set("affmap_1_x", "ipv4_addr", "ipv4_addr . inet_service", ("dynamic",), 9)
    assert layout(aff) is None


def test_elements_that_do_not_fit_are_refused_by_name() -> None:
    with pytest.raises(NftError, match="does not fit"):
        lay("endpoints_0").encode(Element("endpoints_0", ("1",), ("10.0.0.1", "80")))
    with pytest.raises(NftError, match="does not fit pick"):
        lay("pick").encode(Element("pick", ("1",)))
    with pytest.raises(NftError, match="bad verdict"):
        lay("pick").encode(Element("pick", ("1",), ("goto",)))


def test_a_batch_is_begin_messages_end_with_acks_asked_and_big_runs_split() -> None:
    eps = [Element("endpoints_0", (str(i), "0"), ("10.0.0.1", "80")) for i in range(3000)]
    old = Element("pick", ("9",), ("return",))
    b = build(TABLE, [("delete", lay("pick"), [old]), ("add", lay("endpoints_0"), eps)], seq=100)
    data = b"".join(b.parts)
    kinds, at = [], 0
    while at < len(data):
        length, kind, flags, seq, _ = struct.unpack_from("=IHHII", data, at)
        kinds.append((kind, flags & 4, seq))
        at += length
    assert kinds[0] == (NFNL_MSG_BATCH_BEGIN, 0, 100)
    assert kinds[-1][0] == NFNL_MSG_BATCH_END
    assert kinds[1] == (10 << 8 | 14, 4, 101)  # DELSETELEM, with NLM_F_ACK
    assert all(k == 10 << 8 | 12 and ack for k, ack, _ in kinds[2:-1])  # NEWSETELEM
    assert len(kinds) > 4  # 3000 elements do not fit one 64 KiB attribute
    assert b.elements == 3001 and sorted(b.messages) == list(range(101, 101 + len(kinds) - 2))


def error_answer(seq: int, errno: int, offset: int) -> bytes:
    tlvs = struct.pack("=HHI", 8, 2, offset) + struct.pack("=HH", 8, 1) + b"dup\x00"
    inner = struct.pack("=IHHII", 999, 10 << 8 | 12, 5, seq, 0)
    body = struct.pack("=i", -errno) + inner + tlvs
    flags = NLM_F_CAPPED | NLM_F_ACK_TLVS
    return struct.pack("=IHHII", 16 + len(body), NLMSG_ERROR, flags, seq, 0) + body


def test_a_kernel_error_names_the_element_it_points_at() -> None:
    eps = [Element("endpoints_0", (str(i), "0"), ("10.0.0.1", "80")) for i in range(1, 4)]
    b = build(TABLE, [("add", lay("endpoints_0"), eps)], seq=1)
    m = b.messages[2]
    ack = struct.pack("=IHHII", 36, NLMSG_ERROR, NLM_F_CAPPED, 3, 0) + bytes(20)
    got = list(answers(error_answer(2, 17, m.offsets[1] + 8) + ack))
    assert got[0] == Answer(2, 17, "dup", m.offsets[1] + 8) and got[1].error == 0
    err = _error(b, got[0], 1)
    assert "add element 2 . 0 : 10.0.0.1 . 80 in set endpoints" in str(err)
    assert "File exists" in str(err) and "nothing applied" in str(err)


def test_a_kernel_error_names_the_packed_element_it_points_at() -> None:
    """Packed elements of one size: their offsets are a range, each pointing at one."""
    pk = packer(CONFIG)
    eps = [Element("endpoints_0", (str(i), "0"), ("10.0.0.1", "80")) for i in range(1, 3000)]
    packed = [pk.pack(e) for e in eps]
    assert len(set(map(len, packed))) == 1
    b = build(TABLE, [("add", lay("endpoints_0"), packed)], seq=1)  # type: ignore[list-item]
    assert len(b.messages) > 1  # 3000 elements do not fit one 64 KiB attribute
    sent = {struct.unpack_from("=I", p, 8)[0]: p for p in b.parts if len(p) > 16}
    size, first = len(packed[0]) - 1, 0
    for seq, m in sorted(b.messages.items()):
        at = len(sent[seq]) - len(m.elements) * size  # the elements end the message
        assert list(m.offsets) == [at + k * size for k in range(len(m.elements))]
        for k in (0, len(m.elements) // 2, len(m.elements) - 1):
            assert b.element_at(seq, m.offsets[k] + 8) == eps[first + k]
        first += len(m.elements)
    assert first == len(eps)


def test_a_dump_decodes_every_element_until_done() -> None:
    eps = [Element("endpoints_0", (str(i), "0"), ("10.0.0.1", "80")) for i in range(1, 4)]
    b = build(TABLE, [("add", lay("endpoints_0"), eps)], seq=1)
    msg = b.parts[2]
    out: list[Element] = []
    assert not dump_elements(lay("endpoints_0"), msg, out)
    assert dump_elements(lay("endpoints_0"), struct.pack("=IHHII", 20, 3, 2, 1, 0) + bytes(4), out)
    assert out == eps


def test_split_puts_elements_in_one_batch_between_creates_and_deletes() -> None:
    tx = Transaction(TABLE)
    tx.delete(Element("pick", ("1",), ("goto pick_40",)))
    tx.add(Chain("pick_41", ("drop",)))
    tx.add(Element("pod_cidrs", ("10.0.0.0/8",)))
    tx.delete(Chain("pick_40"))
    tx.add(Element("pick", ("1",), ("goto pick_41",)))
    steps = split(tx, dict(LAYOUTS))
    assert [(op.verb, type(op.obj).__name__) for op in steps.before] == [
        ("add", "Chain"),
        ("add", "Element"),
    ]
    assert [(verb, lay.name, len(es)) for verb, lay, es in steps.runs] == [
        ("delete", "pick", 1),
        ("add", "pick", 1),
    ]
    assert [op.verb for op in steps.after] == ["delete"]


def test_set_definitions_decode_concatenated_types_flags_and_timeouts() -> None:
    assert type_name(((7 << 6) | 12) << 6 | 13) == "ipv4_addr . inet_proto . inet_service"
    assert type_name(19 << 6 | 4) == "mark . integer"
    attrs_ = (
        nla(NFTA_SET_TABLE, b"kpng\0")
        + nla(NFTA_SET_NAME, b"aff\0")
        + nla(NFTA_SET_FLAGS, struct.pack(">I", NFT_SET_MAP | NFT_SET_TIMEOUT | NFT_SET_EVAL))
        + nla(NFTA_SET_KEY_TYPE, struct.pack(">I", 7))
        + nla(NFTA_SET_DATA_TYPE, struct.pack(">I", 7 << 6 | 13))
        + nla(NFTA_SET_TIMEOUT, struct.pack(">Q", 60_000))
    )
    s = set_definition(TABLE, attrs_, 0, len(attrs_))
    assert s == Set("aff", "ipv4_addr", "ipv4_addr . inet_service", ("dynamic", "timeout"), 60)
    assert set_definition(Table("ip", "other"), attrs_, 0, len(attrs_)) is None
    verdicts = attrs_[: len(attrs_) - 12 - 8] + nla(
        NFTA_SET_DATA_TYPE, struct.pack(">I", NFT_DATA_VERDICT)
    )
    v = set_definition(TABLE, verdicts, 0, len(verdicts))
    assert v is not None and v.data == "verdict"


def test_dump_messages_end_at_done_and_raise_on_errors() -> None:
    msg = struct.pack("=IHHII", 28, 10 << 8 | 3, 2, 1, 0) + bytes(4) + nla(3, b"c\0")
    done = struct.pack("=IHHII", 20, 3, 2, 1, 0) + bytes(4)
    assert [k for k, _, _ in messages(msg + done)] == [10 << 8 | 3, NLMSG_DONE]
    err = struct.pack("=IHHIIi", 36, NLMSG_ERROR, 0, 1, 0, -2) + bytes(16)
    with pytest.raises(DumpError) as e:
        list(messages(err))
    assert e.value.errno == 2


def _nest(raws: list[bytes], nested: bool = False) -> bytes:
    """Elements as a dump lists them: NFTA_LIST_ELEM without NLA_F_NESTED."""
    return b"".join(r if nested else r[:2] + struct.pack("=H", 1) + r[4:] for r in raws)


def _endpoints(name: str) -> list[Element]:
    """300 elements of the endpoints map ``name``."""
    return [
        Element(name, (str(i), str(i % 7)), (f"10.1.{i // 256}.{i % 256}", "8080"))
        for i in range(300)
    ]


CLUSTER_IPS = [Element("cluster_ips", (f"10.96.0.{i}",)) for i in range(1, 9)]


def test_whole_messages_of_plain_elements_decode_as_one_by_one() -> None:
    cases = {
        "endpoints_3": _endpoints("endpoints_3"),
        "service_ips": [Element("service_ips", ("10.96.0.1", "udp", "53"), ("536870913",))],
        "cluster_ips": CLUSTER_IPS,
        "hairpin": [Element("hairpin", ("10.244.1.2", "10.244.1.2"))],
    }
    for name, elements in cases.items():
        for nested in (False, True):
            buf = _nest([lay(name).encode(e) for e in elements], nested)
            assert unpack_all(lay(name), buf, 0, len(buf)) == elements
    assert unpack_all(lay("cluster_ips"), b"", 0, 0) == []


def test_elements_that_are_not_plain_are_left_to_the_attribute_walk() -> None:
    pick = _nest([lay("pick").encode(Element("pick", ("3",), ("goto pick_2_3",), "x"))])
    assert unpack_all(lay("pick"), pick, 0, len(pick)) is None
    svc = lay("service_ips")
    odd = _nest([svc.encode(Element("service_ips", ("10.96.0.1", "tcp", "80"), ("1",)))])
    odd = odd[:4] + b"\x99" + odd[5:]  # not a key nest: another layout
    assert unpack_all(svc, odd, 0, len(odd)) is None
    short = _nest([lay("cluster_ips").encode(Element("cluster_ips", ("10.96.0.1",)))]) + bytes(4)
    assert unpack_all(lay("cluster_ips"), short, 0, len(short)) is None


def test_runs_of_plain_elements_encode_as_one_by_one() -> None:
    cases = {
        "endpoints_5": _endpoints("endpoints_5"),
        "service_ips": [Element("service_ips", ("10.96.0.1", "sctp", "53"), ("536870913",))],
        "service_nodeports": [Element("service_nodeports", ("udp", "30053"), ("7",))],
        "cluster_ips": CLUSTER_IPS,
    }
    for name, elements in cases.items():
        for full in (True, False):
            assert pack_all(lay(name), elements, full) == [
                lay(name).encode(e, full) for e in elements
            ]


def test_runs_that_are_not_plain_are_encoded_one_by_one() -> None:
    ok = Element("cluster_ips", ("10.96.0.1",))
    assert pack_all(lay("cluster_ips"), [ok, ok._replace(comment="x")], True) is None
    assert pack_all(lay("cluster_ips"), [ok, ok._replace(key=("nope",))], True) is None
    assert pack_all(lay("cluster_ips"), [ok, ok._replace(value=("1",))], True) is None
    ep = Element("endpoints_0", ("1", "0"), ("10.0.0.1", "80"))
    assert pack_all(lay("endpoints_0"), [ep, ep._replace(value=None)], True) is None
    assert pack_all(lay("endpoints_0"), [ep, ep._replace(key=("1",))], True) is None
    assert pack_all(lay("pick"), [Element("pick", ("1",), ("return",))], True) is None
    assert pack_all(lay("cluster_ips"), [], True) is None
