"""Flags and wiring of the agent's health, metrics and conntrack work, for every backend.

The defaults are the backend plugin's (:class:`kpng.dataplane.plugin.ServerDefaults`):
with ``--backend nftables`` kube-proxy's (healthz ``0.0.0.0:10256``, metrics
``127.0.0.1:10249``, healthCheckNodePort servers on ``0.0.0.0``, UDP conntrack cleanup on).
With ``--backend dump`` several agents usually share one machine, so the defaults bind
ephemeral ports on 127.0.0.1 (logged), open no healthCheckNodePort servers, and leave
conntrack alone; every flag still overrides its default.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from kpng.dataplane.plugin import ServerDefaults
from kpng.runtime.process import positive_float
from kpng_agent.agent import SyncHook
from kpng_agent.health_server import HealthCheckServers, metrics_handler, proxy_handler
from kpng_agent.httpserve import HttpServer, split_address
from kpng_agent.wiring import Parts

log = logging.getLogger(__name__)


def add_health_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("health, metrics and conntrack")
    g.add_argument(
        "--sync-period",
        type=positive_float,
        default=30.0,
        help="an update pending longer than 2 x this makes /healthz fail; also caps the "
        "retry backoff (seconds, default: %(default)s)",
    )
    g.add_argument(
        "--healthz-bind-address",
        type=bind_address,
        help="HOST:PORT of /healthz and /livez; empty: off "
        "(default: 0.0.0.0:10256, dump backend: 127.0.0.1 on a free port)",
    )
    g.add_argument(
        "--metrics-bind-address",
        type=bind_address,
        help="HOST:PORT of /metrics and /proxyMode; empty: off "
        "(default: 127.0.0.1:10249, dump backend: 127.0.0.1 on a free port)",
    )
    g.add_argument(
        "--health-check-bind-host",
        help="where healthCheckNodePort servers listen; empty: none "
        "(default: 0.0.0.0, dump backend: none)",
    )
    g.add_argument(
        "--conntrack-cleanup",
        choices=("auto", "on", "off"),
        default="auto",
        help="delete stale UDP conntrack entries after each sync "
        "(auto: as the backend wants, on with nftables)",
    )


def bind_address(text: str) -> str:
    """An argparse type: empty (off) or an address :func:`split_address` reads."""
    if text:
        try:
            _, port = split_address(text, 0)
        except ValueError:
            port = -1
        if not 0 <= port <= 65535:
            raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    return text


def apply_defaults(args: argparse.Namespace, defaults: ServerDefaults) -> None:
    """Gives each of these flags left unset the backend's default (a flag given wins)."""
    for attr, value in (
        ("healthz_bind_address", defaults.healthz),
        ("metrics_bind_address", defaults.metrics),
        ("health_check_bind_host", defaults.health_check_host),
    ):
        if getattr(args, attr) is None:
            setattr(args, attr, value)
    if args.conntrack_cleanup == "auto":
        args.conntrack_cleanup = "on" if defaults.conntrack_cleanup else "off"


def _setting(args: argparse.Namespace, attr: str) -> str:
    value: str | None = getattr(args, attr)
    if value is None or value == "auto":
        raise ValueError(f"{attr} is unset: apply_defaults() before serving")
    return value


def hooks_for(
    args: argparse.Namespace, parts: Parts
) -> tuple[list[SyncHook], Callable[[], Awaitable[None]]]:
    """The sync hooks the flags ask for, and how to close them."""
    hooks: list[SyncHook] = []
    hc_host = _setting(args, "health_check_bind_host")
    servers = HealthCheckServers(args.node, parts.health, hc_host, parts.clock)
    if hc_host:
        hooks.append(servers)
    if _setting(args, "conntrack_cleanup") == "on":
        from kpng_agent.conntrack import ConntrackCleaner, PyrouteConntrack

        hooks.append(ConntrackCleaner(PyrouteConntrack(), parts.metrics))
    return hooks, servers.close


@contextlib.asynccontextmanager
async def serving(args: argparse.Namespace, parts: Parts) -> AsyncIterator[list[HttpServer]]:
    """The healthz and metrics servers, while the agent runs."""
    servers: list[HttpServer] = []
    wanted = (
        (
            "healthz",
            "healthz_bind_address",
            10256,
            proxy_handler(parts.health, parts.clock, parts.metrics),
        ),
        ("metrics", "metrics_bind_address", 10249, metrics_handler(parts.registry, args.backend)),
    )
    try:
        for key, attr, default_port, handler in wanted:
            address = _setting(args, attr)
            if not address:
                continue
            host, port = split_address(address, default_port)
            server = HttpServer(host, port, handler)
            await server.start()
            servers.append(server)
            log.info("%s on http://%s:%d/", key, host, server.port)
        yield servers
    finally:
        for server in servers:
            await server.close()
