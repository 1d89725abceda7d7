"""Label and field selectors, parsed as the API server parses them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kpng_apisim.errors import ApiError

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

    def matches_object(self, obj: Mapping[str, Any]) -> bool:
        return self.matches(obj.get("metadata", {}).get("labels"))

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
            raise ApiError(400, f"invalid value in label selector: {clause!r}")
        return Requirement(m.group(1), m.group(3), values)
    if m := _OP_RE.match(clause):
        op = "=" if m.group(3) == "==" else m.group(3)
        if op in (">", "<") and not m.group(4).isdigit():
            raise ApiError(400, f"invalid label selector {clause!r}: value must be an integer")
        return Requirement(m.group(1), op, frozenset({m.group(4)}))
    if m := _EXISTS_RE.match(clause):
        return Requirement(m.group(2), "!" if m.group(1) else "exists")
    raise ApiError(400, f"unable to parse requirement: {clause!r}")


def parse_label_selector(text: str | None) -> LabelSelector:
    """Parse ``a=b,c!=d,!e,f in (g,h)``; raise a 400 ``ApiError`` when malformed."""
    if not text or not text.strip():
        return LabelSelector()
    return LabelSelector(tuple(_parse_clause(c) for c in _split_clauses(text)))


@dataclass(frozen=True, slots=True)
class FieldRequirement:
    """``path=value`` or ``path!=value`` on a dotted field path."""

    path: tuple[str, ...]
    value: str
    negate: bool

    def matches(self, obj: Mapping[str, Any]) -> bool:
        current: Any = obj
        for part in self.path:
            current = current.get(part) if isinstance(current, Mapping) else None
        actual = "" if current is None else str(current)
        return (actual != self.value) if self.negate else (actual == self.value)


@dataclass(frozen=True, slots=True)
class FieldSelector:
    """A conjunction of field requirements (any dotted path is accepted)."""

    requirements: tuple[FieldRequirement, ...] = ()

    def matches_object(self, obj: Mapping[str, Any]) -> bool:
        return all(r.matches(obj) for r in self.requirements)


def parse_field_selector(text: str | None) -> FieldSelector:
    """Parse ``metadata.name=foo,spec.type!=ClusterIP``."""
    if not text or not text.strip():
        return FieldSelector()
    reqs: list[FieldRequirement] = []
    for clause in text.split(","):
        if not clause.strip():
            continue
        m = re.match(r"^\s*([A-Za-z0-9_.]+)\s*(==|!=|=)\s*(.*?)\s*$", clause)
        if not m:
            raise ApiError(400, f"invalid field selector: {clause!r}")
        reqs.append(FieldRequirement(tuple(m.group(1).split(".")), m.group(3), m.group(2) == "!="))
    return FieldSelector(tuple(reqs))


@dataclass(frozen=True, slots=True)
class Selector:
    """Label and field selector together."""

    labels: LabelSelector = LabelSelector()
    fields: FieldSelector = FieldSelector()

    def matches(self, obj: Mapping[str, Any] | None) -> bool:
        if obj is None:
            return False
        return self.labels.matches_object(obj) and self.fields.matches_object(obj)

    @property
    def empty(self) -> bool:
        return self.labels.empty and not self.fields.requirements


def parse_selector(labels: str | None, fields: str | None) -> Selector:
    return Selector(parse_label_selector(labels), parse_field_selector(fields))
