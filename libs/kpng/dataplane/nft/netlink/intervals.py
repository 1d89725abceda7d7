"""The elements of an interval set of addresses, from a netlink dump, as nft lists them. Pure.

The kernel keeps such a set as boundaries: a start, and the address after the interval
flagged ``NFT_SET_ELEM_INTERVAL_END`` (none when the interval runs to the last address; nft
adds an end at 0 when it creates a set with elements). A dump gives the boundaries, in no
order kpng relies on; they are paired back into intervals and spelled as ``nft -j list``
spells them (:mod:`kpng.dataplane.nft.jsonread`): a prefix ``10.244.0.0/16``, one address
``192.168.0.10``, anything else ``first-last``. A restart reads these sets without ``nft``.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable

from kpng.dataplane.nft.netlink.codec import NFTA_DATA_VALUE, attrs
from kpng.dataplane.nft.objects import Element, NftError

NFTA_SET_ELEM_LIST_ELEMENTS = 3
NFTA_SET_ELEM_KEY, NFTA_SET_ELEM_FLAGS = 1, 3
NFT_SET_ELEM_INTERVAL_END = 1
Boundary = tuple[int, bool]  # (address as an int, is an end)


def boundaries(buf: bytes, start: int, end: int) -> list[Boundary]:
    """The boundaries in one dump message's attributes (``buf[start:end]``)."""
    out: list[Boundary] = []
    for kind, a, b in attrs(buf, start, end):
        if kind != NFTA_SET_ELEM_LIST_ELEMENTS:
            continue
        for _, x, y in attrs(buf, a, b):  # NFTA_LIST_ELEM (nft numbers them 1, 2, ...)
            key, flags = b"", 0
            for field, p, q in attrs(buf, x, y):
                if field == NFTA_SET_ELEM_KEY:
                    for value, r, s in attrs(buf, p, q):
                        if value == NFTA_DATA_VALUE:
                            key = buf[r:s]
                elif field == NFTA_SET_ELEM_FLAGS:
                    (flags,) = struct.unpack_from(">I", buf, p)
            if len(key) not in (4, 16):
                raise NftError(f"an interval set element with a {len(key)}-byte key")
            out.append((int.from_bytes(key, "big"), bool(flags & NFT_SET_ELEM_INTERVAL_END)))
    return out


def elements(set_name: str, bits: int, found: Iterable[Boundary]) -> list[Element]:
    """The set's elements (``bits``: 32 or 128) from its boundaries."""
    out: list[Element] = []
    first: int | None = None
    # at one address, the end of an interval comes before the start of the next
    for at, is_end in sorted(found, key=lambda b: (b[0], not b[1])):
        if is_end:
            if first is not None:
                out.append(Element(set_name, (_token(first, at - 1, bits),)))
            first = None  # an end with no start: nft's end at 0
        else:
            first = at
    if first is not None:
        out.append(Element(set_name, (_token(first, (1 << bits) - 1, bits),)))
    return out


def _token(first: int, last: int, bits: int) -> str:
    size = last - first + 1
    lo = ipaddress.ip_address(first) if bits == 32 else ipaddress.IPv6Address(first)
    if size == 1:
        return str(lo)
    if size & (size - 1) == 0 and first % size == 0:
        return str(ipaddress.ip_network(f"{lo}/{bits - size.bit_length() + 1}"))
    hi = ipaddress.ip_address(last) if bits == 32 else ipaddress.IPv6Address(last)
    return f"{lo}-{hi}"


def any_element(buf: bytes, start: int, end: int) -> bool:
    """Whether one dump message holds an element (of any set)."""
    for kind, a, b in attrs(buf, start, end):
        if kind == NFTA_SET_ELEM_LIST_ELEMENTS and any(attrs(buf, a, b)):
            return True
    return False
