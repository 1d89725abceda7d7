"""The seam between the agent and a dataplane: programs a node view."""

from __future__ import annotations

from typing import Protocol

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
