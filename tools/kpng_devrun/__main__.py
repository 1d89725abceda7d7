"""`make run`: kpng on the embedded example.

As root (with ``ip`` and ``nft``), the real thing: the file's nodes become network
namespaces with their pods, NATS, the watcher and the observer run in an infra namespace,
an nftables agent runs in each node, and a command to send a request from an outside client
is printed (see kpng_devrun.netns_run). Otherwise, or with ``--backend dump``: nats-server on
a free or given port, the watcher on the cluster YAML file, one agent per node (dump
backend, with its /healthz and /metrics on free ports), and the observer, all as plain
processes. Prints what runs where; Ctrl-C stops every process it started.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from kpng_devrun.bus import secure_bus
from kpng_devrun.cluster_nodes import nodes_of
from kpng_devrun.netns_run import can_run, run_netns
from kpng_devrun.procs import (
    ProcessGroup,
    free_port,
    free_ports,
    nats_server_argv,
    port_is_free,
    venv_bin,
    wait_for_port,
)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="make run", description=__doc__)
    p.add_argument("--cluster", type=Path, default=Path("examples/cluster.yaml"))
    p.add_argument("--nats-port", type=int, default=0, help="0: a free port")
    p.add_argument("--listen", default="127.0.0.1:8080", help="the observer's HOST:PORT")
    p.add_argument("--workdir", type=Path, default=Path("run"), help="logs and dumps")
    p.add_argument("--prefix", default="kpng")
    p.add_argument(
        "--backend",
        choices=("auto", "nftables", "dump"),
        default="auto",
        help="auto: nftables in network namespaces as root, else dump",
    )
    return p


def start_all(args: argparse.Namespace, group: ProcessGroup) -> dict[str, str]:
    """Start everything; returns what runs where."""
    nats_port = args.nats_port or free_port()
    nodes = nodes_of(args.cluster)
    names = [n.name for n in nodes]
    bus = secure_bus(args.workdir / "bus", "127.0.0.1", nats_port, args.prefix, names)
    group.start("nats-server", nats_server_argv(nats_port, bus.config))
    wait_for_port("127.0.0.1", nats_port)
    prefix = ["--prefix", args.prefix]
    where = {"nats-server": f"{bus.url} (TLS, users and passwords in {bus.directory})"}
    watcher = [venv_bin("kpng-watcher"), "--source", f"file:{args.cluster}"]
    group.start("watcher", [*watcher, *bus.flags("watcher"), *prefix])
    where["watcher"] = f"watching {args.cluster}"
    for node in nodes:
        dump = args.workdir / "dumps" / f"{node.name}.json"
        healthz, metrics = free_ports(2)
        group.start(
            f"agent-{node.name}",
            [
                venv_bin("kpng-agent"),
                "--node",
                node.name,
                "--backend",
                "dump",
                "--dump-file",
                str(dump),
                "--status-interval",
                "2",
                "--healthz-bind-address",
                f"127.0.0.1:{healthz}",
                "--metrics-bind-address",
                f"127.0.0.1:{metrics}",
                *bus.node_flags(node.name),
                *prefix,
            ],
        )
        where[f"agent {node.name}"] = (
            f"dump backend -> {dump}; http://127.0.0.1:{healthz}/healthz, "
            f"http://127.0.0.1:{metrics}/metrics"
        )
    observer = [venv_bin("kpng-observer"), "--listen", args.listen]
    group.start("observer", [*observer, *bus.flags("observer"), *prefix])
    where["observer"] = f"http://{args.listen}/  (API: /api/v1/nodes, OpenAPI: /docs)"
    return where


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    if not args.cluster.exists():
        print(f"make run: {args.cluster} not found", file=sys.stderr)
        return 2
    if not port.isdigit() or not port_is_free(host or "127.0.0.1", int(port)):
        print(
            f"make run: {args.listen} is not free; pick another with "
            f"make run RUN_ARGS='--listen 127.0.0.1:8081'",
            file=sys.stderr,
        )
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if args.backend != "dump":
        why = can_run()
        if not why:
            return run_netns(args)
        if args.backend == "nftables":
            print(f"make run: --backend nftables needs root, ip and nft ({why})", file=sys.stderr)
            return 2
        print(
            f"make run: {why}: falling back to the dump backend (no dataplane; run as root "
            "for nftables in network namespaces)",
            flush=True,
        )
    with ProcessGroup(args.workdir / "logs") as group:
        where = start_all(args, group)
        width = max(len(k) for k in where)
        print("kpng is running:")
        for (name, place), child in zip(where.items(), group.children.values(), strict=True):
            pid = child.process.pid if child.process else "?"
            print(f"  {name:<{width}}  {place}  [pid {pid}]")
        print(f"logs in {args.workdir / 'logs'}/; try: curl http://{args.listen}/api/v1/nodes")
        print("Ctrl-C stops everything.", flush=True)
        try:
            while all(c.running for c in group.children.values()):
                time.sleep(0.5)
            dead = [n for n, c in group.children.items() if not c.running]
            print(f"make run: {', '.join(dead)} exited; see its log. Stopping.", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("\nstopping...")
    return 0


if __name__ == "__main__":
    sys.exit(main())
