"""Elements kept as the bytes netlink carries: the planner's compact form. Pure.

A *packed* element is one byte (the index of its set among the skeleton's sets with a netlink
layout) followed by the element's ``NFTA_LIST_ELEM`` exactly as it is sent (nested flags
set). A 10k-service plan holds ~155k of them: one ``bytes`` each (~72 bytes) instead of a
named tuple of token tuples and strings (~260 bytes), hashed and compared in C, written
without encoding, and compared with a table read back without decoding it.

Elements read back (a dump omits ``NLA_F_NESTED``) are brought to the sent form by
:func:`sent_form` and :func:`sent_forms`.
"""

from __future__ import annotations

import functools
import struct
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from operator import itemgetter
from typing import TypeVar

from kpng.dataplane.nft.netlink import addresses
from kpng.dataplane.nft.netlink.codec import (
    NFTA_LIST_ELEM,
    NFTA_SET_ELEM_DATA,
    NFTA_SET_ELEM_KEY,
    NFTA_SET_ELEM_USERDATA,
    NLA_F_NESTED,
    Layout,
    attrs,
    decode_element,
    layout,
    udata_comment,
)
from kpng.dataplane.nft.objects import Element, NftError, Object
from kpng.dataplane.nft.skeleton import Config, sets

Planned = Object | bytes  # what a plan holds: objects, and elements packed
_HH = struct.Struct("=HH")
_MARK = struct.Struct("=I")
_LITTLE = sys.byteorder == "little"


@dataclass(frozen=True, slots=True)
class Fast:
    """Packs a plain element of one set from its field values (ints, address bytes) with one
    ``struct`` call: ``pack(first, size, ELEM, key, *key fields[, data, *data fields])``, the
    bytes :meth:`Layout.encode` writes, after the set's index."""

    pack: Callable[..., bytes]
    first: bytes  # the set's index
    size: int  # of the NFTA_LIST_ELEM
    key: bytes  # the key's nest and value headers
    data: bytes  # the data's (maps)


ELEM = NLA_F_NESTED | NFTA_LIST_ELEM


class Packer:
    """The packed form of one configuration's elements."""

    __slots__ = ("_pick", "_picks", "aton", "index", "layouts", "names", "prefixes")

    def __init__(self, c: Config) -> None:
        found = [(s.name, layout(s)) for s in sets(c)]
        self.layouts: dict[str, Layout] = {n: lay for n, lay in found if lay is not None}
        self.names = tuple(self.layouts)
        self.index = {n: i for i, n in enumerate(self.names)}
        self.prefixes = tuple(bytes((i,)) for i in range(len(self.names)))
        self.aton: Callable[[str], bytes] = addresses.aton(c.family)
        self._picks: dict[tuple[int, int], tuple[Callable[..., bytes], int]] = {}
        if "pick" in self.layouts:  # (set index, key's headers, element size before its data)
            f = self.fast("pick")
            self._pick = (f.first, f.key, 4 + len(f.key) + 4)

    @functools.cache  # noqa: B019 (one packer per configuration, kept for the process)
    def fast(self, name: str) -> Fast:
        lay = self.layouts[name]
        st = lay.whole if lay.data is not None else lay.whole_key
        pack = struct.Struct("=c" + st.format.removeprefix("=")).pack
        data = lay.data.prefix if lay.data is not None else b""
        return Fast(pack, self.prefixes[self.index[name]], st.size, lay.key.prefix, data)

    def pick(self, tid: int, verdict: bytes, comment: str) -> bytes:
        """A ``pick`` element (target id : verdict, the target's key as comment), packed,
        the verdict given as its attribute (``codec.verdict_attr``): the
        key, the verdict and the codec's ``comment_attr`` (NUL-terminated, padded) in one
        ``struct`` call, of a format kept per verdict and comment length (one element per
        target of a full sync)."""
        raw = comment.encode()
        n = len(raw) + 1
        found = self._picks.get((len(verdict), n))
        if found is None:
            if n > 255:
                raise NftError(f"comment too long: {comment!r}")
            found = self._picks[(len(verdict), n)] = self._pick_format(len(verdict), n)
        pack, size = found
        first, fkey, _ = self._pick
        return pack(first, size, ELEM, fkey, tid, verdict, 6 + n, NFTA_SET_ELEM_USERDATA, 0, n, raw)

    def _pick_format(self, verdict: int, n: int) -> tuple[Callable[..., bytes], int]:
        """The ``struct`` packing a pick element whose verdict attribute takes ``verdict``
        bytes and comment ``n`` (its NUL included), and the element's size."""
        _, fkey, before = self._pick
        pad = -(6 + n) & 3
        fmt = f"=cHH{len(fkey)}sI{verdict}sHHBB{n}s{pad}x"
        return struct.Struct(fmt).pack, before + verdict + 6 + n + pad

    def pack(self, o: Planned) -> Planned:
        """An element of a set with a netlink layout, packed; anything else as it is."""
        if type(o) is Element:
            lay = self.layouts.get(o.set)
            if lay is not None:
                return self.prefixes[self.index[o.set]] + lay.encode(o)
        return o

    def pack_all(self, objs: Iterable[Planned]) -> tuple[Planned, ...]:
        return tuple(map(self.pack, objs))

    def layout_of(self, p: bytes) -> Layout:
        return self.layouts[self.names[p[0]]]

    def unpack(self, p: bytes) -> Element:
        """A packed element (whole, or its key only) as an :class:`Element`."""
        return decode_element(self.layout_of(p), p, 5, len(p))


