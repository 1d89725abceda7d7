"""What is programmed, as reference-counted objects, and the transactions that change it.

:class:`Programmed` keeps, per service, the objects it contributed and, over all services,
how many contribute each object. Changing one service yields a transaction with only the
objects whose count went to or from zero: the cost of an update follows the change, not
the table. A full sync diffs the whole desired table against what a table holds (read back
once), so a restarted agent that finds its table as it wants it writes nothing.
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Callable, Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from itertools import chain
from operator import itemgetter

from kpng.dataplane.nft.netlink.codec import decode_element
from kpng.dataplane.nft.objects import Chain, Element, Key, NftError, Object, Set, Table
from kpng.dataplane.nft.packed import Packer, Planned, adopt, element_comment, key_only
from kpng.dataplane.nft.skeleton import Config, chains, config_elements, sets
from kpng.dataplane.nft.transaction import Packed, Ruleset, Transaction, digest, digest_element


@dataclass(slots=True)
class Ids:
    """Target ids: small, stable while a target lives, reused after it goes."""

    by_key: dict[str, int] = field(default_factory=dict)
    free: list[int] = field(default_factory=list)
    next: int = 1
    seen: set[str] | None = None  # while set, the keys asked for (a full sync keeps only those)

    def __call__(self, key: str) -> int:
        tid = self.by_key.get(key)
        if tid is None:
            tid = self.free.pop() if self.free else self._bump()
            self.by_key[key] = tid
        if self.seen is not None:
            self.seen.add(key)
        return tid

    def _bump(self) -> int:
        self.next += 1
        return self.next - 1

    def release(self, keys: Iterable[str]) -> None:
        for key in keys:
            tid = self.by_key.pop(key, None)
            if tid is not None:
                self.free.append(tid)

    @classmethod
    def adopt(cls, live: Ruleset) -> Ids:
        """Recover the ids of a live table from its ``pick`` elements (comment = target key)."""
        ids = cls()
        for e in live.decoded.values():
            if e.set == "pick" and e.comment:
                ids.by_key[e.comment] = int(e.key[0])
        if "pick" in live.first:  # not live.raw: the other sets may still be being dumped
            ids.by_key.update(adopt(live.first["pick"][1]))
        used = set(ids.by_key.values())
        ids.next = max(used, default=0) + 1
        ids.free = sorted(set(range(1, ids.next)) - used, reverse=True)
        return ids


def static_objects(c: Config) -> list[Object]:
    out: list[Object] = [*config_elements(c)]
    for s in sets(c):
        out += [s, digest_element(s)]
    for ch in chains(c):
        out += [ch, digest_element(ch)]
    return out


def target_keys(objs: Iterable[Planned], pk: Packer) -> list[str]:
    pick = pk.index["pick"]
    out = [o.comment for o in objs if type(o) is Element and o.set == "pick"]
    return out + [element_comment(o, 1) for o in objs if type(o) is bytes and o[0] == pick]


@dataclass(slots=True)
class Programmed:
    """Per service, what it contributes (elements packed, see :mod:`kpng.dataplane.nft.packed`), and
    how many services contribute each."""

    config: Config
    counts: Counter[Planned] = field(default_factory=Counter)
    by_service: dict[str, tuple[Planned, ...]] = field(default_factory=dict)

    @property
    def table(self) -> Table:
        return self.config.nft_table

    def desired(self) -> AbstractSet[Planned]:
        return self.counts.keys()

    def set_all(self, by_service: dict[str, tuple[Planned, ...]]) -> None:
        """Record every service's objects at once (a full sync): counted in C."""
        self.by_service = {k: objs for k, objs in by_service.items() if objs}
        self.counts = Counter(chain.from_iterable(self.by_service.values()))

    def set_service(
        self, key: str, objs: tuple[Planned, ...]
    ) -> tuple[list[Planned], list[Planned]]:
        """Record a service's new objects; return (added, removed) objects."""
        old = self.by_service.pop(key, ())
        if objs:
            self.by_service[key] = objs
        return self._count(objs, +1), self._count(old, -1)

    def _count(self, objs: Iterable[Planned], sign: int) -> list[Planned]:
        changed = []
        for o in objs:
            n = self.counts[o] + sign
            if n <= 0:
                del self.counts[o]
            else:
                self.counts[o] = n
            if n == (1 if sign > 0 else 0):
                changed.append(o)
        return changed


def _split(
    objs: Iterable[Planned],
) -> tuple[dict[int, list[bytes]], list[Element], list[Chain | Set]]:
    """Packed elements by set index, other elements, chains and sets: one pass."""
    packed: dict[int, list[bytes]] = {}
    elements: list[Element] = []
    others: list[Chain | Set] = []
    for o in objs:
        if o.__class__ is bytes:
            run = packed.get(o[0])
            if run is None:
                packed[o[0]] = run = []
            run.append(o)
        elif o.__class__ is Element:
            elements.append(o)
        else:
            others.append(o)  # type: ignore[arg-type]
    return packed, elements, others


def _kind(o: Chain | Set) -> int:
    return 0 if isinstance(o, Set) else 1


# an element's set name: sorted by it, runs of one set make one command or message
_SET: Callable[[Element], str] = itemgetter(0)
_SET_KEY = itemgetter(0, 1)


