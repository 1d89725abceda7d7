"""FakeNftables: a real in-memory nftables for one or more tables.

It applies a transaction atomically (on any error nothing changes), checks references
(elements need their set, a set or chain in use cannot go, ``goto``/``jump`` targets and
``@set`` references must exist) and dumps sorted text for golden tests.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from kpng.dataplane.nft.objects import Chain, Element, Key, NftError, Set, Table
from kpng.dataplane.nft.transaction import Nftables, Op, Ruleset, Transaction, digest

REF = re.compile(r"(?:goto|jump) (\w+)|@(\w+)")


@dataclass(slots=True)
class _TableState:
    chains: dict[str, Chain] = field(default_factory=dict)
    sets: dict[str, Set] = field(default_factory=dict)
    elements: dict[tuple[str, Key], Element] = field(default_factory=dict)

    def copy(self) -> _TableState:
        return _TableState(dict(self.chains), dict(self.sets), dict(self.elements))


@dataclass(slots=True)
class FakeNftables:
    tables: dict[Table, _TableState] = field(default_factory=dict)
    transactions: int = 0

    async def run(self, tx: Transaction) -> None:
        state = self.tables.get(tx.table)
        work = state.copy() if state is not None else None
        for op in tx:
            work = _apply(tx.table, work, op)
        if work is not None:
            _check_references(work)
            self.tables[tx.table] = work
        else:
            self.tables.pop(tx.table, None)
        self.transactions += 1

    async def read(self, table: Table) -> Ruleset | None:
        state = self.tables.get(table)
        if state is None:
            return None
        chains = {name: digest(chain) for name, chain in state.chains.items()}
        sets = {name: digest(s) for name, s in state.sets.items()}
        maps = frozenset(name for name, s in state.sets.items() if s.is_map)
        return Ruleset(table, chains, sets, maps, dict(state.elements))

    def state(self, table: Table) -> _TableState:
        return self.tables[table]

    def dump(self, table: Table) -> str:
        """The table as sorted text: one line per chain rule, set and element."""
        s = self.tables[table]
        lines = [f"set {x.name} {x.text}" for x in s.sets.values()]
        lines += [f"chain {c.name}: {r}" for c in s.chains.values() for r in c.rules or ("",)]
        lines += [f"element {e.set} {e.text}" for e in s.elements.values()]
        return "\n".join(sorted(lines)) + "\n"


def _apply(table: Table, work: _TableState | None, op: Op) -> _TableState | None:
    obj = op.obj
    if isinstance(obj, Table):
        if op.verb == "add":
            return work if work is not None else _TableState()
        if work is None:
            raise NftError(f"no table {table.ref} to {op.verb}")
        return None if op.verb == "delete" else _TableState()
    if work is None:
        raise NftError(f"no table {table.ref}")
    if isinstance(obj, Chain):
        _apply_chain(work, op.verb, obj)
    elif isinstance(obj, Set):
        _apply_set(work, op.verb, obj)
    else:
        _apply_element(work, op.verb, obj)
    return work


def _apply_chain(work: _TableState, verb: str, chain: Chain) -> None:
    if verb == "add":
        work.chains[chain.name] = chain
    elif chain.name not in work.chains:
        raise NftError(f"no chain {chain.name}")
    elif verb == "delete":
        del work.chains[chain.name]
    else:
        work.chains[chain.name] = Chain(chain.name, (), work.chains[chain.name].hook)


def _apply_set(work: _TableState, verb: str, s: Set) -> None:
    old = work.sets.get(s.name)
    if verb == "add":
        if old is not None and old != s:
            raise NftError(f"set {s.name} exists with another definition")
        work.sets[s.name] = s
        return
    if old is None:
        raise NftError(f"no set {s.name}")
    keys = [k for k in work.elements if k[0] == s.name]
    for k in keys:
        del work.elements[k]
    if verb == "delete":
        del work.sets[s.name]


def _apply_element(work: _TableState, verb: str, e: Element) -> None:
    s = work.sets.get(e.set)
    if s is None:
        raise NftError(f"element {e.text} for missing set {e.set}")
    if verb != "delete" and (e.value is None) == s.is_map:  # a delete names the key only
        raise NftError(f"element {e.text} does not fit {e.set}")
    k = (e.set, e.key)
    old = work.elements.get(k)
    if verb == "delete":
        if old is None:
            raise NftError(f"no element {e.key_text} in {e.set}")
        del work.elements[k]
    elif old is not None and old.value != e.value:
        raise NftError(f"element {e.key_text} in {e.set} exists with another value")
    else:
        work.elements[k] = e


def _check_references(work: _TableState) -> None:
    texts = [(c.name, r) for c in work.chains.values() for r in c.rules]
    texts += [(e.set, " ".join(e.value)) for e in work.elements.values() if e.value]
    for where, text in texts:
        for chain, named_set in REF.findall(text):
            if chain and chain not in work.chains:
                raise NftError(f"{where} refers to missing chain {chain}")
            if named_set and named_set not in work.sets:
                raise NftError(f"{where} refers to missing set {named_set}")


def _check_protocol(fake: FakeNftables) -> Nftables:
    return fake
