"""A transaction cut into what ``nft -f`` writes and what one netlink batch writes. Pure.

Three steps, each leaving every reference valid:

1. ``nft -f`` (only when there is any): what netlink does not encode here;
2. one netlink batch (all or nothing): a new table, its sets and chains with their rules
   (:mod:`~kpng.dataplane.nft.netlink.definitions`, :mod:`~kpng.dataplane.nft.netlink.rules`),
   the elements of interval sets of addresses, then element deletes, then element adds;
3. ``nft -f`` (only when there is any): chains and sets deleted (at the end of the batch
   when the rest is in it).

When anything of a transaction must go through ``nft`` (an affinity chain or map, a
firewall interval element, a table deleted to be remade), its table, sets and chains go
through ``nft`` too, in the same script (it checks their references), and only the
``pick_<N>_<S>`` chains that no ``nft``-written chain jumps to stay in the batch: the way
every transaction was cut before the skeleton went over netlink. A full sync of a new table
without affinity or source ranges, and every element-only change, start no ``nft``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from kpng.dataplane.nft.netlink.batch import Labelled, Run
from kpng.dataplane.nft.netlink.codec import Layout
from kpng.dataplane.nft.netlink.definitions import (
    delete_message,
    interval_elements,
    set_message,
    table_message,
)
from kpng.dataplane.nft.netlink.exprs import Context
from kpng.dataplane.nft.netlink.rules import encodable
from kpng.dataplane.nft.objects import Chain, Element, Set, Table
from kpng.dataplane.nft.transaction import Op, Transaction


@dataclass(slots=True)
class Steps:
    before: Transaction
    runs: list[Run]
    after: Transaction
    chains: list[Chain] = field(default_factory=list)  # added in the batch, before its runs
    context: Context | None = None  # for the chains' rules beyond the pick chains'
    head: list[Labelled] = field(default_factory=list)  # the table and sets, first
    tail: list[Labelled] = field(default_factory=list)  # interval elements, after the chains
    final: list[Labelled] = field(default_factory=list)  # chains and sets deleted, last


def context(table: Table, sets: Mapping[str, Set]) -> Context:
    """The rules' context: the family, and the interval sets with a concatenated key."""
    swapped = frozenset(
        name for name, s in sets.items() if "interval" in s.flags and " . " in s.type
    )
    return Context(table.family, swapped)


def split(
    tx: Transaction, layouts: dict[str, Layout | None], sets: Mapping[str, Set] | None = None
) -> Steps:
    """The three steps of a transaction (see the module's docstring). ``sets``: the table's
    set definitions, those ``tx`` adds included; without them, only pick chains and plain
    elements go in the batch."""
    if sets is not None:
        steps = _all_netlink(tx, layouts, sets)
        if steps is not None:
            return steps
    return _pick_chains_only(tx, layouts)


def _all_netlink(
    tx: Transaction, layouts: dict[str, Layout | None], sets: Mapping[str, Set]
) -> Steps | None:
    """Everything in the batch; None if anything needs ``nft``."""
    ctx = context(tx.table, sets)
    final: list[Labelled] = []
    head: list[Labelled] = []
    set_ids = 0  # nft numbers the sets a batch makes: 1, 2, ...
    chains: list[Chain] = []
    intervals: dict[str, list[Element]] = {}
    table = tx.table.name
    for op in tx.ops:
        obj = op.obj
        if op.verb == "delete":
            if not isinstance(obj, Chain | Set):
                if type(obj) is not Element or layouts.get(obj.set) is None:
                    return None  # a table, or an interval element: nft
            else:
                kind = "chain" if isinstance(obj, Chain) else "set"
                final.append((delete_message(table, obj), f"delete {kind} {obj.name}"))
        elif type(obj) is Table:
            head.append((table_message(obj.name), f"add table {obj.name}"))
        elif type(obj) is Set:
            set_ids += 1
            found = set_message(table, obj, set_ids)
            if found is None:
                return None
            head.append((found, f"add set {obj.name}"))
        elif type(obj) is Chain:
            if not encodable(obj, ctx):
                return None
            chains.append(obj)
        elif type(obj) is Element and layouts.get(obj.set) is None:
            intervals.setdefault(obj.set, []).append(obj)
    tail: list[Labelled] = []
    for name, elements in intervals.items():
        s = sets.get(name)
        found = interval_elements(table, s, elements) if s is not None else None
        if found is None:
            return None
        tail.append((found, f"add elements to set {name}"))
    steps = _pick_chains_only(tx, layouts)  # the element runs, cut as always
    empty = Transaction(tx.table)
    return Steps(empty, steps.runs, Transaction(tx.table), chains, ctx, head, tail, final)


_TARGET = re.compile(r"\b(?:goto|jump) ([A-Za-z0-9_]+)")


def _pick_chains_only(tx: Transaction, layouts: dict[str, Layout | None]) -> Steps:
    before, after = Transaction(tx.table), Transaction(tx.table)
    runs: list[Run] = []
    adds: list[Run] = []
    chains: dict[str, Chain] = {}
    for op in tx.ops:  # packed runs go after each verb's element runs
        obj = op.obj
        if op.verb == "add" and type(obj) is Chain and encodable(obj):
            chains[obj.name] = obj
            continue
        if type(obj) is Element:
            lay = layouts.get(obj.set)
            if lay is None:
                before.ops.append(op)
                continue
            todo = runs if op.verb == "delete" else adds
            if todo and todo[-1][1] is lay and todo[-1][0] == op.verb:
                todo[-1][2].append(obj)  # type: ignore[arg-type]
            else:
                todo.append((op.verb, lay, [obj]))
        elif op.verb == "delete" and isinstance(obj, Chain | Set):
            after.ops.append(op)
        else:
            before.ops.append(op)
    packed_dels: list[Run] = [r for r in tx.packed if r[0] == "delete"]
    packed_adds: list[Run] = [r for r in tx.packed if r[0] != "delete"]
    _keep_targets(before, chains)
    return Steps(before, runs + packed_dels + adds + packed_adds, after, list(chains.values()))


def _keep_targets(before: Transaction, chains: dict[str, Chain]) -> None:
    """Chains that a rule written by ``nft`` jumps to are written by ``nft`` too (it runs
    before the batch, and refuses a jump to a chain that does not exist yet)."""
    wanted = {
        name
        for op in before.ops
        if op.verb == "add" and isinstance(op.obj, Chain)
        for rule in op.obj.rules
        for name in _TARGET.findall(rule)
        if name in chains
    }
    before.ops.extend(Op("add", chains.pop(name)) for name in sorted(wanted))
