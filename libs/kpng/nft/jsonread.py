"""A live table, from ``nft -j list table`` output, as a :class:`Ruleset`.

Elements come back as the tokens rendering writes (addresses normalised, numbers in
decimal, verdicts as ``goto x``), so a table equal to what kpng wants compares equal.
Chains are known by the digests kpng records in ``chain_digests``.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from kpng.nft.objects import Element, Key, Set, Table
from kpng.nft.transaction import DIGESTS, Ruleset


def ruleset_from_json(table: Table, doc: dict[str, Any]) -> Ruleset:
    sets: dict[str, Set] = {}
    maps: set[str] = set()
    elements: dict[tuple[str, Key], Element] = {}
    chain_names: list[str] = []
    for item in doc.get("nftables", []):
        if "chain" in item:
            chain_names.append(item["chain"]["name"])
        for kind in ("set", "map"):
            if kind in item:
                s = _set(item[kind])
                sets[s.name] = s
                if kind == "map":
                    maps.add(s.name)
                for raw in item[kind].get("elem", []):
                    e = _element(s, raw)
                    elements[(e.set, e.key)] = e
    digests = {e.comment: e.key[0] for e in elements.values() if e.set == DIGESTS}
    chains = {name: digests.get(name, "") for name in chain_names}
    set_digests = {name: digests.get(f"set:{name}", "") for name in sets}
    return Ruleset(table, chains, set_digests, frozenset(maps), elements)


def _set(j: dict[str, Any]) -> Set:
    """Only the name matters for comparison of kpng's own sets, which nft reports in its
    own spelling; the definition is compared by name and flags through ``_definition``."""
    flags = tuple(f for f in j.get("flags", []) if f != "dynamic")
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
