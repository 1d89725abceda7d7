"""kpng-watcher: reads Services, EndpointSlices and Nodes and publishes node views."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from prometheus_client import CollectorRegistry

from kpng.bus.flags import add_bus_arguments, bus_auth
from kpng.bus.nats import connect
from kpng.bus.protocol import BusError
from kpng.runtime.clock import SYSTEM
from kpng.runtime.config import parse_args
from kpng.runtime.kubeclient import KubeConfigError, api_client
from kpng.runtime.metrics import LabelledGaugeCollector, PermissionViolations, StatsCollector
from kpng.runtime.metrics import serve as serve_metrics
from kpng.runtime.process import add_common_arguments, host_port, positive_float, run, setup_logging
from kpng.runtime.procmetrics import register_process_metrics
from kpng.source import Source
from kpng_watcher.announce import announce
from kpng_watcher.election import ElectionTiming, Elector
from kpng_watcher.file_source import FileSettings, FileSource, FileSourceStats
from kpng_watcher.kube_lease import KubeLeaseLock
from kpng_watcher.kube_source import KubeSettings, KubeSource
from kpng_watcher.kube_watch import WatchSettings
from kpng_watcher.leader import LeaderElection, default_namespace, identity
from kpng_watcher.leader_flags import add_election_arguments, election_timing
from kpng_watcher.publisher import Publisher, PublisherSettings

log = logging.getLogger(__name__)


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
        "--service-proxy-name",
        default="",
        metavar="NAME",
        help="with --source kube: serve only the services labelled "
        "service.kubernetes.io/service-proxy-name=NAME (default: only unlabelled ones)",
    )
    p.add_argument(
        "--watch-idle-timeout",
        type=positive_float,
        default=120.0,
        metavar="SECONDS",
        help="with --source kube: restart a watch that brought nothing, not even a bookmark, "
        "for this long (default: %(default)s)",
    )
    p.add_argument(
        "--file-max-removal",
        type=share,
        default=0.5,
        metavar="SHARE",
        help="with --source file: a reload removing more than this share of the services "
        "(0-1) is held back until the file stays unchanged for --file-hold-seconds "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--file-hold-seconds",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="with --source file: how long a held-back reload must stay unchanged "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--file-allow-removal",
        action="store_true",
        help="with --source file: never hold a reload back, however much it removes",
    )
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
        help="a node that went quiet after a delta gets a tick with its seq within this many "
        "seconds, so a lost last delta is noticed (default: %(default)s)",
    )
    p.add_argument(
        "--tick-refresh",
        type=positive_float,
        default=30.0,
        help="seconds between ticks to every served node, changed or not: the epoch's "
        "heartbeat (default: %(default)s)",
    )
    p.add_argument(
        "--history",
        type=int,
        default=256,
        metavar="BATCHES",
        help="per node, answer a resyncing agent with only the deltas it missed if they are "
        "among the last BATCHES published (0: always a full snapshot; default: %(default)s)",
    )
    p.add_argument(
        "--max-unknown-nodes",
        type=int,
        default=64,
        metavar="N",
        help="serve at most N nodes that have no Node object but whose agents ask (each is "
        "retired after 10 minutes without a request or status; default: %(default)s)",
    )
    p.add_argument(
        "--no-casts",
        action="store_true",
        help="send every node snapshot whole instead of offering its zone's part as a cast "
        "(published once for all the agents that wait for it): agents then cannot hear "
        "other zones' parts, at the cost of the zone part once per node in a storm",
    )
    p.add_argument(
        "--metrics-bind-address",
        type=host_port,
        metavar="HOST:PORT",
        help="serve Prometheus metrics on http://HOST:PORT/metrics (default: off)",
    )
    add_election_arguments(p)
    add_bus_arguments(p)
    add_common_arguments(p)
    return p


def metrics_registry(publisher: Publisher, source: Source) -> CollectorRegistry:
    """``kpng_watcher_*`` counters, read from the publisher's and the source's stats."""
    registry = CollectorRegistry()
    registry.register(StatsCollector("kpng_watcher_fanout", lambda: publisher.fanout.stats))
    registry.register(
        StatsCollector(
            "kpng_watcher_publisher",
            lambda: publisher.stats,
            gauges=frozenset({"last_publish_duration"}),
        )
    )
    registry.register(
        StatsCollector(
            "kpng_watcher_source", lambda: source.stats, gauges=frozenset({"reload_held"})
        )
    )
    registry.register(PermissionViolations(lambda: publisher.bus.permission_violations))
    registry.register(
        LabelledGaugeCollector(
            "kpng_watcher_invalid_objects_total",
            "Objects skipped as invalid, by kind",
            "kind",
            lambda: source.stats.invalid_objects,
        )
    )
    stats = source.stats
    if isinstance(stats, FileSourceStats):
        registry.register(
            LabelledGaugeCollector(
                "kpng_watcher_stale_objects_total",
                "Invalid objects whose last good version is kept, by kind (at the last load)",
                "kind",
                lambda: stats.stale_objects,
            )
        )
    return registry


def share(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a share between 0 and 1")
    return value


def make_source(args: argparse.Namespace, p: argparse.ArgumentParser) -> Source:
    kind, _, rest = args.source.partition(":")
    if kind == "kube" and not rest:
        if args.kubeconfig is not None and not os.path.isfile(args.kubeconfig):
            p.error(f"--kubeconfig {args.kubeconfig!r}: no such file")
        if args.watch_idle_timeout <= 0:
            p.error("--watch-idle-timeout must be positive")
        watch = WatchSettings(idle_timeout=args.watch_idle_timeout)
        return KubeSource(KubeSettings(args.kubeconfig, args.service_proxy_name, watch))
    if args.kubeconfig is not None or args.service_proxy_name:
        p.error("--kubeconfig and --service-proxy-name need --source kube")
    if kind == "file" and rest:
        if args.file_hold_seconds < 0:
            p.error("--file-hold-seconds must not be negative")
        settings = FileSettings(
            max_removal=args.file_max_removal,
            hold_seconds=args.file_hold_seconds,
            allow_removal=args.file_allow_removal,
        )
        return FileSource(rest, settings=settings)
    p.error(f"--source {args.source!r}: expected file:PATH or kube")
    raise AssertionError  # p.error exits


async def run_publisher(
    publisher: Publisher,
    kube: KubeSource | None,
    timing: ElectionTiming | None,
    args: argparse.Namespace,
) -> None:
    """The publisher alone, or gated by the election (a standby until it leads)."""
    if kube is None or timing is None:
        await publisher.run()
        return
    namespace = args.leader_elect_resource_namespace or default_namespace()
    # a client of its own: renewals never wait behind the watches, and the lease can still
    # be released when the source has closed its client on shutdown
    api = await api_client(kube.settings.kubeconfig)
    try:
        lock = KubeLeaseLock(api, args.leader_elect_resource_name, namespace)
        election = LeaderElection(lock, Elector(identity(), timing), SYSTEM)
        election.on_change = lambda leading: publisher.take_over() if leading else None
        publisher.gate = election.is_leader
        log.info("leader election on lease %s/%s", namespace, lock.name)
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(election.run())
            tasks.create_task(publisher.run())
    finally:
        await api.close()


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = parse_args(p, argv)
    setup_logging(args.log_level, args.logging_format)
    auth = bus_auth(args, p)
    source = make_source(args, p)
    timing = election_timing(args, p)
    if args.tick_interval <= 0:
        p.error("--tick-interval must be positive")
    settings = PublisherSettings(
        coalesce=args.coalesce_ms / 1000,
        tick_interval=args.tick_interval,
        tick_refresh=args.tick_refresh,
        history=args.history,
        max_unknown_nodes=args.max_unknown_nodes,
        casts=not args.no_casts,
    )

    async def serve() -> None:
        kube = source if isinstance(source, KubeSource) else None
        if kube is not None:
            await kube.connect()  # a bad kubeconfig fails here, clearly, before anything runs
        try:
            bus = await connect(args.nats, name="kpng-watcher", prefix=args.prefix, auth=auth)
            publisher = Publisher(bus, source, settings, SYSTEM)
            server = None
            if args.metrics_bind_address is not None:
                host, port = args.metrics_bind_address
                registry = metrics_registry(publisher, source)
                register_process_metrics(registry)
                server, _ = serve_metrics(registry, host, port)
                log.info("metrics on http://%s:%d/metrics", host, server.server_port)
            try:
                async with asyncio.TaskGroup() as tasks:
                    tasks.create_task(run_publisher(publisher, kube, timing, args))
                    interval = settings.tick_interval
                    status = announce(
                        bus, publisher.epoch, source.stats, SYSTEM, interval, publisher.gate
                    )
                    tasks.create_task(status)
            finally:
                if server is not None:
                    server.shutdown()
                await bus.close()
        finally:
            if kube is not None:
                await kube.close()

    try:
        return run(serve)
    except (BusError, KubeConfigError) as exc:
        log.error("%s", exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
