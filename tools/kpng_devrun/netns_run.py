"""`make run` as root: the cluster file's nodes as network namespaces (pods on their
bridges, an outside client, NATS, the watcher and the observer in an infra namespace), an
nftables agent in each node, the observer forwarded to the root namespace's --listen."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import time
from pathlib import Path
from typing import Any

import yaml

from kpng_devrun.bus import secure_bus
from kpng_devrun.procs import venv_bin
from kpng_netns.cluster import NATS_PORT, NetnsCluster
from kpng_netns.forward import forward
from kpng_netns.netns import exec_argv
from kpng_netns.topology import Topology, from_cluster_objects

OBSERVER_PORT = 8080


def can_run() -> str:
    """Why the namespace cluster cannot run here ("" if it can)."""
    import os

    if os.geteuid() != 0:
        return "not root"
    missing = [tool for tool in ("ip", "nft") if shutil.which(tool) is None]
    return f"{', '.join(missing)} not found" if missing else ""


def try_command(objects: list[dict[str, Any]], t: Topology, c: NetnsCluster) -> str:
    """A request to the first NodePort of the file, from the outside client."""
    for obj in objects:
        for port in (obj.get("spec") or {}).get("ports") or []:
            if obj.get("kind") == "Service" and port.get("nodePort"):
                node = t.nodes[0].ip
                return f"sudo ip netns exec {c.client} curl -s http://{node}:{port['nodePort']}/"
    return f"sudo ip netns exec {c.client} ping -c1 {t.nodes[0].ip}"


def start(args: argparse.Namespace, c: NetnsCluster) -> dict[str, str]:
    t = c.topology
    c.build()
    c.cluster_file = args.cluster.resolve()
    c.start_control()
    where = {"nats-server": f"{c.nats_url} in netns {c.infra}"}
    where["watcher"] = f"watching {args.cluster} in netns {c.infra}"
    for node in t.nodes:
        c.start_agent(node.name)
        ns = c.node_ns(node.name)
        where[f"agent {node.name}"] = (
            f"nftables in netns {ns} ({node.ip}, pods {node.pod_cidr}); "
            f"healthz {node.ip}:10256, metrics 127.0.0.1:10249 there"
        )
    observer = [venv_bin("kpng-observer"), *c.bus_flags("observer"), "--prefix", args.prefix]
    observer += ["--listen", f"127.0.0.1:{OBSERVER_PORT}"]  # infra's own loopback
    c.group.start("observer", exec_argv(c.infra, observer))
    where["observer"] = (
        f"http://{args.listen}/ (forwarded to 127.0.0.1:{OBSERVER_PORT} in netns {c.infra})"
    )
    return where


async def supervise(args: argparse.Namespace, c: NetnsCluster) -> int:
    host, _, port = args.listen.rpartition(":")
    fwd = asyncio.create_task(
        forward(host or "127.0.0.1", int(port), c.infra, "127.0.0.1", OBSERVER_PORT)
    )
    try:
        while True:  # child processes have no awaitable exit: poll them
            if fwd.done() or not all(ch.running for ch in c.group.children.values()):
                break
            await asyncio.sleep(0.5)
        dead = [n for n, ch in c.group.children.items() if not ch.running] or ["forwarder"]
        print(f"make run: {', '.join(dead)} exited; see its log. Stopping.", flush=True)
        return 1
    finally:
        fwd.cancel()
        with contextlib.suppress(asyncio.CancelledError, OSError):
            await fwd


def run_netns(args: argparse.Namespace) -> int:
    objects = [o for o in yaml.safe_load_all(args.cluster.read_text()) if isinstance(o, dict)]
    topology = from_cluster_objects(objects)
    workdir = Path(args.workdir).resolve()
    bus = secure_bus(workdir / "bus", topology.infra_ip, NATS_PORT, args.prefix)
    c = NetnsCluster(topology, workdir, bus=bus)
    try:
        where = start(args, c)
        width = max(len(k) for k in where)
        print("kpng is running (nftables backend, network namespaces):")
        for (name, place), child in zip(where.items(), c.group.children.values(), strict=True):
            pid = child.process.pid if child.process else "?"
            print(f"  {name:<{width}}  {place}  [pid {pid}]")
        placed = ", ".join(f"{p.name} {p.ip}" for p in topology.pods)
        print(f"  pods: {placed}")
        print(f"  outside client: netns {c.client} ({topology.client_ip})")
        print(f"logs in {args.workdir / 'logs'}/; try: {try_command(objects, topology, c)}")
        print(f"  or: curl http://{args.listen}/api/v1/nodes")
        print("Ctrl-C stops everything and removes the namespaces.", flush=True)
        try:
            return asyncio.run(supervise(args, c))
        except KeyboardInterrupt:
            print("\nstopping...", flush=True)
            return 0
    finally:
        started = time.monotonic()
        c.close()
        print(f"removed the namespaces of {c.prefix}* in {time.monotonic() - started:.1f}s")
