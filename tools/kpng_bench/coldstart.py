"""An agent's cold start: from ``exec`` of ``kpng-agent`` to its first full sync programmed.

Also the CPU time the agent spent to get there (its own and its ``nft`` children's): on a
loaded machine the wall time mostly measures the wait for a CPU.

In the bench's network namespace: a ``nats-server``, a ``kpng-watcher`` reading a cluster
file (the bench's synthetic cluster as Kubernetes objects) that has published its initial
load, then ``kpng-agent --backend nftables`` started on an empty ruleset, timed until it
logs its first full sync (imports, NATS connect, snapshot, planning, programming). Each
start is on a new agent process (the files it imports are in the page cache, as for an
agent restarted on a node); the tables are removed between starts.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from kpng.diff import View
from kpng.model import ViewEndpoint
from kpng_bench.workload import NODE, node_view

PORT = 4222  # inside the namespace, whose loopback only this run uses
PROGRAMMED = re.compile(r"programmed full seq \d+: (\d+) ops in ([0-9.]+) ms")
ADOPTED = re.compile(r"written by a child process")  # a forked family's plan taken back


def cluster_objects(v: View[ViewEndpoint]) -> dict[str, Any]:
    """The view as ``kubectl get -o yaml`` would list its Kubernetes objects."""
    items: list[dict[str, Any]] = []
    for node in v.nodes.values():
        addresses = [{"type": "InternalIP", "address": a} for a in node.addresses]
        items.append(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": node.name},
                "status": {"addresses": addresses},
            }
        )
    for key, svc in v.services.items():
        ports = []
        for p in svc.ports:
            port: dict[str, Any] = {
                "name": p.name,
                "protocol": p.protocol.value,
                "port": p.port,
                "targetPort": p.target_port,
            }
            if p.node_port:
                port["nodePort"] = p.node_port
            ports.append(port)
        families = ["IPv6" if ":" in ip else "IPv4" for ip in svc.cluster_ips]
        items.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": svc.name, "namespace": svc.namespace},
                "spec": {
                    "type": "NodePort" if any(p.node_port for p in svc.ports) else "ClusterIP",
                    "clusterIP": svc.cluster_ips[0],
                    "clusterIPs": list(svc.cluster_ips),
                    "ipFamilies": families,
                    "ports": ports,
                },
            }
        )
        items += _slices(svc.namespace, svc.name, list(v.endpoints_of(key).values()))
    return {"apiVersion": "v1", "kind": "List", "items": items}


def _slices(namespace: str, name: str, eps: list[ViewEndpoint]) -> list[dict[str, Any]]:
    out = []
    for family in ("IPv4", "IPv6"):
        mine = [e for e in eps if (":" in e.ip) == (family == "IPv6")]
        if not mine:
            continue
        ports = [
            {"name": p.name, "protocol": p.protocol.value, "port": p.port} for p in mine[0].ports
        ]
        out.append(
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": f"{name}-{family.lower()}",
                    "namespace": namespace,
                    "labels": {"kubernetes.io/service-name": name},
                },
                "addressType": family,
                "ports": ports,
                "endpoints": [
                    {
                        "addresses": [e.ip],
                        "nodeName": e.node,
                        "conditions": {"ready": True, "serving": True, "terminating": False},
                    }
                    for e in mine
                ],
            }
        )
    return out


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def _in(ns: str, *argv: str) -> list[str]:
    return ["ip", "netns", "exec", ns, *argv]


def _wait_for(stream: IO[str], pattern: re.Pattern[str], timeout: float) -> re.Match[str]:
    """The first line of ``stream`` matching ``pattern`` (the process's log)."""
    deadline = time.monotonic() + timeout
    for line in stream:
        m = pattern.search(line)
        if m:
            return m
        if time.monotonic() > deadline:
            break
    raise RuntimeError(f"no line matching {pattern.pattern!r} within {timeout:.0f} s")


@contextmanager
def _started(argv: list[str], log: Path | None = None) -> Iterator[subprocess.Popen[str]]:
    out: IO[str] | int = log.open("w") if log is not None else subprocess.PIPE
    proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, text=True)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if not isinstance(out, int):
            out.close()


def _cpu_s(pid: int) -> float:
    """CPU seconds of a process so far, with its children waited for (its ``nft`` runs)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(f) for f in fields[11:15])
    return (utime + stime + cutime + cstime) / os.sysconf("SC_CLK_TCK")


def _peak_rss_mb(pid: int) -> float:
    """A process's peak resident memory so far (its forked children's not included)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _drop_tables(ns: str) -> None:
    for family in ("ip", "ip6"):
        subprocess.run(_in(ns, "nft", "delete", "table", family, "kpng"), capture_output=True)


def cold_start(
    ns: str,
    services: int,
    workdir: Path,
    runs: int = 3,
    stack: str = "ipv4",
    agent_args: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Median seconds from exec to the first full sync programmed, and the agent's own
    figure for that sync (planning and programming), its CPU and its peak resident memory
    then, over ``runs`` starts."""
    subprocess.run(_in(ns, "ip", "link", "set", "lo", "up"), check=True)
    cluster = workdir / f"cluster-{stack}-{services}.json"
    cluster.write_text(json.dumps(cluster_objects(node_view(services, 10, stack))))
    cidrs = {"ipv4": "10.244.0.0/16", "ipv6": "fd00:244::/64"}
    cidr = ",".join(cidrs.values()) if stack == "dual" else cidrs[stack]
    url = f"nats://127.0.0.1:{PORT}"
    nats = _in(ns, _bin("nats-server"), "-a", "127.0.0.1", "-p", str(PORT))
    watcher = _in(ns, _bin("kpng-watcher"), "--source", f"file:{cluster}", "--nats", url)
    agent = _in(ns, _bin("kpng-agent"), "--node", NODE, "--backend", "nftables", "--nats", url)
    totals: list[float] = []
    programs: list[float] = []
    cpus: list[float] = []
    peaks: list[float] = []
    with (
        _started(nats, workdir / "nats.log"),
        _started([*watcher, "--nats-insecure"]) as w,
    ):
        assert w.stdout is not None
        _wait_for(w.stdout, re.compile("initial load complete"), 120)
        for _ in range(runs):
            _drop_tables(ns)
            t0 = time.perf_counter()
            with _started([*agent, "--nats-insecure", "--cluster-cidr", cidr, *agent_args]) as a:
                assert a.stdout is not None
                m = _wait_for(a.stdout, PROGRAMMED, 120)
                totals.append(time.perf_counter() - t0)
                if stack == "dual" and "--parallel-families-above" not in agent_args:
                    _wait_for(a.stdout, ADOPTED, 30)  # the child reaped: its CPU counts
                cpus.append(_cpu_s(a.pid))  # ip netns exec execs the agent: same process
                peaks.append(_peak_rss_mb(a.pid))
                programs.append(float(m.group(2)) / 1000)
        _drop_tables(ns)
    return {
        "services": services,
        "stack": stack,
        "agent_args": list(agent_args),
        "exec_to_programmed_s": statistics.median(totals),
        "runs_s": totals,
        "cpu_s": statistics.median(cpus),
        "peak_rss_mb": statistics.median(peaks),
        "first_sync_s": statistics.median(programs),
    }
