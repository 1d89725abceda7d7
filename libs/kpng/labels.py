"""Kubernetes label selectors (``a=b,c!=d,!e,f in (g,h)``), parsed as the API server does."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass


class InvalidSelector(ValueError):
    """A label selector that does not parse; the message quotes the clause."""


_KEY = r"[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?"
_VALUE = r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_SET_RE = re.compile(rf"^\s*({_KEY})\s+(in|notin)\s*\(([^)]*)\)\s*$")
_OP_RE = re.compile(rf"^\s*({_KEY})\s*(==|!=|=|>|<)\s*({_VALUE})\s*$")
_EXISTS_RE = re.compile(rf"^\s*(!?)\s*({_KEY})\s*$")
_VALUE_RE = re.compile(rf"^{_VALUE}$")


@dataclass(frozen=True, slots=True)
class Requirement:
    """One clause of a label selector: ``key op values``."""

    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!", ">", "<"
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        has = self.key in labels
        value = labels.get(self.key)
        if self.op == "exists":
            return has
        if self.op == "!":
            return not has
        if self.op in ("=", "in"):
            return has and value in self.values
        if self.op in ("!=", "notin"):
            return not has or value not in self.values
        return has and _compare(value, self.op, next(iter(self.values)))


def _compare(value: str | None, op: str, bound: str) -> bool:
    try:
        left, right = int(value or ""), int(bound)
    except ValueError:
        return False
    return left > right if op == ">" else left < right


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """A conjunction of requirements; the empty selector matches everything."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements


def _split_clauses(text: str) -> list[str]:
    clauses: list[str] = []
    depth, start = 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            clauses.append(text[start:i])
            start = i + 1
    clauses.append(text[start:])
    return [c for c in clauses if c.strip()]


def _parse_clause(clause: str) -> Requirement:
    if m := _SET_RE.match(clause):
        values = frozenset(v.strip() for v in m.group(4).split(",") if v.strip())
        if not all(_VALUE_RE.match(v) for v in values):
            raise InvalidSelector(f"invalid value in label selector: {clause!r}")
        return Requirement(m.group(1), m.group(3), values)
    if m := _OP_RE.match(clause):
        op = "=" if m.group(3) == "==" else m.group(3)
        if op in (">", "<") and not m.group(4).isdigit():
            raise InvalidSelector(f"invalid label selector {clause!r}: value must be an integer")
        return Requirement(m.group(1), op, frozenset({m.group(4)}))
    if m := _EXISTS_RE.match(clause):
        return Requirement(m.group(2), "!" if m.group(1) else "exists")
    raise InvalidSelector(f"unable to parse requirement: {clause!r}")


def parse_label_selector(text: str | None) -> LabelSelector:
    """Parse ``a=b,c!=d,!e,f in (g,h)``; raise :class:`InvalidSelector` when malformed."""
    if not text or not text.strip():
        return LabelSelector()
    return LabelSelector(tuple(_parse_clause(c) for c in _split_clauses(text)))