def _runs(
    pk: Packer, added: dict[int, list[bytes]], removed: dict[int, list[bytes]]
) -> list[Packed]:
    """Packed deletes (keys only), then adds, one run per set."""
    out: list[Packed] = []
    for i, run in sorted(removed.items()):
        out.append(("delete", pk.layouts[pk.names[i]], [p[:1] + key_only(p) for p in run]))
    for i, run in sorted(added.items()):
        out.append(("add", pk.layouts[pk.names[i]], run))
    return out


def transaction(
    table: Table, added: Iterable[Planned], removed: Iterable[Planned], pk: Packer
) -> Transaction:
    """Deletes of elements, adds of sets (then chains), deletes of chains (then sets), adds of
    elements: references hold at the end, and a changed element is replaced in one batch."""
    add_p, add_el, add_other = _split(added)
    del_p, del_el, del_other = _split(removed)
    del_el.sort(key=_SET)
    add_el.sort(key=_SET)
    add_other.sort(key=_kind)
    del_other.sort(key=_kind, reverse=True)
    added_names = {o.name for o in add_other}
    tx = Transaction(table)
    tx.extend("delete", del_el)
    tx.extend("add", add_other)
    tx.extend("delete", [o for o in del_other if o.name not in added_names])
    tx.extend("add", add_el)
    tx.packed = _runs(pk, add_p, del_p)
    return tx


def full_sync(
    table: Table, desired: AbstractSet[Planned], live: Ruleset | None, pk: Packer
) -> Transaction:
    """The transaction that makes the live table equal to ``desired``, touching only what
    differs. A table whose sets are defined differently (another version) is recreated.
    Packed elements are compared with the raw ones read back set by set, as sets of bytes
    (in C): a set equal to the plan costs no Python per element."""
    packed, elements, others = _split(desired)
    if live is None or _layout_differs(others, live):
        return _recreate(table, (packed, elements, others), live is not None, pk)
    add_p, del_p, have = _diff_packed(packed, live, pk)
    want = dict(zip(map(_SET_KEY, elements), elements, strict=True))
    added: list[Planned] = [e for k, e in want.items() if have.get(k) != e]
    for o in others:
        if isinstance(o, Set):
            if o.name not in live.sets:
                added.append(o)
        elif live.chains.get(o.name) != digest(o):
            added.append(o)
    removed: list[Planned] = [e for k, e in have.items() if want.get(k) != e]
    names = {o.name for o in others}
    removed += [Chain(n) for n in live.chains if n not in names]
    removed += [
        Set(n, "mark", "verdict" if n in live.maps else "") for n in live.sets if n not in names
    ]
    tx = transaction(table, added, removed, pk)
    tx.packed = _runs(pk, add_p, del_p)
    return tx


Split = tuple[dict[int, list[bytes]], list[Element], list[Chain | Set]]


def _recreate(table: Table, split: Split, drop: bool, pk: Packer) -> Transaction:
    packed, elements, others = split
    tx = Transaction(table)
    if drop:
        tx.delete(table)
    tx.add(table)
    tx.ops.extend(transaction(table, [*elements, *others], (), pk).ops)
    tx.packed = _runs(pk, packed, {})
    return tx


def _diff_packed(
    want: dict[int, list[bytes]], live: Ruleset, pk: Packer
) -> tuple[dict[int, list[bytes]], dict[int, list[bytes]], dict[tuple[str, Key], Element]]:
    """(packed elements to add, to delete) by set, and the live elements of sets without a
    packed form, as objects. Raw live elements need only their set's index in front; one set
    at a time, so the copies stay small."""
    read: dict[int, list[bytes]] = {}
    objects: dict[tuple[str, Key], Element] = {}
    raw = live.raw  # waits for the sets still being dumped
    for k, e in live.decoded.items():
        p = _packed(pk, e) if e.set in pk.index else e  # read as objects (nft's listing, a fake)
        if isinstance(p, bytes):
            read.setdefault(p[0], []).append(p)
        else:
            objects[k] = e
    for name, (lay, raws) in raw.items():
        if name not in pk.index:
            for e in (decode_element(lay, r, 4, len(r)) for r in raws):
                objects[(e.set, e.key)] = e
    added: dict[int, list[bytes]] = {}
    removed: dict[int, list[bytes]] = {}
    for i, name in enumerate(pk.names):
        w = want.get(i, [])
        have = set(read.get(i, ()))
        if name in raw:
            have.update(map(pk.prefixes[i].__add__, raw[name][1]))
        if len(have) == len(w) and have.issuperset(w):  # w holds no duplicates
            continue
        ws = set(w)
        added[i], removed[i] = sorted(ws - have), sorted(have - ws)
    return added, removed, objects


def _packed(pk: Packer, e: Element) -> Planned:
    """A live element packed, or as it is if it does not fit (a set defined otherwise by an
    earlier layout: the table is then recreated, see :func:`_layout_differs`)."""
    try:
        return pk.pack(e)
    except (NftError, OSError, ValueError, KeyError, TypeError, struct.error):
        return e


def _layout_differs(others: list[Chain | Set], live: Ruleset) -> bool:
    """A live set, or base chain, made otherwise than planned (or without a digest): the
    kernel changes neither in place (a set's type, a hook's priority; an ``add chain`` does
    not reset a policy), so the table is recreated."""
    for o in others:
        if isinstance(o, Set):
            found = live.sets.get(o.name)
        else:
            found = live.chains.get(o.name) if o.hook is not None else None
        if found is not None and found != digest(o):
            return True
    return False
