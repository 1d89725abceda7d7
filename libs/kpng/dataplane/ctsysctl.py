"""The conntrack sysctls kube-proxy sets at start (its ``conntrack`` configuration). Pure.

A node's connection tracking table must hold every proxied connection: kube-proxy raises
``nf_conntrack_max`` to ``maxPerCore`` x CPUs (at least ``min``; 32768 and 131072 by default)
and the hash table's size with it (``hashsize`` = max / 4), sets the TCP established and
close-wait timeouts (24 h and 1 h by default), and, when asked, ``tcp_be_liberal`` and the UDP
timeouts. A zero leaves that setting as the node has it.

One difference from kube-proxy: ``nf_conntrack_max`` and ``hashsize`` are only raised, never
lowered, so that a larger table an administrator gave the node stays.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX = "net/netfilter/nf_conntrack_max"
HASHSIZE = "nf_conntrack/parameters/hashsize"  # under /sys/module


@dataclass(frozen=True, slots=True)
class ConntrackSettings:
    """kube-proxy's ``KubeProxyConntrackConfiguration``, times in seconds (0: leave)."""

    max_per_core: int = 32768
    min: int = 131072
    tcp_established: int = 86400
    tcp_close_wait: int = 3600
    tcp_be_liberal: bool = False
    udp: int = 0
    udp_stream: int = 0


@dataclass(frozen=True, slots=True)
class Write:
    """One sysctl to bring to ``value``; ``raise_only``: never lower it."""

    name: str  # under /proc/sys
    value: int
    raise_only: bool = False


def conntrack_max(s: ConntrackSettings, cpus: int) -> int:
    """kube-proxy's ``getConntrackMax``: ``max_per_core`` x CPUs, at least ``min``; 0 (leave
    the limit) when ``max_per_core`` is 0."""
    if s.max_per_core <= 0:
        return 0
    return max(s.max_per_core * max(cpus, 1), s.min)


def writes(s: ConntrackSettings, cpus: int) -> tuple[Write, ...]:
    """The sysctls to set, in kube-proxy's order (the limit first)."""
    out: list[Write] = []
    if limit := conntrack_max(s, cpus):
        out.append(Write(MAX, limit, raise_only=True))
    for name, value in (
        ("nf_conntrack_tcp_timeout_established", s.tcp_established),
        ("nf_conntrack_tcp_timeout_close_wait", s.tcp_close_wait),
        ("nf_conntrack_tcp_be_liberal", int(s.tcp_be_liberal)),
        ("nf_conntrack_udp_timeout", s.udp),
        ("nf_conntrack_udp_timeout_stream", s.udp_stream),
    ):
        if value > 0:
            out.append(Write(f"net/netfilter/{name}", value))
    return tuple(out)


def needed(w: Write, current: int | None) -> bool:
    """Whether ``w`` changes a sysctl whose value is ``current`` (None: unreadable)."""
    if current is None:
        return True
    return current < w.value if w.raise_only else current != w.value


def hashsize_for(limit: int) -> int:
    """The hash table size kube-proxy gives a table of ``limit`` entries."""
    return limit // 4