def adopt(pick: Iterable[bytes]) -> Iterator[tuple[str, int]]:
    """(target key, id) of the ``pick`` elements read back (sent form): the key is a mark,
    the comment the target's key. Usually the comment follows the key (16 bytes) and the
    verdict: found without walking the attributes."""
    for raw in pick:
        (n,) = _H.unpack_from(raw, 16)
        at = 16 + ((n + 3) & ~3)
        if raw[at + 2 : at + 5] == _COMMENT_AT and at + 6 + raw[at + 5] <= len(raw):
            comment = raw[at + 6 : at + 6 + raw[at + 5]].rstrip(b"\0").decode()
        else:
            comment = element_comment(raw)
        if comment:
            yield comment, _MARK.unpack_from(raw, 12)[0]


_H = struct.Struct("=H")
_ONLY: Callable[[tuple[bytes]], bytes] = itemgetter(0)
_COMMENT_AT = bytes((NFTA_SET_ELEM_USERDATA, 0, 0))  # attribute type, then the comment's TLV


T = TypeVar("T")


def per_config(make: Callable[[Config], T]) -> Callable[[Config], T]:
    """``make(c)`` made once per configuration (the last 16), and the last one's found
    without hashing ``c``: a frozen dataclass hashes its fields on every call, and rendering
    asks once per service."""
    made = functools.lru_cache(maxsize=16)(make)
    last: list[tuple[Config, T]] = []

    def get(c: Config) -> T:
        if last and last[0][0] is c:
            return last[0][1]
        found = made(c)
        last[:] = [(c, found)]
        return found

    return get


@per_config
def packer(c: Config) -> Packer:
    """The packer of a configuration."""
    return Packer(c)


def key_only(p: bytes, at: int = 1) -> bytes:
    """The ``NFTA_LIST_ELEM`` to delete an element: its key attribute alone (the first)."""
    (n,) = struct.unpack_from("=H", p, at + 4)
    n = (n + 3) & ~3
    return _HH.pack(4 + n, NLA_F_NESTED | NFTA_LIST_ELEM) + p[at + 4 : at + 4 + n]


def element_comment(raw: bytes, at: int = 0) -> str:
    """The comment of the ``NFTA_LIST_ELEM`` at ``at`` (its ``NFTNL_UDATA_SET_ELEM_COMMENT``)."""
    for kind, a, b in attrs(raw, at + 4, len(raw)):
        if kind == NFTA_SET_ELEM_USERDATA:
            return udata_comment(raw, a, b)
    return ""


def _flag(buf: bytearray, at: int) -> None:
    (kind,) = struct.unpack_from("=H", buf, at + 2)
    struct.pack_into("=H", buf, at + 2, kind | NLA_F_NESTED)


def sent_form(lay: Layout, buf: bytes, start: int, end: int) -> bytes:
    """One dumped element (its payload is ``buf[start:end]``) as it is sent: nested flags on
    the element, its key and data, and a verdict's nest."""
    out = bytearray(buf[start - 4 : start - 4 + ((end - start + 7) & ~3)])
    _flag(out, 0)
    for kind, a, _ in attrs(out, 4, len(out)):
        if kind in (NFTA_SET_ELEM_KEY, NFTA_SET_ELEM_DATA):
            _flag(out, a - 4)
            if kind == NFTA_SET_ELEM_DATA and lay.verdict:
                _flag(out, a)
    return bytes(out)


