"""The dump backend: writes the node's view as JSON after each applied batch, atomically."""

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

    async def program(self, event: Applied[ViewEndpoint], full: bool) -> None:
        document = view_to_json(self.node, event.epoch, event.seq, event.view)
        write_atomically(self.path, json.dumps(document, indent=1, sort_keys=True) + "\n")

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
