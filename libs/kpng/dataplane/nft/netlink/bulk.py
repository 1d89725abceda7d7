"""Runs of plain elements encoded, and whole dump messages of them decoded, at once: one
conversion per column (field), then ``struct`` over every element. Pure.

A 10k-service table holds ~150k plain elements (endpoints, service IPs); decoding them one
attribute walk at a time took ~2.5 s of a restart (the kernel's dumps ~0.1 s), encoding
them one by one ~3 s of a full sync. Elements
that are not plain (verdicts, comments, another size) make the caller fall back to
:func:`kpng.dataplane.nft.netlink.codec.decode_element`.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable, Iterable
from itertools import repeat, starmap
from typing import Any, cast

from kpng.dataplane.nft.netlink.addresses import htons, inet6_aton, inet6_ntoa, inet_aton, inet_ntoa
from kpng.dataplane.nft.netlink.codec import PROTO_NAMES, PROTOS, Layout
from kpng.dataplane.nft.objects import Element

NFTA_LIST_ELEM = 1
_new = cast(Callable[[Any], Element], functools.partial(tuple.__new__, Element))


# Per field type, the functions one column goes through, in order: to the value ``struct``
# packs (encode) and back to the token rendering spells (decode). Chained ``map``s over C
# functions, no Python call per element.
_Steps = tuple[Callable[[Any], Any], ...]
_ENCODE: dict[str, _Steps] = {
    "mark": (int,),
    "integer": (int,),
    "inet_service": (int, htons),
    "inet_proto": (PROTOS.__getitem__,),
    "ipv4_addr": (inet_aton,),
    "ipv6_addr": (inet6_aton,),
}
_DECODE: dict[str, _Steps] = {
    "mark": (str,),
    "integer": (str,),
    "inet_service": (htons, str),
    "inet_proto": (PROTO_NAMES.__getitem__,),
    "ipv4_addr": (inet_ntoa,),
    "ipv6_addr": (inet6_ntoa,),
}


def _through(steps: _Steps, col: Iterable[Any]) -> Iterable[Any]:
    for step in steps:
        col = map(step, col)
    return col


def _column(name: str, col: tuple[Any, ...]) -> Iterable[str]:
    """One field of every element, as rendering spells it."""
    return _through(_DECODE[name], col)


def unpack_all(lay: Layout, buf: bytes, start: int, end: int) -> list[Element] | None:
    """The elements in ``buf[start:end]`` (a ``NFTA_SET_ELEM_LIST_ELEMENTS`` payload) if all
    are plain, else None."""
    st = lay.whole if lay.data is not None else lay.whole_key
    if lay.verdict or (end - start) % st.size:
        return None
    rows = list(st.iter_unpack(memoryview(buf)[start:end]))
    if not rows:
        return []
    cols = list(zip(*rows, strict=True))
    nk = len(lay.key.names)
    prefixes = {lay.key.bare, lay.key.prefix}
    if set(cols[0]) != {st.size} or set(cols[1]) - {NFTA_LIST_ELEM, 0x8000 | NFTA_LIST_ELEM}:
        return None
    if set(cols[2]) - prefixes:
        return None
    keys = zip(
        *(_column(n, c) for n, c in zip(lay.key.names, cols[3 : 3 + nk], strict=True)), strict=True
    )
    values: Iterable[tuple[str, ...] | None] = repeat(None)
    if lay.data is not None:
        if set(cols[3 + nk]) - {lay.data.bare, lay.data.prefix}:
            return None
        data = zip(lay.data.names, cols[4 + nk :], strict=True)
        values = zip(*(_column(n, c) for n, c in data), strict=True)
    return list(map(_new, zip(repeat(lay.name), keys, values, repeat(""), strict=False)))


def _columns(names: tuple[str, ...], rows: tuple[Any, ...]) -> list[list[object]] | None:
    if set(map(len, rows)) != {len(names)}:
        return None
    fields = zip(names, zip(*rows, strict=True), strict=True)
    return [list(_through(_ENCODE[n], c)) for n, c in fields]


def pack_all(lay: Layout, elements: list[Element], full: bool) -> list[bytes] | None:
    """Each element as an ``NFTA_LIST_ELEM`` (key only unless ``full``), as
    :meth:`Layout.encode` writes it, if all are plain; else None (encode one by one)."""
    if lay.verdict or not elements:
        return None
    _, keys, values, comments = zip(*elements, strict=True)
    if any(comments):
        return None
    try:
        cols = _columns(lay.key.names, keys)
        if cols is None:
            return None
        if not full or lay.data is None:
            if full and values.count(None) != len(values):
                return None
            st = lay.whole_key
            head = (repeat(st.size), repeat(0x8001), repeat(lay.key.prefix))
            return list(starmap(st.pack, zip(*head, *cols, strict=False)))
        if None in values:
            return None
        data = _columns(lay.data.names, values)
        if data is None:
            return None
        st = lay.whole
        head = (repeat(st.size), repeat(0x8001), repeat(lay.key.prefix))
        args = zip(*head, *cols, repeat(lay.data.prefix), *data, strict=False)
        return list(starmap(st.pack, args))
    except (KeyError, ValueError, OSError, struct.error, TypeError):
        return None
