"""kpng-agent: programs this node's dataplane from its view on the bus."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from kpng.bus.flags import add_bus_arguments, bus_auth
from kpng.bus.identity import node_inbox
from kpng.bus.protocol import BusError
from kpng.bus.rotation import renewing
from kpng.bus.subjects import Subjects
from kpng.dataplane.backend import Backend
from kpng.dataplane.detectlocal import BRIDGE_INTERFACE
from kpng.dataplane.plugin import BackendArgumentError
from kpng.model import name_problem, shown_name
from kpng.runtime.clock import SYSTEM
from kpng.runtime.config import parse_args
from kpng.runtime.process import add_common_arguments, positive_float, run, setup_logging
from kpng.runtime.procmetrics import register_process_metrics
from kpng_agent import kubeproxyconfig, oomscore
from kpng_agent.agent import AgentSettings
from kpng_agent.backends.registry import Backends, PluginError, cleanup, discover
from kpng_agent.imports import import_bus
from kpng_agent.nftflags import set_conntrack_sysctls
from kpng_agent.oomscore import oom_score_adj
from kpng_agent.servers import add_health_arguments, apply_defaults, hooks_for, serving
from kpng_agent.startcheck import PROC_SYS, check_bridge_netfilter
from kpng_agent.wiring import build_agent, build_parts

log = logging.getLogger(__name__)


def node_name(text: str) -> str:
    """A ``--node`` value: a Kubernetes name, as every subject built from it needs."""
    problem = name_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(
            f"{shown_name(text)} is no Kubernetes node name: {problem}"
        )
    return text


def parser(backends: Backends | None = None) -> argparse.ArgumentParser:
    """The agent's flags, with those of every installed backend (``backends``, default: the
    ones :func:`discover` finds; a backend that fails to add its flags is marked broken)."""
    backends = discover() if backends is None else backends
    p = argparse.ArgumentParser(
        prog="kpng-agent", description="Program one node's dataplane from its view on the bus."
    )
    p.add_argument(
        "--node",
        "--hostname-override",  # kube-proxy's name for it
        dest="node",
        type=node_name,
        help="the name of this node (as in its Node object); required but with --init-only",
    )
    p.add_argument(
        "--backend",
        default="dump",
        choices=backends.names,
        help=f"dataplane backend (default: %(default)s): {backends.describe()}",
    )
    backends.add_arguments(p)
    add_health_arguments(p)
    p.add_argument(
        "--oom-score-adj",
        type=oom_score_adj,
        default=None,
        metavar="N",
        help="set the agent's own OOM score adjustment (-1000..1000; kube-proxy's flag, whose "
        "default is -999) at start; lowering it needs CAP_SYS_RESOURCE, and failing to is a "
        "warning (default: leave it to the kubelet)",
    )
    p.add_argument(
        "--init-only",
        action="store_true",
        help="do the start's steps that need full root privileges (the nftables backend's "
        "conntrack sysctls) and exit, as kube-proxy's --init-only: run so in a privileged init "
        "container, and the agent itself needs only NET_ADMIN",
    )
    p.add_argument(
        "--status-interval",
        type=positive_float,
        default=5.0,
        help="seconds between periodic status reports (default: %(default)s)",
    )
    add_bus_arguments(p)
    add_common_arguments(p)
    return p


def make_backend(
    args: argparse.Namespace, p: argparse.ArgumentParser, backends: Backends
) -> Backend:
    """The chosen backend, its server defaults applied to ``args``; a usage error (exit 2) if
    its flags don't make one, exit 1 if it is broken or fails to build."""
    for name, reason in backends.broken.items():
        if name != args.backend:
            log.warning("%s; the other backends are unaffected", reason)
    try:
        apply_defaults(args, backends.get(args.backend).servers)
        return backends.build(args.backend, args, args.node)
    except BackendArgumentError as exc:
        p.error(str(exc))
    except PluginError as exc:
        p.exit(1, f"{p.prog}: error: {exc}\n")


def init_only(args: argparse.Namespace) -> int:
    """``--init-only``: the privileged steps of a start, then exit (no bus, no backend). A
    step that cannot be done is a warning, as at an agent's start: the agent started next
    tries again and reports it in its status, and a node never loses its proxy over it."""
    warnings = set_conntrack_sysctls(args)
    log.info(
        "--init-only: initialization done for the %s backend%s; start the agent without it",
        args.backend,
        f", with {len(warnings)} warning(s)" if warnings else "",
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    backends = discover()
    if argv[:1] == ["cleanup"]:
        return cleanup(argv[1:], backends)
    p = parser(backends)
    args = parse_args(p, argv, translations={kubeproxyconfig.KIND: kubeproxyconfig.translate})
    setup_logging(args.log_level, args.logging_format)
    if args.init_only:
        return init_only(args)
    if args.node is None:
        p.error("the following arguments are required: --node")
    auth = bus_auth(args, p)
    backend = make_backend(args, p, backends)
    warnings = oomscore.apply(args.oom_score_adj)  # once the flags are known to be good

    async def serve() -> None:
        import_bus(args.nats)  # nats-py, without its websocket client unless a URL needs it
        from kpng.bus.nats import connect

        bus = await connect(
            args.nats,
            name=f"kpng-agent-{args.node}",
            prefix=args.prefix,
            auth=auth,
            # replies on an inbox of this node's own: per-node identity grants only that one
            inbox_prefix=node_inbox(Subjects(args.prefix), args.node),
        )
        settings = AgentSettings(args.status_interval, args.sync_period)
        parts = build_parts(bus, args.node, backend, settings, SYSTEM)
        register_process_metrics(parts.registry)
        hooks, close_hooks = hooks_for(args, parts)
        agent = build_agent(bus, backend, parts, hooks)
        if args.backend != "dump":  # a backend that programs this node's kernel
            from kpng_agent.netlink import bridge_addresses  # pyroute2: not for dump agents

            # pyroute2's IPRoute runs an event loop of its own: not in this one's thread
            bridged = getattr(args, "detect_local_mode", "") == BRIDGE_INTERFACE
            pod_bridge = (getattr(args, "pod_bridge_interface", None) or "") if bridged else ""
            agent.state.warnings = await asyncio.to_thread(
                check_bridge_netfilter,
                args.node,
                getattr(args, "cluster_cidr", ()),
                parts.registry,
                bridge_addresses,
                PROC_SYS,
                pod_bridge,
            )
            agent.state.warnings += set_conntrack_sysctls(args)
        agent.state.warnings += warnings
        try:
            # a rotated --nats-token-file: a fresh connection before the old token expires
            async with serving(args, parts), renewing(auth.token_file, bus.renew, SYSTEM):
                await agent.run()
        finally:
            await close_hooks()
            await backend.close()
            await bus.close()

    try:
        return run(serve)
    except (BusError, OSError) as exc:
        log.error("%s", exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
