"""kpng-watcher: reads Services, EndpointSlices and Nodes and publishes node views."""

from __future__ import annotations

import argparse
import logging
import sys

from kpng.bus.connection import BusError, connect
from kpng.runtime import add_common_arguments, positive_float, run, setup_logging
from kpng.source import Source

from kpng_watcher.file_source import FileSource
from kpng_watcher.publisher import Publisher, PublisherSettings

log = logging.getLogger("kpng_watcher")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="kpng-watcher",
        description="Watch a cluster source and publish each node's view to NATS.",
    )
    p.add_argument(
        "--source",
        required=True,
        help="file:PATH (Kubernetes objects as YAML; reloaded on change) or kube",
    )
    p.add_argument("--kubeconfig", help="with --source kube: kubeconfig (default: in-cluster)")
    p.add_argument(
        "--coalesce-ms",
        type=positive_float,
        default=100.0,
        help="gather changes for at most this long before publishing (default: %(default)s)",
    )
    p.add_argument(
        "--tick-interval",
        type=positive_float,
        default=1.0,
        help="seconds between idle ticks carrying each node's seq (default: %(default)s)",
    )
    add_common_arguments(p)
    return p


def make_source(args: argparse.Namespace, p: argparse.ArgumentParser) -> Source:
    kind, _, rest = args.source.partition(":")
    if kind == "file" and rest:
        return FileSource(rest)
    p.error(f"--source {args.source!r}: expected file:PATH")
    raise AssertionError  # p.error exits


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    setup_logging(args.log_level)
    source = make_source(args, p)
    if args.tick_interval <= 0:
        p.error("--tick-interval must be positive")
    settings = PublisherSettings(coalesce=args.coalesce_ms / 1000, tick_interval=args.tick_interval)

    async def serve() -> None:
        bus = await connect(args.nats, name="kpng-watcher", prefix=args.prefix)
        try:
            await Publisher(bus, source, settings).run()
        finally:
            await bus.close()

    try:
        return run(serve)
    except BusError as exc:
        log.error("%s", exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
