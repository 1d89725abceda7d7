"""The seam between the agent and an installable backend: a :class:`BackendPlugin`.

A plugin is an object registered under the ``kpng.backends`` entry-point group (see
docs/backends.md). The agent loads every registered plugin when it builds its command line:
loading must stay cheap (a plugin module imports its heavy dependencies inside ``build``), so
that choosing one backend never pays for another.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from kpng.dataplane.backend import Backend

ENTRY_POINT_GROUP = "kpng.backends"


class BackendArgumentError(Exception):
    """Raised by ``build`` when the flags given cannot make the backend (a usage error: the
    agent prints it with its usage and exits 2), e.g. a required flag is missing."""


@dataclass(frozen=True, slots=True)
class ServerDefaults:
    """What the agent's health, metrics and conntrack flags mean when they are not given."""

    healthz: str  # HOST:PORT of /healthz and /livez; "": off
    metrics: str  # HOST:PORT of /metrics and /proxyMode; "": off
    health_check_host: str  # where healthCheckNodePort servers listen; "": none
    conntrack_cleanup: bool  # what --conntrack-cleanup auto means


# kube-proxy's: for a backend that is the node's service proxy
KUBE_PROXY = ServerDefaults("0.0.0.0:10256", "127.0.0.1:10249", "0.0.0.0", conntrack_cleanup=True)
# for a backend of which several agents share one machine: free loopback ports, nothing else
SHARED_HOST = ServerDefaults("127.0.0.1:0", "127.0.0.1:0", "", conntrack_cleanup=False)


@runtime_checkable
class BackendPlugin(Protocol):
    """What an entry point of the ``kpng.backends`` group must name."""

    @property
    def name(self) -> str:
        """The ``--backend`` value; equal to the entry point's name."""
        ...

    @property
    def summary(self) -> str:
        """One line for ``--help``."""
        ...

    @property
    def servers(self) -> ServerDefaults: ...

    @property
    def cleanup(self) -> Callable[[list[str]], int] | None:
        """``kpng-agent cleanup --backend NAME ARGS...``: removes what the backend left on the
        node, given the remaining arguments; returns the exit status. None: nothing to remove."""
        ...

    def add_arguments(self, group: argparse._ArgumentGroup) -> None:
        """Adds the backend's own flags to the agent's parser (a group titled after it)."""
        ...

    def build(self, args: argparse.Namespace, node: str) -> Backend:
        """The backend for ``node`` from the parsed flags; may raise BackendArgumentError."""
        ...


def no_arguments(group: argparse._ArgumentGroup) -> None:
    return None


@dataclass(frozen=True, slots=True)
class Plugin:
    """A :class:`BackendPlugin` made of functions, the usual way to write one."""

    name: str
    summary: str
    build: Callable[[argparse.Namespace, str], Backend]
    add_arguments: Callable[[argparse._ArgumentGroup], None] = no_arguments
    servers: ServerDefaults = SHARED_HOST
    cleanup: Callable[[list[str]], int] | None = None
