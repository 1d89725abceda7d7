"""Network namespaces through the ``ip`` tool: create, wire, run in, sweep.

Every namespace created here carries its run's prefix, so :func:`sweep` can remove what a
crashed run left. Interfaces are created directly inside namespaces (``ip link add ...
netns A type veth peer ... netns B``): nothing ever appears in the root namespace.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
from collections.abc import Sequence


class NetnsError(RuntimeError):
    pass


def run_prefix() -> str:
    """A prefix unique to this run: ``kpng-<pid>-<random>-``."""
    return f"kpng-{os.getpid()}-{secrets.token_hex(2)}-"


def sh(*argv: str, ns: str = "", check: bool = True, timeout: float = 30) -> str:
    full = ["ip", "netns", "exec", ns, *argv] if ns else list(argv)
    r = subprocess.run(full, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise NetnsError(f"{' '.join(full)}: {r.stderr.strip()}")
    return r.stdout


def exec_argv(ns: str, argv: Sequence[str]) -> list[str]:
    return ["ip", "netns", "exec", ns, *argv]


def add(name: str) -> None:
    sh("ip", "netns", "add", name)
    sh("ip", "link", "set", "lo", "up", ns=name)


def veth(a: str, a_if: str, b: str, b_if: str) -> None:
    """A veth pair from namespace ``a`` (``a_if``) to namespace ``b`` (``b_if``), both up."""
    sh("ip", "link", "add", a_if, "netns", a, "type", "veth", "peer", b_if, "netns", b)
    sh("ip", "link", "set", a_if, "up", ns=a)
    sh("ip", "link", "set", b_if, "up", ns=b)


def bridge(ns: str, name: str, address: str = "") -> None:
    sh("ip", "link", "add", name, "type", "bridge", ns=ns)
    sh("ip", "link", "set", name, "up", ns=ns)
    if address:
        sh("ip", "addr", "add", address, "dev", name, ns=ns)


def address6(ns: str, interface: str, address: str) -> None:
    """An IPv6 address usable at once (no duplicate address detection)."""
    sh("ip", "-6", "addr", "add", address, "dev", interface, "nodad", ns=ns)


def enslave(ns: str, interface: str, bridge_name: str) -> None:
    sh("ip", "link", "set", interface, "master", bridge_name, ns=ns)


def sysctl(ns: str, *settings: str) -> None:
    sh("sysctl", "-qw", *settings, ns=ns)


def bridge_netfilter(ns: str, on: bool) -> None:
    """``net.bridge.bridge-nf-call-iptables`` (and ip6tables) in ``ns``: whether bridged IP
    packets pass its netfilter hooks. Per namespace since Linux 5.3, present once
    ``br_netfilter`` is loaded (built in, or ``modprobe br_netfilter``)."""
    if not os.path.exists("/proc/sys/net/bridge"):
        raise NetnsError("no /proc/sys/net/bridge: load br_netfilter (modprobe br_netfilter)")
    sysctl(ns, f"net.bridge.bridge-nf-call-iptables={int(on)}")
    sysctl(ns, f"net.bridge.bridge-nf-call-ip6tables={int(on)}")


def listed() -> list[str]:
    return [line.split()[0] for line in sh("ip", "netns", "list").splitlines() if line.strip()]


def pids_in(ns: str) -> list[int]:
    return [int(p) for p in sh("ip", "netns", "pids", ns, check=False).split()]


def sweep(prefix: str) -> list[str]:
    """Kill what still runs in, then delete, every namespace whose name starts with
    ``prefix`` (a run's own); returns their names."""
    gone = [name for name in listed() if name.startswith(prefix)]
    for name in gone:
        for pid in pids_in(name):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        sh("ip", "netns", "del", name, check=False)
    return gone
