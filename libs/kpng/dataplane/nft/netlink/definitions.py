"""Tables, sets, base chains and interval elements as nf_tables messages, as nft 1.0.6 writes
them. Pure.

What a new table needs besides its rules (:mod:`~kpng.dataplane.nft.netlink.exprs`) and its
plain elements (:mod:`~kpng.dataplane.nft.netlink.codec`): ``NFT_MSG_NEWTABLE``,
``NFT_MSG_NEWSET`` with nft's user data (the key's and data's byte order, the ``typeof``
expressions or the concatenation, so that ``nft list`` shows the set as it was written),
``NFT_MSG_NEWCHAIN`` with its hook, and the elements of single-field interval sets (a start,
and an end flagged ``NFT_SET_ELEM_INTERVAL_END``). Byte for byte what nft sends
(``tests/nft/test_netlink_skeleton.py``). A set or element of another kind is refused (None)
and goes through ``nft``: dynamic sets (affinity), intervals with a concatenated key.

Message = (nf_tables message type, netlink flags beyond ``NLM_F_REQUEST``, attributes).
"""

from __future__ import annotations

import ipaddress
import struct
from functools import lru_cache

from kpng.dataplane.nft.netlink.codec import FIELD_TYPES, name_attr, nest, nla, u32_attr
from kpng.dataplane.nft.objects import Chain, Element, Hook, Set

NFT_MSG_NEWTABLE, NFT_MSG_NEWCHAIN, NFT_MSG_NEWSET, NFT_MSG_NEWSETELEM = 0, 3, 9, 12
NFT_MSG_DELCHAIN, NFT_MSG_DELSET = 5, 11
NLM_F_CREATE = 0x400
NFT_SET_INTERVAL, NFT_SET_MAP, NFT_SET_CONCAT = 0x4, 0x8, 0x80
NFT_SET_ELEM_INTERVAL_END = 1
NFT_DATA_VERDICT = 0xFFFFFF00
HOOKS = {"prerouting": 0, "input": 1, "forward": 2, "output": 3, "postrouting": 4}
# nft's datatype ids and sizes (src/datatype.h); byte order 1 host, 2 network
TYPES = {
    "integer": (4, 4, 1),
    "ipv4_addr": (7, 4, 2),
    "ipv6_addr": (8, 16, 2),
    "inet_proto": (12, 1, 1),
    "inet_service": (13, 2, 2),
    "mark": (19, 4, 1),
}
# user data TLVs (libnftnl's NFTNL_UDATA_SET_*) and nft's expression types in them
UD_KEYBYTEORDER, UD_DATABYTEORDER, UD_KEY_TYPEOF, UD_DATA_TYPEOF, UD_DATA_INTERVAL = 0, 1, 3, 4, 6
EXPR_PAYLOAD, EXPR_META, EXPR_CONCAT, EXPR_NUMGEN = 7, 9, 13, 23
# typeof expressions: their user data (nft's per-expression TLVs) and their datatype
TYPEOF = {
    "meta mark": (EXPR_META, ((0, 3),), "mark"),
    "numgen random mod 1": (EXPR_NUMGEN, ((0, 1), (1, 1), (2, 0)), "integer"),
    "ip daddr": (EXPR_PAYLOAD, ((0, 12), (1, 12)), "ipv4_addr"),
    "ip6 daddr": (EXPR_PAYLOAD, ((0, 13), (1, 9)), "ipv6_addr"),
    "tcp dport": (EXPR_PAYLOAD, ((0, 8), (1, 2)), "inet_service"),
}

Message = tuple[int, int, bytes]


def _tlv(kind: int, value: bytes) -> bytes:
    return bytes((kind, len(value))) + value


def _ud32(kind: int, value: int) -> bytes:
    return _tlv(kind, struct.pack("=I", value))


def table_message(name: str) -> Message:
    """``add table``: nft asks for no ``NLM_F_CREATE`` (an existing table is kept)."""
    return (NFT_MSG_NEWTABLE, 0, name_attr(1, name) + u32_attr(2, 0))


def chain_head(table: str, chain: Chain) -> Message:
    """``add chain``, with its type and hook for a base chain."""
    body = name_attr(1, table) + name_attr(3, chain.name)
    if chain.hook is not None:
        body += name_attr(7, chain.hook.type) + _hook(chain.hook)
    return (NFT_MSG_NEWCHAIN, NLM_F_CREATE, body)


def delete_message(table: str, obj: Chain | Set) -> Message:
    """``delete chain`` (the kernel deletes its rules with it) or ``delete set``."""
    if isinstance(obj, Chain):
        return (NFT_MSG_DELCHAIN, 0, name_attr(1, table) + name_attr(3, obj.name))
    return (NFT_MSG_DELSET, 0, name_attr(1, table) + name_attr(2, obj.name))


def _hook(h: Hook) -> bytes:
    return nest(4, u32_attr(1, HOOKS[h.hook]) + u32_attr(2, h.priority))


