"""The seam between the agent and a dataplane: programs a node view."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol, runtime_checkable

from kpng.bus.consumer import Applied
from kpng.dataplane.claims import Conflict
from kpng.model import ViewEndpoint


class Backend(Protocol):
    """A dataplane. ``program`` gets every snapshot and delta in order; a snapshot (or a
    retry after an error) must leave the dataplane equal to ``event.view``."""

    name: str
    # IP:ports that several services claim, as last programmed (see kpng.dataplane.claims): one
    # service keeps each, the others lose only that IP:port
    conflicts: tuple[Conflict, ...]

    async def program(self, event: Applied[ViewEndpoint], full: bool) -> None: ...

    async def close(self) -> None: ...


@runtime_checkable
class PerFamily(Protocol):
    """A backend that says what each IP family's part of its last ``program`` did (kube-proxy's
    metrics are per family, :mod:`kpng.runtime.proxymetrics`). Optional: without it, the
    whole sync counts for every family."""

    # seconds from the start of the last program() to the end of each family's part, for
    # the families it synced: a delta that touches one family's endpoints syncs that family
    # alone, as kube-proxy's proxiers do (none: nothing synced, nothing counted)
    family_seconds: Mapping[int, float]
    failed_families: tuple[int, ...]  # the families whose part of it failed


def family_seconds(backend: Backend, seconds: float, families: Iterable[int]) -> dict[int, float]:
    """Each family's part of the sync that took ``seconds``, as the backend timed them."""
    if isinstance(backend, PerFamily):  # only the families it synced (a delta: maybe none)
        return dict(backend.family_seconds)
    return dict.fromkeys(families, seconds)


def failed_families(backend: Backend, families: Iterable[int]) -> tuple[int, ...]:
    """The families a failed sync failed for, as the backend says (else all of them)."""
    if isinstance(backend, PerFamily) and backend.failed_families:
        return backend.failed_families
    return tuple(families)
