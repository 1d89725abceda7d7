"""Network namespaces for end-to-end tests: a node with routed pods and an outside client.

Every name starts with ``kpng-<pid>-``; :func:`remove_leftovers` deletes any such namespace
of this process. Nothing outside the namespaces created here is touched.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

PREFIX = f"kpng-{os.getpid()}-"
SERVER = Path(__file__).with_name("podserver.py")


def sh(*argv: str, ns: str = "", check: bool = True) -> str:
    full = ["ip", "netns", "exec", ns, *argv] if ns else list(argv)
    r = subprocess.run(full, capture_output=True, text=True, timeout=30)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(full)}: {r.stderr.strip()}")
    return r.stdout


def remove_leftovers() -> None:
    for line in sh("ip", "netns", "list").splitlines():
        name = line.split()[0] if line.strip() else ""
        if name.startswith(PREFIX):
            sh("ip", "netns", "del", name, check=False)


@dataclass
class Cluster:
    """One node (routed /32 pods), pods with servers, and a client on the underlay."""

    node_ip: str = "192.168.50.1"
    client_ip: str = "192.168.50.2"
    namespaces: list[str] = field(default_factory=list)
    procs: list[subprocess.Popen[str]] = field(default_factory=list)
    _n: int = 0

    def ns(self, role: str) -> str:
        self._n += 1
        name = f"{PREFIX}{self._n}{role}"
        sh("ip", "netns", "add", name)
        self.namespaces.append(name)
        sh("ip", "link", "set", "lo", "up", ns=name)
        return name

    def build(self) -> None:
        self.node = self.ns("node")
        self.client = self.ns("client")
        sh("sysctl", "-qw", "net.ipv4.ip_forward=1", ns=self.node)
        self._veth(self.node, "under", self.client, "eth0")
        sh("ip", "addr", "add", f"{self.node_ip}/24", "dev", "under", ns=self.node)
        sh("ip", "addr", "add", f"{self.client_ip}/24", "dev", "eth0", ns=self.client)
        sh("ip", "route", "add", "default", "via", self.client_ip, ns=self.node)
        sh("ip", "route", "add", "10.244.0.0/16", "via", self.node_ip, ns=self.client)
        sh("ip", "route", "add", "10.96.0.0/12", "via", self.node_ip, ns=self.client)

    def _veth(self, a: str, a_if: str, b: str, b_if: str) -> None:
        sh("ip", "link", "add", a_if, "netns", a, "type", "veth", "peer", b_if, "netns", b)
        sh("ip", "link", "set", a_if, "up", ns=a)
        sh("ip", "link", "set", b_if, "up", ns=b)

    def pod(self, name: str, ip: str, port: int = 8080) -> str:
        ns = self.ns("pod")
        host_if = f"v{self._n}"
        self._veth(self.node, host_if, ns, "eth0")
        sh("ip", "addr", "add", "10.244.1.1/32", "dev", host_if, ns=self.node)
        sh("ip", "route", "add", f"{ip}/32", "dev", host_if, ns=self.node)
        sh("ip", "addr", "add", f"{ip}/32", "dev", "eth0", ns=ns)
        sh("ip", "route", "add", "10.244.1.1", "dev", "eth0", ns=ns)
        sh("ip", "route", "add", "default", "via", "10.244.1.1", ns=ns)
        self.serve(ns, name, port)
        return ns

    def serve(self, ns: str, name: str, port: int) -> None:
        p = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, str(SERVER), name, str(port)],
            stdout=subprocess.PIPE,
            text=True,
        )
        self.procs.append(p)
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"

    def request(self, ns: str, ip: str, port: int, proto: str = "tcp") -> str:
        """One request from ``ns``: the answer, or "refused"/"timeout"."""
        return sh(sys.executable, "-c", CLIENT, proto, ip, str(port), ns=ns).strip()

    def close(self) -> None:
        for p in self.procs:
            p.kill()
            p.wait()
            if p.stdout is not None:
                p.stdout.close()
        for name in reversed(self.namespaces):
            sh("ip", "netns", "del", name, check=False)

    def nft_argv(self) -> Sequence[str]:
        return ("ip", "netns", "exec", self.node, "nft")


CLIENT = """
import socket, sys, time
proto, ip, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
s = socket.socket(socket.AF_INET, kind)
s.settimeout(2)
try:
    if proto == "tcp":
        s.connect((ip, port)); print(s.recv(100).decode())
    else:
        s.sendto(b"hi", (ip, port)); print(s.recv(100).decode())
except ConnectionRefusedError:
    print("refused")
except (TimeoutError, socket.timeout):
    print("timeout")
"""
