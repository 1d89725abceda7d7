"""kpng-observer: cluster state, node programming status and node views over HTTP."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

import uvicorn

from kpng.bus.auth import BusAuth
from kpng.bus.client import NodeViewClient, SnapshotUnavailable
from kpng.bus.consumer import Consumer
from kpng.bus.flags import add_bus_arguments, bus_auth
from kpng.bus.nats import connect
from kpng.bus.protocol import Bus, BusError
from kpng.dataplane.detectlocal import CLUSTER_CIDR, MODES
from kpng.diff import View
from kpng.model import ViewEndpoint
from kpng.observe.explain import Network, parse_cidrs
from kpng.runtime.clock import SYSTEM
from kpng.runtime.config import parse_args
from kpng.runtime.process import add_common_arguments, host_port, positive_float, run, setup_logging
from kpng.runtime.procmetrics import register_process_metrics
from kpng_observer.api import Settings, create_app
from kpng_observer.auth import check_listen, read_token
from kpng_observer.feed import Feed
from kpng_observer.state import ObserverState

log = logging.getLogger(__name__)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="kpng-observer", description="Serve cluster and per-node kpng state over HTTP."
    )
    p.add_argument(
        "--listen",
        type=host_port,
        default=("127.0.0.1", 8080),
        help="HOST:PORT to serve on (default: 127.0.0.1:8080)",
    )
    p.add_argument(
        "--silent-after",
        type=positive_float,
        default=15.0,
        help="seconds without status after which a node counts as silent (default: %(default)s)",
    )
    p.add_argument(
        "--lag-after",
        type=positive_float,
        default=1.0,
        help="seconds behind the published seq after which a node counts as lagging "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--watcher-tick-interval",
        type=positive_float,
        default=1.0,
        metavar="SECONDS",
        help="the watcher's --tick-interval: after 3 without a tick the watcher counts as "
        "gone (/readyz 503) (default: %(default)s)",
    )
    p.add_argument(
        "--latency-window",
        type=positive_float,
        default=300.0,
        help="default window of the latency percentiles, seconds (default: %(default)s)",
    )
    p.add_argument(
        "--cluster-cidr",
        type=cidrs,
        default=(),
        help="pod network CIDR(s), comma-separated: lets explain tell pod sources (masquerade)",
    )
    p.add_argument(
        "--detect-local-mode",
        choices=MODES,
        default=CLUSTER_CIDR,
        help="the agents' --detect-local-mode, for explain: ClusterCIDR (a pod's source is in "
        "--cluster-cidr; default), NodeCIDR (in the node's own spec.podCIDRs), or "
        "BridgeInterface, InterfaceNamePrefix (by its interface: explain's fromPod)",
    )
    p.add_argument("--token", help="bearer token required by /api and /metrics")
    p.add_argument("--token-file", type=Path, help="read the bearer token from this file")
    p.add_argument(
        "--insecure",
        action="store_true",
        help="allow serving the API without a token on a non-loopback address",
    )
    add_bus_arguments(p)
    add_common_arguments(p)
    return p


def cidrs(text: str) -> tuple[Network, ...]:
    try:
        return parse_cidrs(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


async def fetch_node_view(bus: Bus, node: str) -> tuple[str, int, View[ViewEndpoint]]:
    client = NodeViewClient(bus, node, snapshot_timeout=3.0)
    try:
        chunks = await client.fetch_snapshot()
    except SnapshotUnavailable as exc:
        raise LookupError(str(exc)) from None
    consumer: Consumer[ViewEndpoint] = Consumer()
    consumer.on_snapshot(chunks)
    return consumer.epoch, consumer.seq, consumer.view


async def serve(args: argparse.Namespace, token: str | None, auth: BusAuth) -> None:
    bus = await connect(args.nats, name="kpng-observer", prefix=args.prefix, auth=auth)
    state = ObserverState(
        silent_after=args.silent_after,
        lag_after=args.lag_after,
        watcher_gone_after=3 * args.watcher_tick_interval,
    )
    feed = Feed(bus, state, clock=SYSTEM)
    register_process_metrics(feed.metrics.registry)
    await feed.start()
    settings = Settings(
        token, args.cluster_cidr, args.latency_window, detect_local=args.detect_local_mode
    )
    app = create_app(
        state,
        lambda node: fetch_node_view(bus, node),
        lambda: bus.connected,
        feed.metrics.registry,
        settings,
        clock=SYSTEM.time,
    )
    host, port = args.listen
    # log_config=None: uvicorn's loggers go through ours (--logging-format), not its own
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", lifespan="off", log_config=None
    )
    server = uvicorn.Server(config)
    log.info("observer listening on http://%s:%d", host, port)
    try:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(feed.follow_global())
            tasks.create_task(feed.sweep())
            tasks.create_task(feed.refresh_positions())
            tasks.create_task(server.serve())
    finally:
        await bus.close()


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = parse_args(p, argv)
    setup_logging(args.log_level, args.logging_format)
    auth = bus_auth(args, p)
    try:
        token = read_token(args.token, args.token_file)
        check_listen(args.listen[0], token, args.insecure)
    except (OSError, ValueError) as exc:  # InsecureListen is a ValueError
        log.error("%s", exc)
        return 2
    if token is None and not args.insecure:
        log.info("API open without a token (loopback only)")
    elif token is None:
        log.warning("API open without a token on %s (--insecure)", args.listen[0])
    try:
        return run(lambda: serve(args, token, auth))
    except BusError as exc:
        log.error("%s", exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
