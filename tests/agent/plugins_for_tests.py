"""Backend plugins, good and broken, that the registry tests name in their entry points."""

from __future__ import annotations

import argparse

from kpng.bus.consumer import Applied
from kpng.dataplane.claims import Conflict
from kpng.dataplane.plugin import KUBE_PROXY, BackendArgumentError, Plugin
from kpng.model import ViewEndpoint

CLEANED: list[list[str]] = []


class RecordingBackend:
    name = "recording"
    conflicts: tuple[Conflict, ...] = ()

    def __init__(self, node: str, label: str) -> None:
        self.node = node
        self.label = label
        self.programmed: list[tuple[int, bool]] = []

    async def program(self, event: Applied[ViewEndpoint], full: bool) -> None:
        self.programmed.append((event.seq, full))

    async def close(self) -> None:
        return None


def add_label(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--recording-label", default="none", help="a label")


def build_recording(args: argparse.Namespace, node: str) -> RecordingBackend:
    if args.recording_label == "missing":
        raise BackendArgumentError("--backend recording needs a real --recording-label")
    return RecordingBackend(node, args.recording_label)


def clean(argv: list[str]) -> int:
    CLEANED.append(argv)
    return 3


RECORDING = Plugin(
    name="recording",
    summary="records what it is asked to program",
    build=build_recording,
    add_arguments=add_label,
    servers=KUBE_PROXY,
    cleanup=clean,
)


def steal_node_flag(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--node", help="clashes with the agent's own flag")


def fail(args: argparse.Namespace, node: str) -> RecordingBackend:
    raise RuntimeError("no dataplane here")


CLASHING = Plugin(
    name="clashing", summary="adds a flag the agent has", build=fail, add_arguments=steal_node_flag
)
FAILING = Plugin(name="failing", summary="fails to build", build=fail)
MISNAMED = Plugin(name="something-else", summary="named otherwise", build=fail)
NOT_A_PLUGIN = object()
CLEANUP_AS_NFTABLES = Plugin(
    name="nftables", summary="stands for nftables", build=fail, cleanup=clean
)
