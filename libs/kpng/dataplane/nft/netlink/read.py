"""A table's chains and set definitions from netlink dumps (``NFT_MSG_GETCHAIN``,
``NFT_MSG_GETSET``). Pure: requests out, decoded messages in.

nft 1.0.6 fetches every element of a table even for ``nft -j -t list table`` (seconds at
10k services); these two dumps return definitions only. A set comes back spelled as nft's
JSON spells it (``mark . integer``, not the ``typeof`` it was made with): enough for its
netlink layout, since definitions are compared through the digests in ``chain_digests``.
Key and data types are nft's datatype ids, concatenations packed 6 bits per field.
"""

from __future__ import annotations

import struct

from kpng.dataplane.nft.netlink.batch import FAMILIES, HEADER, NFNL_SUBSYS_NFTABLES
from kpng.dataplane.nft.netlink.batch import DumpError as DumpError  # re-exported: dumps raise it
from kpng.dataplane.nft.netlink.batch import (
    messages as messages,  # re-exported: the dump readers use it
)
from kpng.dataplane.nft.netlink.codec import attrs, nla
from kpng.dataplane.nft.objects import Set, Table

NFT_MSG_GETCHAIN, NFT_MSG_GETSET = 4, 10
NLM_F_REQUEST, NLM_F_DUMP = 1, 0x300
NFTA_CHAIN_TABLE, NFTA_CHAIN_NAME = 1, 3
NFTA_SET_TABLE, NFTA_SET_NAME, NFTA_SET_FLAGS = 1, 2, 3
NFTA_SET_KEY_TYPE, NFTA_SET_DATA_TYPE, NFTA_SET_TIMEOUT = 4, 6, 11
NFT_SET_ANONYMOUS, NFT_SET_INTERVAL, NFT_SET_MAP = 0x1, 0x4, 0x8
NFT_SET_TIMEOUT, NFT_SET_EVAL = 0x10, 0x20
NFT_DATA_VERDICT = 0xFFFFFF00
TYPE_BITS = 6
# nft's datatype ids (src/datatype.h), as nft's JSON names them
TYPE_NAMES = {
    4: "integer",
    7: "ipv4_addr",
    8: "ipv6_addr",
    12: "inet_proto",
    13: "inet_service",
    19: "mark",
}


def dump_request(table: Table, kind: int, seq: int) -> bytes:
    """A dump of the chains or sets of one family (sets filtered by table in the kernel)."""
    payload = struct.pack("=BBH", FAMILIES[table.family], 0, 0)
    if kind == NFT_MSG_GETSET:
        payload += nla(NFTA_SET_TABLE, table.name.encode() + b"\0")
    msg = NFNL_SUBSYS_NFTABLES << 8 | kind
    return HEADER.pack(16 + len(payload), msg, NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + payload


def _string(buf: bytes, a: int, b: int) -> str:
    return buf[a:b].rstrip(b"\0").decode()


def chain_name(table: Table, buf: bytes, start: int, end: int) -> str | None:
    """The name of a chain message, if the chain is in ``table``."""
    found: dict[int, str] = {}
    for kind, a, b in attrs(buf, start, end):
        if kind in (NFTA_CHAIN_TABLE, NFTA_CHAIN_NAME):
            found[kind] = _string(buf, a, b)
    if found.get(NFTA_CHAIN_TABLE) != table.name:
        return None
    return found.get(NFTA_CHAIN_NAME)


def type_name(type_id: int) -> str:
    """A (concatenated) datatype id as nft's JSON spells it: ``mark . integer``."""
    parts = []
    while type_id:
        sub = type_id & ((1 << TYPE_BITS) - 1)
        parts.append(TYPE_NAMES.get(sub, f"type_{sub}"))
        type_id >>= TYPE_BITS
    return " . ".join(reversed(parts))


def set_definition(table: Table, buf: bytes, start: int, end: int) -> Set | None:
    """A named set of ``table`` from a set message (anonymous sets are rule internals)."""
    name, owner, flags, key, data, timeout = "", "", 0, 0, 0, 0
    for kind, a, b in attrs(buf, start, end):
        if kind == NFTA_SET_NAME:
            name = _string(buf, a, b)
        elif kind == NFTA_SET_TABLE:
            owner = _string(buf, a, b)
        elif kind == NFTA_SET_FLAGS:
            (flags,) = struct.unpack_from(">I", buf, a)
        elif kind == NFTA_SET_KEY_TYPE:
            (key,) = struct.unpack_from(">I", buf, a)
        elif kind == NFTA_SET_DATA_TYPE:
            (data,) = struct.unpack_from(">I", buf, a)
        elif kind == NFTA_SET_TIMEOUT:
            (timeout,) = struct.unpack_from(">Q", buf, a)
    if owner != table.name or flags & NFT_SET_ANONYMOUS or not name:
        return None
    value = ""
    if flags & NFT_SET_MAP:
        value = "verdict" if data == NFT_DATA_VERDICT else type_name(data)
    names = (
        (NFT_SET_INTERVAL, "interval"),
        (NFT_SET_EVAL, "dynamic"),
        (NFT_SET_TIMEOUT, "timeout"),
    )
    words = tuple(word for bit, word in names if flags & bit)
    return Set(name, type_name(key), value, words, timeout // 1000)
