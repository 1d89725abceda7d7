"""Builds a :class:`~kpng_netns.topology.Topology` out of network namespaces and runs kpng
in it: nats-server and the watcher in the infra namespace, one nftables agent per node
namespace, a TCP/UDP server per pod.

Wiring: the infra namespace holds the underlay bridge; each node and the client hang on it
by a veth pair; nodes route each other's pod CIDRs. A node holds a pod bridge with the
first address of its pod CIDR, each pod's veth on it (hairpin on) and the bridge address
as the pod's gateway. The topology's wiring says how pods are addressed:

- ``routed``: a pod's address is a /32, so pod-to-pod traffic on one node is routed by the
  node (where conntrack un-NATs replies); ``bridge-nf-call-iptables`` is off in the node.
- ``bridge``: a pod's address is in its node's pod CIDR, so two pods of a node talk over
  L2; ``bridge-nf-call-iptables`` is on in the node (the per-namespace switch of
  ``br_netfilter``), so bridged replies pass conntrack and are un-NATed.

A dual-stack topology adds an IPv6 underlay (on the same links) and IPv6 pod CIDRs, wired
the same way (a /128 routed, or the node's /64 on the bridge); addresses skip duplicate
address detection, so that they are usable at once.

Nothing is created in, or changed of, the root namespace.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from kpng_devrun.bus import SecureBus
from kpng_devrun.procs import Child, ProcessGroup, venv_bin
from kpng_netns import netns
from kpng_netns.netns import exec_argv, sh
from kpng_netns.topology import NodeSpec, PodSpec, Topology

HERE = Path(__file__).resolve().parent
SERVER, CLIENT = HERE / "podserver.py", HERE / "podclient.py"
NATS_PORT = 4222


class NetnsCluster:
    """Create with a topology and a work directory; :meth:`build`, then start what runs;
    :meth:`close` always (it also sweeps namespaces of this run left by a failure)."""

    def __init__(
        self,
        topology: Topology,
        workdir: Path,
        prefix: str = "",
        bus: SecureBus | None = None,
    ) -> None:
        self.topology = topology
        self.workdir = workdir
        self.prefix = prefix or netns.run_prefix()
        self.group = ProcessGroup(workdir / "logs")
        self.servers: dict[str, subprocess.Popen[bytes]] = {}
        self.infra = self.prefix + "infra"
        self.client = self.prefix + "client"
        self.cluster_file = workdir / "cluster.yaml"
        # with a secure bus, every program connects over TLS with its role's user; without,
        # explicitly insecure (the tests' namespaces are theirs alone)
        self.bus = bus

    def node_ns(self, node: str) -> str:
        return f"{self.prefix}{node}"

    def pod_ns(self, pod: str) -> str:
        return f"{self.prefix}pod-{self.topology.pods.index(self.topology.pod(pod))}"

    @property
    def nats_url(self) -> str:
        if self.bus is not None:
            return self.bus.url
        return f"nats://{self.topology.infra_ip}:{NATS_PORT}"

    def bus_flags(self, role: str) -> list[str]:
        """How a program of ``role`` connects to the bus."""
        if self.bus is not None:
            return self.bus.flags(role)
        return ["--nats", self.nats_url, "--nats-insecure"]

    # building

    def build(self) -> None:
        t = self.topology
        netns.add(self.infra)
        netns.bridge(self.infra, "ubr0", f"{t.infra_ip}/{t.prefixlen}")
        if t.underlay6:
            netns.address6(self.infra, "ubr0", f"{t.infra_ip6}/{self._prefixlen6}")
        netns.add(self.client)
        self._underlay(self.client, "uclient", t.client_ip, t.client_ip6)
        for i, node in enumerate(t.nodes):
            self._node(i, node)
        for i, pod in enumerate(t.pods):
            self._pod(i, pod)

    @property
    def _prefixlen6(self) -> str:
        return self.topology.underlay6.split("/")[1]

    def _underlay(self, ns: str, infra_if: str, ip: str, ip6: str = "") -> None:
        netns.veth(self.infra, infra_if, ns, "eth0")
        netns.enslave(self.infra, infra_if, "ubr0")
        sh("ip", "addr", "add", f"{ip}/{self.topology.prefixlen}", "dev", "eth0", ns=ns)
        if ip6:
            netns.address6(ns, "eth0", f"{ip6}/{self._prefixlen6}")

    def _node(self, i: int, node: NodeSpec) -> None:
        ns = self.node_ns(node.name)
        netns.add(ns)
        netns.sysctl(ns, "net.ipv4.ip_forward=1")
        netns.sysctl(ns, "net.ipv4.conf.all.send_redirects=0")
        netns.sysctl(ns, "net.ipv4.conf.default.send_redirects=0")
        self._underlay(ns, f"unode{i}", node.ip, node.ip6)
        prefixlen = node.pod_cidr.split("/")[1]
        netns.bridge(ns, "cbr0", f"{node.gateway}/{prefixlen}")
        netns.bridge_netfilter(ns, self.topology.wiring == "bridge")
        if node.ip6:
            netns.sysctl(ns, "net.ipv6.conf.all.forwarding=1")
            netns.address6(ns, "cbr0", f"{node.gateway6}/{node.pod_cidr6.split('/')[1]}")
            sh("ip", "-6", "route", "add", "default", "via", self.topology.infra_ip6, ns=ns)
        # as on a real network, a default route (to infra, which forwards nothing): traffic
        # to a service IP is routed, so that nftables' forward hook sees it
        sh("ip", "route", "add", "default", "via", self.topology.infra_ip, ns=ns)
        for other in self.topology.nodes:
            if other is not node:
                sh("ip", "route", "add", other.pod_cidr, "via", other.ip, ns=ns)
                if other.ip6:
                    sh("ip", "-6", "route", "add", other.pod_cidr6, "via", other.ip6, ns=ns)

    def _pod(self, i: int, pod: PodSpec) -> None:
        ns = self.pod_ns(pod.name)
        node = self.topology.node(pod.node)
        netns.add(ns)
        node_ns = self.node_ns(pod.node)
        netns.veth(node_ns, f"pod{i}", ns, "eth0")
        netns.enslave(node_ns, f"pod{i}", "cbr0")
        # a pod reaching itself through a service comes back out of its own port
        sh("ip", "link", "set", f"pod{i}", "type", "bridge_slave", "hairpin", "on", ns=node_ns)
        address = f"{pod.ip}/{self.topology.pod_prefixlen(pod)}"
        sh("ip", "addr", "add", address, "dev", "eth0", ns=ns)
        if self.topology.wiring == "routed":
            sh("ip", "route", "add", node.gateway, "dev", "eth0", ns=ns)
        sh("ip", "route", "add", "default", "via", node.gateway, ns=ns)
        if pod.ip6:
            # IPv6 has no send_redirects to turn off in the node: were a redirect accepted,
            # a pod's replies to a pod of its node would skip the node's conntrack
            netns.sysctl(ns, "net.ipv6.conf.eth0.accept_redirects=0")
            netns.address6(ns, "eth0", f"{pod.ip6}/{self.topology.pod_prefixlen6(pod)}")
            if self.topology.wiring == "routed":
                sh("ip", "-6", "route", "add", node.gateway6, "dev", "eth0", ns=ns)
            sh("ip", "-6", "route", "add", "default", "via", node.gateway6, ns=ns)
        self.serve(pod)

    def serve(self, pod: PodSpec) -> None:
        """(Re)start the pod's server; returns once it listens."""
        self.stop_server(pod.name)
        argv = [sys.executable, str(SERVER), pod.name, *map(str, pod.ports)]
        p = subprocess.Popen(
            exec_argv(self.pod_ns(pod.name), argv), stdout=subprocess.PIPE, start_new_session=True
        )
        self.servers[pod.name] = p
        assert p.stdout is not None
        if p.stdout.readline().strip() != b"ready":
            raise netns.NetnsError(f"the server of {pod.name} did not start")

    def stop_server(self, pod: str) -> None:
        p = self.servers.pop(pod, None)
        if p is not None:
            p.kill()
            p.wait()
            if p.stdout is not None:
                p.stdout.close()

    # kpng

    def write_cluster(self, objects: Sequence[Mapping[str, Any]] = ()) -> None:
        """The cluster file the watcher reads: the topology's nodes, then ``objects``."""
        docs = [n.object() for n in self.topology.nodes] + [dict(o) for o in objects]
        self.workdir.mkdir(parents=True, exist_ok=True)
        tmp = self.cluster_file.with_suffix(".tmp")
        tmp.write_text(yaml.safe_dump_all(docs))
        tmp.replace(self.cluster_file)

    def start_control(self, tick_interval: float = 0.5) -> None:
        """nats-server and the watcher (on the cluster file), in the infra namespace."""
        if not self.cluster_file.exists():
            self.write_cluster()
        nats = [venv_bin("nats-server"), "-a", self.topology.infra_ip, "-p", str(NATS_PORT)]
        nats += ["-c", str(self.bus.config)] if self.bus is not None else []
        self.group.start("nats-server", exec_argv(self.infra, nats))
        self.wait_for_port(self.infra, self.topology.infra_ip, NATS_PORT)
        watcher = [venv_bin("kpng-watcher"), "--source", f"file:{self.cluster_file}"]
        watcher += [*self.bus_flags("watcher"), "--tick-interval", str(tick_interval)]
        self.group.start("watcher", exec_argv(self.infra, watcher))

    def agent_argv(self, node: str, *extra: str, cluster_cidr: bool = True) -> list[str]:
        """The agent's command line; ``cluster_cidr`` False leaves ``--cluster-cidr`` out."""
        cidrs = ("--cluster-cidr", ",".join(self.topology.cluster_cidrs)) if cluster_cidr else ()
        return [
            venv_bin("kpng-agent"),
            *("--backend", "nftables", "--node", node, *self.bus_flags("agent")),
            *cidrs,
            *("--status-interval", "1"),
            *extra,
        ]

    def start_agent(self, node: str, *extra: str, cluster_cidr: bool = True) -> Child:
        argv = self.agent_argv(node, *extra, cluster_cidr=cluster_cidr)
        return self.group.start(f"agent-{node}", exec_argv(self.node_ns(node), argv))

    def stop_agent(self, node: str) -> None:
        self.group.children[f"agent-{node}"].stop()

    # traffic

    def request(self, ns: str, ip: str, port: int, proto: str = "tcp", sport: int = 0) -> str:
        """One request from namespace ``ns``: the answer, "refused" or "timeout"."""
        argv = [sys.executable, str(CLIENT), "once", proto, ip, str(port), str(sport)]
        return sh(*argv, ns=ns).strip()

    def wait_for_port(self, ns: str, ip: str, port: int, timeout: float = 10) -> None:
        code = (
            "import socket,sys,time\nend=time.time()+float(sys.argv[3])\nwhile True:\n"
            " try: socket.create_connection((sys.argv[1],int(sys.argv[2])),0.2).close();break\n"
            " except OSError:\n  time.sleep(0.05)\n  assert time.time()<end,'no listener'\n"
        )
        sh(sys.executable, "-c", code, ip, str(port), str(timeout), ns=ns)

    # teardown

    def close(self) -> None:
        try:
            self.group.stop()
            for pod in list(self.servers):
                self.stop_server(pod)
        finally:
            netns.sweep(self.prefix)
