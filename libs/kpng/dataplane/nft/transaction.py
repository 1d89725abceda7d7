"""A transaction: typed operations on one table, validated as they are added, run all at once.

After knftables: callers collect operations, an :class:`Nftables` implementation runs them
atomically (``nft -f`` runs one script as one netlink batch) or not at all.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from itertools import repeat
from typing import Literal, NamedTuple, Protocol

from kpng.dataplane.nft.netlink.codec import Layout, decode_element
from kpng.dataplane.nft.objects import Chain, Element, Key, NftError, Set, Table, check_element

Verb = Literal["add", "delete", "flush"]
DIGESTS = "chain_digests"  # a set whose element comments record each chain's digest


def digest(obj: Chain | Set) -> str:
    return str(zlib.crc32(obj.text.encode() + obj.name.encode()))


def digest_element(obj: Chain | Set) -> Element:
    """Records what a chain or set was created as, since nft cannot list that back as written."""
    return Element(
        DIGESTS, (digest(obj),), comment=obj.name if isinstance(obj, Chain) else f"set:{obj.name}"
    )


class Op(NamedTuple):
    verb: Verb
    obj: Table | Chain | Set | Element


Packed = tuple[Verb, Layout, list[bytes]]
"""A run of packed elements of one set (:mod:`kpng.dataplane.nft.packed`): a set index byte, then
the ``NFTA_LIST_ELEM`` as sent; a delete sends the key only."""


def unpacked(run: Packed) -> Iterator[Op]:
    verb, lay, elements = run
    for p in elements:
        yield Op(verb, decode_element(lay, p, 5, len(p)))


@dataclass(slots=True)
class Transaction:
    """Operations in order, and runs of packed elements: their deletes come before the
    operations, their adds after (the planner's bulk path)."""

    table: Table
    ops: list[Op] = field(default_factory=list)
    packed: list[Packed] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ops) + sum(len(r[2]) for r in self.packed)

    def __iter__(self) -> Iterator[Op]:
        """Every operation in the order it applies; packed elements decoded."""
        for run in self.packed:
            if run[0] == "delete":
                yield from unpacked(run)
        yield from self.ops
        for run in self.packed:
            if run[0] != "delete":
                yield from unpacked(run)

    def add(self, obj: Table | Chain | Set | Element) -> None:
        if isinstance(obj, Table) and obj != self.table:
            raise NftError(f"table {obj.ref} in a transaction on {self.table.ref}")
        if type(obj) is Element:
            check_element(obj)
        self.ops.append(Op("add", obj))

    def extend(self, verb: Verb, objs: Iterable[Chain | Set | Element]) -> None:
        """Many operations of one verb, in order; elements are checked as by :meth:`add`.
        The planner's bulk path (a full sync adds ~170k elements at 10k services)."""
        objs = list(objs)
        if verb == "add":
            for o in objs:
                if type(o) is Element:
                    check_element(o)
        self.ops.extend(map(Op._make, zip(repeat(verb), objs)))

    def delete(self, obj: Table | Chain | Set | Element) -> None:
        self.ops.append(Op("delete", obj))

    def flush(self, obj: Chain | Set) -> None:
        self.ops.append(Op("flush", obj))

    def script(self) -> str:
        """The transaction as an ``nft -f`` script. Added chains are declared first, so
        rules may jump to chains added later in the same transaction."""
        ops = list(self)
        declare = [
            next(iter(_chain_lines(self.table.ref, "add", op.obj)))
            for op in ops
            if op.verb == "add" and isinstance(op.obj, Chain)
        ]
        first = [op for op in ops if isinstance(op.obj, Table)]
        rest = [op for op in ops if not isinstance(op.obj, Table)]
        lines = [line for op in first for line in _lines(self.table, op)]
        lines += declare + _batched(self.table, rest)
        return "".join(f"{line}\n" for line in lines)


def _lines(table: Table, op: Op) -> Iterable[str]:
    t, obj = table.ref, op.obj
    if isinstance(obj, Table):
        yield f"{op.verb} table {t}"
    elif isinstance(obj, Chain):
        yield from _chain_lines(t, op.verb, obj)
    elif isinstance(obj, Set):
        kind = "map" if obj.is_map else "set"
        body = f" {{ {obj.text} }}" if op.verb == "add" else ""
        yield f"{op.verb} {kind} {t} {obj.name}{body}"
    elif op.verb == "add":
        yield f"add element {t} {obj.set} {{ {obj.text} }}"
    else:
        yield f"delete element {t} {obj.set} {{ {' . '.join(obj.key)} }}"


def _batched(table: Table, ops: list[Op]) -> list[str]:
    """Lines for ``ops``, with runs of element operations on one set in one command."""
    out: list[str] = []
    run: list[str] = []
    head = ""
    for op in ops:
        obj = op.obj
        if isinstance(obj, Element):
            text = obj.text if op.verb == "add" else " . ".join(obj.key)
            h = f"{op.verb} element {table.ref} {obj.set}"
            if h != head and run:
                out.append(f"{head} {{ {', '.join(run)} }}")
                run = []
            head = h
            run.append(text)
            continue
        if run:
            out.append(f"{head} {{ {', '.join(run)} }}")
            run, head = [], ""
        out.extend(_lines(table, op))
    if run:
        out.append(f"{head} {{ {', '.join(run)} }}")
    return out


def _chain_lines(t: str, verb: Verb, chain: Chain) -> Iterable[str]:
    if verb != "add":
        yield f"{verb} chain {t} {chain.name}"
        return
    body = f" {{ {chain.hook.text} }}" if chain.hook else ""
    yield f"add chain {t} {chain.name}{body}"
    yield f"flush chain {t} {chain.name}"
    for rule in chain.rules:
        yield f"add rule {t} {chain.name} {rule}"


@dataclass(frozen=True, slots=True)
class Ruleset:
    """What a table holds: chains and sets by name (as digests; ``""`` when unknown), which
    sets are maps, elements read as objects by (set, key) and, per set read over netlink,
    its elements as sent (``NFTA_LIST_ELEM``, not decoded) with the set's layout: ``first``
    those read when the table was returned (always ``pick`` and ``chain_digests``), ``rest``
    the sets a worker thread is still dumping, while the caller plans (see :attr:`raw`)."""

    table: Table
    chains: Mapping[str, str]
    sets: Mapping[str, str]
    maps: frozenset[str]
    decoded: Mapping[tuple[str, Key], Element]
    first: Mapping[str, tuple[Layout, list[bytes]]] = field(default_factory=dict)
    rest: Future[Mapping[str, tuple[Layout, list[bytes]]]] | None = None

    @property
    def raw(self) -> Mapping[str, tuple[Layout, list[bytes]]]:
        """Every set read over netlink: ``first`` and, once dumped (waited for here; its
        error raised here), ``rest``."""
        if self.rest is None:
            return self.first
        return {**self.first, **self.rest.result()}

    @property
    def elements(self) -> Mapping[tuple[str, Key], Element]:
        """Every element as an object (raw ones decoded now: for tests and tools)."""
        if not self.raw:
            return self.decoded
        out = dict(self.decoded)
        for lay, elements in self.raw.values():
            for raw in elements:
                e = decode_element(lay, raw, 4, len(raw))
                out[(e.set, e.key)] = e
        return out


class Nftables(Protocol):
    """The seam to the dataplane: run a transaction atomically; read a table back."""

    async def run(self, tx: Transaction) -> None: ...

    async def read(self, table: Table) -> Ruleset | None: ...
