"""What a cluster source (a YAML file, the Kubernetes API) tells the watcher.

A source is an async iterator of events. It announces :class:`Synced` once its initial
load is complete: the watcher publishes nothing before every source has.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

from kpng.model import Object


@dataclass(frozen=True, slots=True)
class Replace:
    """The whole current set of objects of ``kinds`` (an initial list, a relist, a file)."""

    objects: tuple[Object, ...]
    kinds: frozenset[str] = frozenset({"Service", "EndpointSlice", "Node"})


@dataclass(frozen=True, slots=True)
class Upsert:
    obj: Object


@dataclass(frozen=True, slots=True)
class Delete:
    kind: str
    key: str


@dataclass(frozen=True, slots=True)
class Synced:
    """The source's initial load is complete."""


SourceEvent = Replace | Upsert | Delete | Synced


@dataclass(slots=True)
class SourceStats:
    invalid_objects: dict[str, int] = field(default_factory=dict)
    load_errors: int = 0
    loads: int = 0

    def count_invalid(self, kind: str) -> None:
        self.invalid_objects[kind] = self.invalid_objects.get(kind, 0) + 1


class Source(Protocol):
    stats: SourceStats

    def events(self) -> AsyncIterator[SourceEvent]: ...
