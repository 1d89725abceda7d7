"""The nftables backend's plugin: kube-proxy style flags, the factory, ``kpng-agent cleanup``.

Only the standard library is imported here: the agent loads every plugin to build its
parser, and the nftables stack (netlink, pyroute2) is imported when the backend is built.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
from typing import TYPE_CHECKING

from kpng.dataplane import detectlocal
from kpng.dataplane.ctsysctl import ConntrackSettings
from kpng.dataplane.plugin import KUBE_PROXY, BackendArgumentError, BackendPlugin, Plugin

if TYPE_CHECKING:
    from kpng_agent.backends.nftables import NftablesBackend

log = logging.getLogger(__name__)
PRIMARY = "primary"  # kpng_agent.backends.nftables.PRIMARY, not imported: see above


def cidrs(text: str) -> tuple[str, ...]:
    out = tuple(x.strip() for x in text.split(",") if x.strip())
    for x in out:
        if x != PRIMARY:
            try:
                ipaddress.ip_network(x, strict=False)
            except ValueError:
                raise argparse.ArgumentTypeError(f"{x!r} is not a CIDR") from None
    return out


def mark_bit(text: str) -> int:
    """``--masquerade-bit``: a bit of the packet mark, 0..31."""
    try:
        bit = int(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer (a bit 0..31)") from None
    if not 0 <= bit <= 31:
        raise argparse.ArgumentTypeError(f"{bit} is not a bit of the 32-bit mark (0..31)")
    return bit


def detect_local_mode(text: str) -> str:
    """``--detect-local-mode``: kube-proxy's spelling."""
    try:
        return detectlocal.parse_mode(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def bridge_interface(text: str) -> str:
    """``--pod-bridge-interface``: a Linux interface name."""
    try:
        return detectlocal.interface(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def interface_prefix(text: str) -> str:
    """``--pod-interface-name-prefix``: the start of a Linux interface name."""
    try:
        return detectlocal.interface(text, prefix=True)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _whole(text: str, what: str, zero: str) -> int:
    """An integer flag value, 0 or more; ``what`` it is and what ``zero`` does, for errors."""
    try:
        n = int(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"{n} is negative (0 {zero})")
    return n


def count(text: str) -> int:
    """A conntrack count: an integer, 0 or more (0 leaves the node's value)."""
    return _whole(text, "a whole number", "leaves the node's value")


def timeout(text: str) -> int:
    """A conntrack timeout: a Go duration as kube-proxy takes it (``24h0m0s``, ``1h``, ``90s``),
    whole seconds; 0 leaves the node's value."""
    from kpng.runtime.config import ConfigError
    from kpng_agent.kubeproxyconfig import duration_seconds

    try:
        seconds = duration_seconds(text.strip(), "timeout")
    except ConfigError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration (such as 24h0m0s, 1h or 90s)"
        ) from None
    if seconds != int(seconds):
        raise argparse.ArgumentTypeError(f"{text!r} is not whole seconds")
    return int(seconds)


def conntrack_settings(args: argparse.Namespace) -> ConntrackSettings:
    """The ``--conntrack-*`` flags as the sysctls' settings."""
    return ConntrackSettings(
        max_per_core=args.conntrack_max_per_core,
        min=args.conntrack_min,
        tcp_established=args.conntrack_tcp_timeout_established,
        tcp_close_wait=args.conntrack_tcp_timeout_close_wait,
        tcp_be_liberal=args.conntrack_tcp_be_liberal,
        udp=args.conntrack_udp_timeout,
        udp_stream=args.conntrack_udp_timeout_stream,
    )


def set_conntrack_sysctls(args: argparse.Namespace) -> tuple[str, ...]:
    """At start, for the nftables backend only (the flags are its own; another backend
    owns its node as it sees fit): the conntrack sysctls, and the warnings."""
    if args.backend != "nftables":
        return ()
    from kpng_agent import ctsysctl

    return ctsysctl.apply(conntrack_settings(args))


def services_count(text: str) -> int:
    """``--parallel-families-above``: a number of services, 0 or more."""
    return _whole(text, "a number of services", "turns the child off")


def add_nftables_arguments(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--table-name", default="kpng", help="nftables table name (default: kpng)")
    g.add_argument(
        "--cluster-cidr", type=cidrs, default=(), help="pod network CIDRs, comma-separated"
    )
    g.add_argument(
        "--nodeport-addresses",
        type=cidrs,
        default=(PRIMARY,),
        help="CIDRs for NodePorts, or 'primary' (the node's addresses; default)",
    )
    g.add_argument("--masquerade-all", action="store_true", help="SNAT all service traffic")
    g.add_argument(
        "--detect-local-mode",
        type=detect_local_mode,
        default=detectlocal.CLUSTER_CIDR,
        metavar="MODE",
        help="how traffic from this node's pods is told (not masqueraded to a cluster IP, "
        "short-circuited to an eTP Local service's external IPs): ClusterCIDR (source in "
        "--cluster-cidr; default), NodeCIDR (source in the node's spec.podCIDRs), "
        "BridgeInterface (--pod-bridge-interface) or InterfaceNamePrefix "
        "(--pod-interface-name-prefix)",
    )
    g.add_argument(
        detectlocal.BRIDGE_FLAG,
        type=bridge_interface,
        metavar="NAME",
        help="the pod bridge, for --detect-local-mode BridgeInterface",
    )
    g.add_argument(
        detectlocal.PREFIX_FLAG,
        type=interface_prefix,
        metavar="PREFIX",
        help="the start of the pods' host-side interface names (such as veth or cali), for "
        "--detect-local-mode InterfaceNamePrefix",
    )
    g.add_argument(
        "--masquerade-bit",
        type=mark_bit,
        default=14,
        metavar="BIT",
        help="the one packet-mark bit kpng owns, marking connections to masquerade "
        "(0..31, default 14: 0x4000, as kube-proxy's --iptables-masquerade-bit)",
    )
    g.add_argument(
        "--parallel-families-above",
        type=services_count,
        default=2000,
        metavar="N",
        help="a full sync of both families' tables for N services or more writes the second "
        "family from a forked child process, on another CPU (0: never; default 2000)",
    )
    add_conntrack_arguments(g)


def add_conntrack_arguments(g: argparse._ArgumentGroup) -> None:
    """kube-proxy's conntrack flags, with its defaults: the sysctls set at start."""
    d = ConntrackSettings()
    for flag, kind, default, what in (
        ("max-per-core", count, d.max_per_core, "nf_conntrack_max per CPU (0: leave the limit)"),
        ("min", count, d.min, "the least nf_conntrack_max given with --conntrack-max-per-core"),
        ("tcp-timeout-established", timeout, d.tcp_established, "established TCP idle timeout"),
        ("tcp-timeout-close-wait", timeout, d.tcp_close_wait, "TCP CLOSE_WAIT timeout"),
        ("udp-timeout", timeout, d.udp, "UDP timeout (0: leave it)"),
        ("udp-timeout-stream", timeout, d.udp_stream, "UDP stream timeout (0: leave it)"),
    ):
        g.add_argument(
            f"--conntrack-{flag}",
            type=kind,
            default=default,
            metavar="N" if kind is count else "DURATION",
            help=f"{what}; set at start, as kube-proxy (default {default}"
            f"{' s' if kind is timeout else ''}; 0 leaves the node's value)",
        )
    g.add_argument(
        "--conntrack-tcp-be-liberal",
        action="store_true",
        help="set nf_conntrack_tcp_be_liberal at start (accept out-of-window TCP packets)",
    )


def nftables_backend(args: argparse.Namespace, node: str = "") -> NftablesBackend:
    from kpng.dataplane.nft.kernel.execnft import NftCommand
    from kpng_agent.backends.nftables import NftablesBackend, Settings
    from kpng_agent.netlink import local_addresses

    try:
        pod_interface = detectlocal.pod_interface(
            args.detect_local_mode,
            args.pod_bridge_interface or "",
            args.pod_interface_name_prefix or "",
        )
    except ValueError as exc:
        raise BackendArgumentError(str(exc)) from None
    settings = Settings(
        node=node or args.node,
        table=args.table_name,
        cluster_cidrs=args.cluster_cidr,
        nodeport_addresses=args.nodeport_addresses,
        masquerade_all=args.masquerade_all,
        pod_interface=pod_interface,
        detect_local=args.detect_local_mode,
        masquerade_bit=args.masquerade_bit,
        fork_above=args.parallel_families_above,
    )
    return NftablesBackend(settings, NftCommand(), local_addresses)


def cleanup(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="kpng-agent cleanup [--backend nftables]", description="Remove kpng's tables."
    )
    p.add_argument("--table-name", default="kpng")
    args = p.parse_args(argv)
    from kpng.dataplane.nft.kernel.execnft import NftCommand
    from kpng.dataplane.nft.objects import Table

    async def go() -> None:
        nft = NftCommand()
        for family in ("ip", "ip6"):
            if await nft.delete_table(Table(family, args.table_name)):
                log.warning("removed table %s %s", family, args.table_name)

    asyncio.run(go())
    return 0


PLUGIN: BackendPlugin = Plugin(
    name="nftables",
    summary="programs the node's dataplane with nftables, as kube-proxy's nftables mode",
    build=nftables_backend,
    add_arguments=add_nftables_arguments,
    servers=KUBE_PROXY,
    cleanup=cleanup,
)
