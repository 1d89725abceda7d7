"""The ``counts`` backend's plugin: its flag and its factory.

The agent imports this module to build its command line, whichever backend is chosen, so it
imports only what the flags need; the backend itself is imported by ``build``.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from kpng.dataplane.plugin import SHARED_HOST, BackendArgumentError, BackendPlugin, Plugin

if TYPE_CHECKING:
    from kpng_counts.backend import CountsBackend


def add_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--counts-file", help="with --backend counts: where to write the counts")


def build(args: argparse.Namespace, node: str) -> CountsBackend:
    if not args.counts_file:
        raise BackendArgumentError("--backend counts needs --counts-file PATH")
    from kpng_counts.backend import CountsBackend

    return CountsBackend(node, args.counts_file)


PLUGIN: BackendPlugin = Plugin(
    name="counts",
    summary="writes how many services and endpoints the node's view holds (an example)",
    build=build,
    add_arguments=add_arguments,
    servers=SHARED_HOST,  # free loopback ports for healthz and metrics, no conntrack work
)