class Spec:
    """A key or data spelling (``ipv4_addr . inet_service``, ``typeof meta mark . ...``) as
    nft's datatype, length and user data; ``None`` fields when it is not one nft writes here."""

    __slots__ = ("byteorder", "fields", "length", "lengths", "parts", "type", "typeof")

    def __init__(self, spec: str) -> None:
        self.parts = spec.removeprefix("typeof ").split(" . ")
        # kpng spells a typeof map's data as expressions, without the word (``ip daddr``)
        self.typeof = spec.startswith("typeof ") or any(p in TYPEOF for p in self.parts)
        if self.typeof:
            self.fields = [TYPEOF[p][2] for p in self.parts]
        else:
            self.fields = [FIELD_TYPES[p] for p in self.parts]
        self.type = 0
        for f in self.fields:
            self.type = self.type << 6 | TYPES[f][0]
        self.lengths = [TYPES[f][1] for f in self.fields]
        concat = len(self.fields) > 1
        self.length = sum((n + 3) & ~3 for n in self.lengths) if concat else self.lengths[0]
        self.byteorder = 0 if concat else TYPES[self.fields[0]][2]

    @property
    def concat(self) -> bool:
        return len(self.fields) > 1

    def udata(self) -> bytes:
        """nft's ``typeof`` record: the concatenation (empty for plain types) or the typeof
        expressions; nothing for a single plain type."""
        if not self.typeof:
            return _tlv(0, struct.pack("=I", EXPR_CONCAT)) + _tlv(1, b"") if self.concat else b""
        items = b"".join(_tlv(i, _typeof(p)) for i, p in enumerate(self.parts))
        return _tlv(0, struct.pack("=I", EXPR_CONCAT)) + _tlv(1, items)


def _typeof(part: str) -> bytes:
    etype, fields, _ = TYPEOF[part]
    return _ud32(0, etype) + _tlv(1, b"".join(_ud32(k, v) for k, v in fields))


@lru_cache(maxsize=256)
def set_message(table: str, s: Set, set_id: int) -> Message | None:
    """``add set``/``add map``; None for a set nft writes otherwise here (timeouts, dynamic).
    Kept: a skeleton's are the same on every full sync."""
    if s.timeout or "dynamic" in s.flags or set(s.flags) - {"interval"}:
        return None
    try:
        key = Spec(s.type)
        data = Spec(s.data) if s.data and s.data != "verdict" else None
    except (KeyError, IndexError):
        return None
    interval = "interval" in s.flags
    flags = (NFT_SET_MAP if s.data else 0) | (NFT_SET_INTERVAL if interval else 0)
    if interval and key.concat:
        flags |= NFT_SET_CONCAT
    body = name_attr(1, table) + name_attr(2, s.name) + u32_attr(3, flags)
    body += u32_attr(4, key.type) + u32_attr(5, key.length)
    if s.data == "verdict":
        body += u32_attr(6, NFT_DATA_VERDICT) + u32_attr(7, 0)
    elif data is not None:
        body += u32_attr(6, data.type) + u32_attr(7, data.length)
    body += u32_attr(10, set_id)
    if interval and key.concat:
        fields = b"".join(nest(1, u32_attr(1, n)) for n in key.lengths)
        body += nest(9, nest(2, fields))
    ud = _ud32(UD_KEYBYTEORDER, key.byteorder)
    if s.data:
        ud += _ud32(UD_DATABYTEORDER, data.byteorder if data is not None else 0)
    if key.concat or key.typeof:
        ud += _tlv(UD_KEY_TYPEOF, key.udata())
    if data is not None and (data.typeof or data.concat):
        if not data.typeof:
            return None  # a concatenated data type: not one kpng's skeleton has
        ud += _tlv(UD_DATA_TYPEOF, data.udata())
    if s.data:
        ud += _ud32(UD_DATA_INTERVAL, 0)
    return (NFT_MSG_NEWSET, NLM_F_CREATE, body + nla(13, ud))


def interval_elements(table: str, s: Set, elements: list[Element]) -> Message | None:
    """``add element`` of a single-field interval set of addresses: each prefix as its start,
    and the address after it flagged as an end (none past the last address). None for
    anything else (a concatenated key, overlapping or adjacent prefixes)."""
    if "interval" not in s.flags or s.data or s.type not in ("ipv4_addr", "ipv6_addr"):
        return None
    try:
        nets = sorted(ipaddress.ip_network(e.key[0], strict=False) for e in elements)
    except (ValueError, TypeError, IndexError):
        return None
    if any(len(e.key) != 1 for e in elements):
        return None
    body = b""
    last = -1
    n = 0  # nft numbers the elements of a list (1, 2, ...)
    for net in nets:
        start, end = int(net.network_address), int(net.broadcast_address) + 1
        if start <= last:
            return None  # overlapping or adjacent: nft would merge or refuse them
        size = net.max_prefixlen // 8
        n += 1
        body += nest(n, nest(1, nla(1, start.to_bytes(size, "big"))))
        if end < 1 << net.max_prefixlen:
            n += 1
            key = nest(1, nla(1, end.to_bytes(size, "big")))
            body += nest(n, u32_attr(3, NFT_SET_ELEM_INTERVAL_END) + key)
        last = end
    return (
        NFT_MSG_NEWSETELEM,
        NLM_F_CREATE,
        name_attr(1, table) + name_attr(2, s.name) + nest(3, body),
    )
