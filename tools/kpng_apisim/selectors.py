"""Label and field selectors, parsed as the API server parses them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kpng.labels import InvalidSelector, LabelSelector, Requirement
from kpng.labels import parse_label_selector as _parse_label_selector
from kpng_apisim.errors import ApiError

__all__ = ["LabelSelector", "Requirement", "parse_label_selector"]


def parse_label_selector(text: str | None) -> LabelSelector:
    """Parse a label selector; a malformed one is a 400 ``ApiError``."""
    try:
        return _parse_label_selector(text)
    except InvalidSelector as exc:
        raise ApiError(400, str(exc)) from None


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

    labels: LabelSelector = field(default_factory=LabelSelector)
    fields: FieldSelector = FieldSelector()

    def matches(self, obj: Mapping[str, Any] | None) -> bool:
        if obj is None:
            return False
        labels = obj.get("metadata", {}).get("labels")
        return self.labels.matches(labels) and self.fields.matches_object(obj)

    @property
    def empty(self) -> bool:
        return self.labels.empty and not self.fields.requirements


def parse_selector(labels: str | None, fields: str | None) -> Selector:
    return Selector(parse_label_selector(labels), parse_field_selector(fields))