def sent_forms(lay: Layout, buf: bytes, start: int, end: int) -> list[bytes]:
    """The elements of a dump's ``NFTA_SET_ELEM_LIST_ELEMENTS`` payload, as sent. Plain
    elements of one size (most) are fixed at once, column by column; verdict maps' (the
    ``pick`` elements) by the offsets their attributes have."""
    if lay.verdict and _LITTLE:
        return _verdicts(lay, buf, start, end)
    st = lay.whole if lay.data is not None else lay.whole_key
    size, span = st.size, end - start
    if not lay.verdict and _LITTLE and span and span % size == 0:
        n = span // size
        chunk = bytearray(buf[start:end])
        heads = (size & 0xFF, size >> 8, NFTA_LIST_ELEM, NFTA_SET_ELEM_KEY)
        if all(chunk[i::size] == bytes((h,)) * n for i, h in zip((0, 1, 2, 6), heads, strict=True)):
            high = bytes((NLA_F_NESTED >> 8,)) * n
            chunk[3::size] = high
            chunk[7::size] = high
            if lay.data is not None:
                at = 8 + 4 + lay.key.size + (-lay.key.size & 3)
                if chunk[at + 2 :: size] != bytes((NFTA_SET_ELEM_DATA,)) * n:
                    return _one_by_one(lay, buf, start, end)
                chunk[at + 3 :: size] = high
            # cut in C: one bytes per element (a slice each cost twice as much at 155k)
            return list(map(_ONLY, struct.iter_unpack(f"{size}s", chunk)))
    return _one_by_one(lay, buf, start, end)


def _verdicts(lay: Layout, buf: bytes, start: int, end: int) -> list[bytes]:
    """Elements of a verdict map, as :func:`sent_form` makes them, where the key comes
    first and the data (a verdict nest) second, as the kernel dumps them: the nested flags
    are set at those offsets (the high byte of a type, little-endian) in one copy of the
    payload. Any other element goes through :func:`sent_form`."""
    e = bytearray(buf[start:end])
    spans: list[tuple[int, int]] = []
    odd: dict[int, bytes] = {}
    unpack, at, stop = _HH.unpack_from, 0, end - start
    high = NLA_F_NESTED >> 8
    while at + 4 <= stop:
        n, kind = unpack(e, at)
        if n < 4 or kind & 0x3FFF != NFTA_LIST_ELEM:
            return _one_by_one(lay, buf, start, end)
        size = (n + 3) & ~3
        d = at + 4 + ((e[at + 4] | e[at + 5] << 8) + 3 & ~3)  # the attribute after the key
        if (
            at + n >= d + 8
            and e[at + 6] == NFTA_SET_ELEM_KEY
            and not e[at + 7] & 0x3F
            and e[d + 2] == NFTA_SET_ELEM_DATA
            and not e[d + 3] & 0x3F
            and _rest_is_comment(e, d + ((e[d] | e[d + 1] << 8) + 3 & ~3), at + size)
        ):
            e[at + 3] |= high
            e[at + 7] |= high
            e[d + 3] |= high
            e[d + 7] |= high  # the verdict's nest, first in the data
        else:
            odd[len(spans)] = sent_form(lay, buf, start + at + 4, start + at + n)
        spans.append((at, at + size))
        at += size
    whole = bytes(e)
    out = [whole[a:b] for a, b in spans]
    for i, fixed in odd.items():
        out[i] = fixed
    return out


def _rest_is_comment(e: bytearray, at: int, end: int) -> bool:
    """Whether nothing, or one user data attribute (the comment), follows ``at``: no other
    attribute that :func:`sent_form` would flag."""
    return at == end or (
        e[at + 2] == NFTA_SET_ELEM_USERDATA
        and not e[at + 3] & 0x3F
        and at + ((e[at] | e[at + 1] << 8) + 3 & ~3) == end
    )


def _one_by_one(lay: Layout, buf: bytes, start: int, end: int) -> list[bytes]:
    out = []
    for kind, a, b in attrs(buf, start, end):
        if kind != NFTA_LIST_ELEM:
            raise NftError(f"unexpected attribute {kind} in a dump of set {lay.name}")
        out.append(sent_form(lay, buf, a, b))
    return out
