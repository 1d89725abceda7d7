"""nfnetlink batches of set-element messages, and the kernel's answers to them. Pure.

A batch is ``NFNL_MSG_BATCH_BEGIN``, ``NFT_MSG_DELSETELEM``/``NFT_MSG_NEWSETELEM`` messages
(each for one set, with as many elements as fit a 64 KiB nested attribute, each asking for an
ack) and ``NFNL_MSG_BATCH_END``: the kernel applies it all or nothing. Every message's element
offsets are kept, so an error that points at an attribute (extended acks) names the element.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import accumulate

from kpng.dataplane.nft.netlink.bulk import pack_all, unpack_all
from kpng.dataplane.nft.netlink.codec import (
    NLA_F_NESTED,
    Layout,
    attrs,
    decode_element,
    nla,
)
from kpng.dataplane.nft.netlink.exprs import Context
from kpng.dataplane.nft.netlink.rules import chain_messages
from kpng.dataplane.nft.objects import Chain, Element, NftError, Table
from kpng.dataplane.nft.packed import sent_forms

NFNL_SUBSYS_NFTABLES = 10
NFNL_MSG_BATCH_BEGIN, NFNL_MSG_BATCH_END = 0x10, 0x11
NFT_MSG_NEWSETELEM, NFT_MSG_GETSETELEM, NFT_MSG_DELSETELEM = 12, 13, 14
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP = 1, 2, 4, 0x400, 0x300
NLM_F_CAPPED, NLM_F_ACK_TLVS = 0x100, 0x200
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLMSGERR_ATTR_MSG, NLMSGERR_ATTR_OFFS = 1, 2
NFTA_SET_ELEM_LIST_TABLE, NFTA_SET_ELEM_LIST_SET, NFTA_SET_ELEM_LIST_ELEMENTS = 1, 2, 3
FAMILIES = {"ip": 2, "ip6": 10}
MAX_ELEMENTS_BYTES = 60_000  # a nested attribute's length is 16 bits
HEADER = struct.Struct("=IHHII")


class DumpError(NftError):
    """The kernel refused a dump (``errno`` 2: no such table)."""

    def __init__(self, errno: int) -> None:
        super().__init__(f"netlink dump: {os.strerror(errno)}")
        self.errno = errno


def _nfgen(family: int, res_id: int = 0) -> bytes:
    return struct.pack("=BB", family, 0) + struct.pack(">H", res_id)


@dataclass(slots=True)
class Message:
    seq: int
    verb: str
    set: str
    elements: list[Element] | list[bytes]  # objects, or packed (decoded if refused)
    offsets: Sequence[int]  # of each element's attribute, from the start of the message
    layout: Layout | None = None


@dataclass(slots=True)
class Batch:
    """The bytes to send (one ``sendmsg``), and what each message carried."""

    parts: list[bytes] = field(default_factory=list)
    messages: dict[int, Message] = field(default_factory=dict)
    elements: int = 0
    # chain and rule messages (no ack asked: only errors answer) by sequence number
    labels: dict[int, str] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return sum(len(p) for p in self.parts)

    def element_at(self, seq: int, offset: int) -> Element | None:
        m = self.messages.get(seq)
        if m is None:
            return None
        found: object = None
        for e, at in zip(m.elements, m.offsets, strict=True):
            if at > offset:
                break
            found = e
        if isinstance(found, bytes) and m.layout is not None:
            return decode_element(m.layout, found, 5, len(found))
        return found if isinstance(found, Element) else None


Run = tuple[str, Layout, list[Element] | list[bytes]]
"""("add" | "delete", the set's layout, elements as objects, or packed: a set index byte and
the ``NFTA_LIST_ELEM`` to send, see :mod:`kpng.dataplane.nft.packed`)."""


Labelled = tuple[tuple[int, int, bytes], str]
"""A message (nf_tables type, flags beyond ``NLM_F_REQUEST``, attributes) and what it does,
for an error (``add set service_ips``)."""


def build(
    table: Table,
    runs: Iterable[Run],
    seq: int = 1,
    chains: Sequence[Chain] = (),
    context: Context | None = None,
    head: Sequence[Labelled] = (),
    tail: Sequence[Labelled] = (),
    final: Sequence[Labelled] = (),
) -> Batch:
    """One batch: ``head`` (a table, its sets), the chains (all added first, then each
    flushed and given its rules, see :mod:`~kpng.dataplane.nft.netlink.rules`; ``context``
    for rules beyond the pick chains'), ``tail`` (interval elements), each run in order,
    split into messages of at most 64 KiB of elements, then ``final`` (chains and sets
    deleted, once no element refers to them)."""
    family = FAMILIES[table.family]
    b = Batch()
    b.parts.append(_header(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, seq, 16 + 4))
    b.parts.append(_nfgen(0, NFNL_SUBSYS_NFTABLES))
    seq += 1
    for message, label in head:
        seq = _add(b, family, message, label, seq)
    encoded = [(chain, _chain_messages(table, chain, context)) for chain in chains]
    for chain, found in encoded:
        seq = _add(b, family, found[0], f"add chain {chain.name}", seq)
    for chain, found in encoded:
        for i, message in enumerate(found[1:]):
            what = f"add rule {i} to chain" if i else "flush chain"
            seq = _add(b, family, message, f"{what} {chain.name}", seq)
    for message, label in tail:
        seq = _add(b, family, message, label, seq)
    head_attrs = nla(NFTA_SET_ELEM_LIST_TABLE, table.name.encode() + b"\0")
    for verb, lay, elements in runs:
        set_attrs = head_attrs + nla(NFTA_SET_ELEM_LIST_SET, lay.name.encode() + b"\0")
        for chunk in _chunks(lay, elements, verb == "add"):
            b.parts.append(_message(verb, family, seq, (lay, set_attrs), chunk, b))
            seq += 1
    for message, label in final:
        seq = _add(b, family, message, label, seq)
    b.parts.append(_header(NFNL_MSG_BATCH_END, NLM_F_REQUEST, seq, 16 + 4))
    b.parts.append(_nfgen(0, NFNL_SUBSYS_NFTABLES))
    return b


def _chain_messages(
    table: Table, chain: Chain, context: Context | None
) -> tuple[tuple[int, int, bytes], ...]:
    found = chain_messages(table.name, chain, context)
    if found is None:
        raise NftError(f"chain {chain.name} has rules netlink does not encode here")
    return found


def _add(b: Batch, family: int, message: tuple[int, int, bytes], label: str, seq: int) -> int:
    """One message without an ack (only an error answers it, named by ``label``)."""
    kind, flags, body = message
    payload = _nfgen(family) + body
    b.parts.append(
        _header(NFNL_SUBSYS_NFTABLES << 8 | kind, NLM_F_REQUEST | flags, seq, 16 + len(payload))
    )
    b.parts.append(payload)
    b.labels[seq] = label
    return seq + 1


def _header(kind: int, flags: int, seq: int, length: int) -> bytes:
    return HEADER.pack(length, kind, flags, seq, 0)


Chunk = tuple[list[Element] | list[bytes], bytes, list[int] | int]
"""Elements, encoded, their sizes (one int: each element's, when they are of one size)."""


def _packed_chunks(elements: list[bytes]) -> Iterator[Chunk]:
    """Packed elements are sent as they are, without their first byte."""
    sizes = set(map(len, elements))
    if len(sizes) == 1:
        size = sizes.pop()
        per = max(1, MAX_ELEMENTS_BYTES // (size - 1))
        for i in range(0, len(elements), per):
            part = elements[i : i + per]
            body = bytearray(b"".join(part))
            del body[::size]
            yield part, bytes(body), size - 1
        return
    run: list[bytes] = []
    raws: list[memoryview] = []
    total = 0
    for p in elements:
        if total + len(p) - 1 > MAX_ELEMENTS_BYTES and run:
            yield run, b"".join(raws), list(map(len, raws))
            run, raws, total = [], [], 0
        run.append(p)
        raws.append(memoryview(p)[1:])
        total += len(p) - 1
    if run:
        yield run, b"".join(raws), list(map(len, raws))


def _chunks(lay: Layout, elements: list[Element] | list[bytes], full: bool) -> Iterator[Chunk]:
    """Runs of at most 64 KiB of encoded elements."""
    if elements and isinstance(elements[0], bytes):
        yield from _packed_chunks(elements)
        return
    objs: list[Element] = elements  # type: ignore[assignment]
    raws = pack_all(lay, objs, full)
    if raws:
        per = max(1, MAX_ELEMENTS_BYTES // len(raws[0]))
        for i in range(0, len(raws), per):
            part = raws[i : i + per]
            yield objs[i : i + per], b"".join(part), list(map(len, part))
        return
    chunk: list[Element] = []
    encoded: list[bytes] = []
    size = 0
    for e in objs:
        raw = lay.encode(e, full)
        if size + len(raw) > MAX_ELEMENTS_BYTES and chunk:
            yield chunk, b"".join(encoded), list(map(len, encoded))
            chunk, encoded, size = [], [], 0
        chunk.append(e)
        encoded.append(raw)
        size += len(raw)
    if chunk:
        yield chunk, b"".join(encoded), list(map(len, encoded))


def _message(
    verb: str,
    family: int,
    seq: int,
    target: tuple[Layout, bytes],
    chunk: Chunk,
    b: Batch,
) -> bytes:
    lay, set_attrs = target
    elements, body, sizes = chunk
    kind = NFT_MSG_NEWSETELEM if verb == "add" else NFT_MSG_DELSETELEM
    flags = NLM_F_REQUEST | NLM_F_ACK | (NLM_F_CREATE if verb == "add" else 0)
    at = 16 + 4 + len(set_attrs) + 4
    offsets: Sequence[int]
    if isinstance(sizes, int):  # the offsets of elements of one size, without a list of them
        offsets = range(at, at + sizes * len(elements), sizes)
    else:
        offsets = list(accumulate(sizes[:-1], initial=at))
    elements_hdr = struct.pack("=HH", 4 + len(body), NLA_F_NESTED | NFTA_SET_ELEM_LIST_ELEMENTS)
    payload = _nfgen(family) + set_attrs + elements_hdr + body
    b.messages[seq] = Message(seq, verb, lay.name, elements, offsets, lay)
    b.elements += len(elements)
    return _header(NFNL_SUBSYS_NFTABLES << 8 | kind, flags, seq, 16 + len(payload)) + payload


@dataclass(frozen=True, slots=True)
class Answer:
    """One ``NLMSG_ERROR`` (``error`` 0 is an ack)."""

    seq: int
    error: int
    message: str = ""
    offset: int = -1


def answers(buf: bytes) -> Iterator[Answer]:
    """The acks and errors in a buffer received after a batch."""
    at = 0
    while at + 16 <= len(buf):
        length, kind, flags, seq, _ = HEADER.unpack_from(buf, at)
        if length < 16:
            return
        if kind == NLMSG_ERROR:
            yield _answer(buf, at, at + length, flags, seq)
        at += (length + 3) & ~3


def _answer(buf: bytes, start: int, end: int, flags: int, seq: int) -> Answer:
    (error,) = struct.unpack_from("=i", buf, start + 16)
    inner_len = HEADER.unpack_from(buf, start + 20)[0]
    tlv_at = start + 20 + (16 if flags & NLM_F_CAPPED else (inner_len + 3) & ~3)
    message, offset = "", -1
    if flags & NLM_F_ACK_TLVS:
        for kind, a, b in attrs(buf, tlv_at, end):
            if kind == NLMSGERR_ATTR_MSG:
                message = buf[a:b].rstrip(b"\0").decode(errors="replace")
            elif kind == NLMSGERR_ATTR_OFFS:
                offset = struct.unpack_from("=I", buf, a)[0]
    return Answer(seq, -error, message, offset)


def dump_request(table: Table, set_name: str, seq: int) -> bytes:
    payload = (
        _nfgen(FAMILIES[table.family])
        + nla(NFTA_SET_ELEM_LIST_TABLE, table.name.encode() + b"\0")
        + nla(NFTA_SET_ELEM_LIST_SET, set_name.encode() + b"\0")
    )
    kind = NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_GETSETELEM
    return _header(kind, NLM_F_REQUEST | NLM_F_DUMP, seq, 16 + len(payload)) + payload


def messages(buf: bytes) -> Iterator[tuple[int, int, int]]:
    """(netlink type, attributes start, end) of each message; (NLMSG_DONE, 0, 0) at the end.
    Raises on an error answer."""
    at = 0
    while at + 16 <= len(buf):
        length, kind, _, _, _ = HEADER.unpack_from(buf, at)
        if length < 16:
            raise NftError("truncated netlink message")
        if kind == NLMSG_DONE:
            yield NLMSG_DONE, 0, 0
            return
        if kind == NLMSG_ERROR:
            (error,) = struct.unpack_from("=i", buf, at + 16)
            if error:
                raise DumpError(-error)
        else:
            yield kind, at + 20, at + length  # after nlmsghdr and nfgenmsg
        at += (length + 3) & ~3


def _element_lists(buf: bytes) -> Iterator[tuple[int, int] | None]:
    """The element lists of a dump's messages, as (start, end) in ``buf``; None once the
    dump is done. Raises DumpError for a malformed message."""
    for kind, a, b in messages(buf):
        if kind == NLMSG_DONE:
            yield None
            return
        for k, x, y in attrs(buf, a, b):
            if k == NFTA_SET_ELEM_LIST_ELEMENTS:
                yield x, y


def dump_raw(lay: Layout, buf: bytes, out: list[bytes]) -> bool:
    """Elements of a dump's messages into ``out``, as sent (see :func:`sent_forms`), not
    decoded; True once the dump is done."""
    try:
        for span in _element_lists(buf):
            if span is None:
                return True
            out.extend(sent_forms(lay, buf, *span))
    except DumpError as exc:
        raise NftError(f"dump of set {lay.name}: {exc}") from None
    return False


def dump_elements(lay: Layout, buf: bytes, out: list[Element]) -> bool:
    """Elements of a dump's messages into ``out``; True once the dump is done."""
    try:
        for span in _element_lists(buf):
            if span is None:
                return True
            x, y = span
            bulk = unpack_all(lay, buf, x, y)
            if bulk is None:
                bulk = [decode_element(lay, buf, p, q) for _, p, q in attrs(buf, x, y)]
            out.extend(bulk)
    except DumpError as exc:
        raise NftError(f"dump of set {lay.name}: {exc}") from None
    return False
