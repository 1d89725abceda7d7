"""The dump backend: writes the node's view as JSON after each applied batch, atomically.

Only when the view changed: an event that changes nothing (a rebase to a new watcher's
epoch, an empty catch-up, a full snapshot of the view already written) writes nothing, so
the file keeps the epoch and seq of the last change (as any dataplane keeps what it has).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

from kpng.bus.consumer import Applied
from kpng.dataplane.claims import Conflict
from kpng.dataplane.plugin import SHARED_HOST, BackendArgumentError, BackendPlugin, Plugin
from kpng.model import ViewEndpoint
from kpng.observe.viewjson import view_to_json


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class DumpBackend:
    name = "dump"
    conflicts: tuple[Conflict, ...] = ()  # the dump writes the view as it is

    def __init__(self, node: str, path: str | Path) -> None:
        self.node = node
        self.path = Path(path)
        self.writes = 0
        self._written: str | None = None  # the view last written (without epoch and seq)

    async def program(self, event: Applied[ViewEndpoint], full: bool) -> None:
        if not full and not event.ops and self._written is not None:
            return  # a rebase or an empty catch-up: the view written is the view
        document = view_to_json(self.node, event.epoch, event.seq, event.view)
        view = json.dumps(
            {k: v for k, v in document.items() if k not in ("epoch", "seq")}, sort_keys=True
        )
        if view == self._written:
            return  # a full sync of the same view (a snapshot at a new epoch, a retry)
        write_atomically(self.path, json.dumps(document, indent=1, sort_keys=True) + "\n")
        self._written = view
        self.writes += 1

    async def close(self) -> None:
        return None


def add_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--dump-file", help="with --backend dump: where to write the view as JSON")


def build(args: argparse.Namespace, node: str) -> DumpBackend:
    if not args.dump_file:
        raise BackendArgumentError("--backend dump needs --dump-file PATH")
    return DumpBackend(node, args.dump_file)


PLUGIN: BackendPlugin = Plugin(
    name="dump",
    summary="writes the node's view as JSON",
    build=build,
    add_arguments=add_arguments,
    servers=SHARED_HOST,
)
