"""A live table, from ``nft -j list table`` output, as a :class:`Ruleset`.

Elements come back as the tokens rendering writes (addresses normalised, numbers in
decimal, verdicts as ``goto x``), so a table equal to what kpng wants compares equal.
Chains are known by the digests kpng records in ``chain_digests``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from kpng.dataplane.nft.netlink.codec import Layout, decode_element
from kpng.dataplane.nft.objects import Element, Key, Set, Table
from kpng.dataplane.nft.transaction import DIGESTS, Ruleset


@dataclass(slots=True)
class Listing:
    """What an ``nft -j list`` document holds: chain names, set definitions, elements (and,
    read over netlink, raw elements per set)."""

    chains: list[str] = field(default_factory=list)
    sets: dict[str, Set] = field(default_factory=dict)
    maps: set[str] = field(default_factory=set)
    elements: dict[tuple[str, Key], Element] = field(default_factory=dict)
    raw: dict[str, tuple[Layout, list[bytes]]] = field(default_factory=dict)

    def ruleset(
        self, table: Table, rest: Future[Mapping[str, tuple[Layout, list[bytes]]]] | None = None
    ) -> Ruleset:
        """Chains and sets known by the digests recorded in ``chain_digests``; ``rest``, the
        raw sets still being dumped (see :class:`Ruleset`)."""
        found = [e for e in self.elements.values() if e.set == DIGESTS]
        if DIGESTS in self.raw:
            lay, raws = self.raw[DIGESTS]
            found += [decode_element(lay, r, 4, len(r)) for r in raws]
        digests = {e.comment: e.key[0] for e in found}
        chains = {name: digests.get(name, "") for name in self.chains}
        set_digests = {name: digests.get(f"set:{name}", "") for name in self.sets}
        maps = frozenset(self.maps)
        return Ruleset(table, chains, set_digests, maps, self.elements, self.raw, rest)


def listing(doc: dict[str, Any], into: Listing | None = None) -> Listing:
    """Parse a document. Elements of dynamic sets (filled by the kernel, such as affinity
    records) are left out: kpng neither compares nor deletes them."""
    out = into if into is not None else Listing()
    for item in doc.get("nftables", []):
        if "chain" in item:
            out.chains.append(item["chain"]["name"])
        for kind in ("set", "map"):
            if kind in item:
                s = _set(item[kind])
                out.sets[s.name] = s
                if kind == "map":
                    out.maps.add(s.name)
                if "dynamic" in item[kind].get("flags", ()):
                    continue
                for raw in item[kind].get("elem", []):
                    e = _element(s, raw)
                    out.elements[(e.set, e.key)] = e
    return out


def ruleset_from_json(table: Table, doc: dict[str, Any]) -> Ruleset:
    return listing(doc).ruleset(table)


def _set(j: dict[str, Any]) -> Set:
    """A set as nft spells it (``mark . integer``, not the ``typeof`` it was made with):
    enough for its netlink layout; definitions are compared through digests."""
    flags = tuple(j.get("flags", []))
    return Set(j["name"], _definition(j), _data(j), flags, int(j.get("timeout", 0)))


def _definition(j: dict[str, Any]) -> str:
    t = j["type"]
    return " . ".join(t) if isinstance(t, list) else str(t)


def _data(j: dict[str, Any]) -> str:
    d = j.get("map", "")
    return " . ".join(d) if isinstance(d, list) else str(d)


def _element(s: Set, raw: Any) -> Element:
    comment = ""
    key_raw, value_raw = (raw[0], raw[1]) if isinstance(raw, list) else (raw, None)
    if isinstance(key_raw, dict) and "elem" in key_raw:
        comment = key_raw["elem"].get("comment", "")
        key_raw = key_raw["elem"]["val"]
    value = None if value_raw is None else _tokens(value_raw)
    return Element(s.name, _tokens(key_raw), value, comment)


def _tokens(x: Any) -> Key:
    if isinstance(x, dict) and "concat" in x:
        return tuple(t for part in x["concat"] for t in _tokens(part))
    return (_token(x),)


def _token(x: Any) -> str:
    if isinstance(x, dict):
        if "prefix" in x:
            p = x["prefix"]
            return str(ipaddress.ip_network(f"{p['addr']}/{p['len']}", strict=False))
        if "range" in x:
            lo, hi = x["range"]
            return f"{_token(lo)}-{_token(hi)}"
        (verdict, arg), *_ = x.items()
        return f"{verdict} {arg['target']}" if arg else verdict
    if isinstance(x, str):
        try:
            return str(ipaddress.ip_address(x))
        except ValueError:
            return x
    return str(x)
