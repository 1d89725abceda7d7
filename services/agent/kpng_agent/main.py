"""kpng-agent: programs this node's dataplane from its view on the bus."""

from __future__ import annotations

import argparse
import logging
import sys

from kpng.bus.nats import connect
from kpng.bus.protocol import BusError
from kpng.dataplane.backend import Backend
from kpng.runtime.clock import SYSTEM
from kpng.runtime.process import add_common_arguments, positive_float, run, setup_logging
from kpng_agent.agent import AgentSettings
from kpng_agent.backends.dump import DumpBackend
from kpng_agent.nftflags import add_nftables_arguments, cleanup, nftables_backend
from kpng_agent.servers import add_health_arguments, hooks_for, serving
from kpng_agent.wiring import build_agent, build_parts

log = logging.getLogger("kpng_agent")
BACKENDS = ("dump", "nftables")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="kpng-agent", description="Program one node's dataplane from its view on the bus."
    )
    p.add_argument("--node", required=True, help="the name of this node (as in its Node object)")
    p.add_argument("--backend", default="dump", choices=BACKENDS, help="dataplane backend")
    p.add_argument("--dump-file", help="with --backend dump: where to write the view as JSON")
    add_nftables_arguments(p)
    add_health_arguments(p)
    p.add_argument(
        "--status-interval",
        type=positive_float,
        default=5.0,
        help="seconds between periodic status reports (default: %(default)s)",
    )
    add_common_arguments(p)
    return p


def make_backend(args: argparse.Namespace, p: argparse.ArgumentParser) -> Backend:
    if args.backend == "dump":
        if not args.dump_file:
            p.error("--backend dump needs --dump-file PATH")
        return DumpBackend(args.node, args.dump_file)
    if args.backend == "nftables":
        return nftables_backend(args)
    p.error(f"unknown backend {args.backend!r}")
    raise AssertionError


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["cleanup"]:
        return cleanup(argv[1:])
    p = parser()
    args = p.parse_args(argv)
    setup_logging(args.log_level)
    backend = make_backend(args, p)

    async def serve() -> None:
        bus = await connect(args.nats, name=f"kpng-agent-{args.node}", prefix=args.prefix)
        settings = AgentSettings(args.status_interval, args.sync_period)
        parts = build_parts(bus, args.node, backend, settings, SYSTEM)
        hooks, close_hooks = hooks_for(args, parts)
        agent = build_agent(bus, backend, parts, hooks)
        try:
            async with serving(args, parts):
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
