"""Subject names of bus contract v1."""

from __future__ import annotations

from dataclasses import dataclass

from kpng.model import name_problem, shown_name

DEFAULT_PREFIX = "kpng"


def is_cast_id(id: str) -> bool:
    """A cast's id: 16 lowercase hex digits (it becomes a subject token)."""
    return len(id) == 16 and not id.strip("0123456789abcdef")


@dataclass(frozen=True, slots=True)
class Subjects:
    """All subjects under one prefix (default ``kpng``)."""

    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        if not self.prefix or any(c in self.prefix for c in " *>\t\r\n"):
            raise ValueError(f"invalid subject prefix {self.prefix!r}")

    @staticmethod
    def token(node: str) -> str:
        """A node name as one subject token (``.`` becomes ``_``, which node names never hold).

        ValueError for anything but a Kubernetes name (:func:`kpng.model.name_problem`):
        callers validate names where they enter, so this is a last line of defence."""
        problem = name_problem(node)
        if problem:
            raise ValueError(f"invalid node name {shown_name(node)}: {problem}")
        return node.replace(".", "_")

    def node_delta(self, node: str) -> str:
        return f"{self.prefix}.v1.node.{self.token(node)}.delta"

    def node_snapshot(self, node: str) -> str:
        return f"{self.prefix}.v1.node.{self.token(node)}.snapshot"

    def node_status(self, node: str) -> str:
        return f"{self.prefix}.v1.node.{self.token(node)}.status"

    @property
    def all_status(self) -> str:
        return f"{self.prefix}.v1.node.*.status"

    @property
    def all_deltas(self) -> str:
        return f"{self.prefix}.v1.node.*.delta"

    @property
    def all_snapshots(self) -> str:
        return f"{self.prefix}.v1.node.*.snapshot"

    @property
    def global_delta(self) -> str:
        return f"{self.prefix}.v1.global.delta"

    @property
    def global_snapshot(self) -> str:
        return f"{self.prefix}.v1.global.snapshot"

    def cast(self, id: str) -> str:
        """Where the watcher publishes the cast ``id`` (a zone's part of node snapshots)."""
        if not is_cast_id(id):
            raise ValueError(f"invalid cast id {shown_name(id)}")
        return f"{self.prefix}.v1.cast.{id}"

    @property
    def all_casts(self) -> str:
        return f"{self.prefix}.v1.cast.*"

    @property
    def watcher_status(self) -> str:
        """The watcher's own condition (JSON, :mod:`kpng.bus.watcher_status`)."""
        return f"{self.prefix}.v1.watcher.status"

    def node_of(self, subject: str) -> str:
        """The node token of a ``<prefix>.v1.node.<node>.<kind>`` subject."""
        parts = subject.split(".")
        base = len(self.prefix.split("."))
        if len(parts) != base + 4 or parts[base : base + 2] != ["v1", "node"]:
            raise ValueError(f"not a node subject: {subject!r}")
        return parts[base + 2]

    def node_name_of(self, subject: str) -> str | None:
        """The node name of a ``<prefix>.v1.node.<node>.<kind>`` subject; None when the
        subject is not one or its token is no valid node name (see :meth:`token`)."""
        try:
            node = self.node_of(subject).replace("_", ".")
        except ValueError:
            return None
        return None if name_problem(node) else node
