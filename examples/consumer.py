#!/usr/bin/env python3
"""A minimal third-party consumer of the kpng bus: follows one node's view and prints events.

    python examples/consumer.py --nats tls://nats:4222 --nats-user dashboards \
        --nats-password-file dashboards.password --nats-tls-ca ca.pem --node node-a1

Its credentials are a consumer's (read-only: docs/security.md); the bus flags are the kpng
programs' own (``kpng.bus.flags``: ``--nats-creds``, ``--nats-tls-ca``, ``KPNG_NATS_*``...).

Each line is one event: its kind (snapshot or delta), epoch, seq, and how many services the
view holds after it. Uses only the public ``kpng.bus`` API (see docs/bus.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

from kpng.bus import NodeViewClient, connect
from kpng.bus.auth import BusAuth
from kpng.bus.flags import add_bus_arguments, bus_auth
from kpng.runtime import config


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, BusAuth]:
    p = argparse.ArgumentParser(description="Print the events of one node's view.")
    p.add_argument("--node", required=True, help="node name whose view to follow")
    p.add_argument(
        "--max-events", type=int, default=0, help="stop after N events (default: run forever)"
    )
    add_bus_arguments(p)  # --nats, --prefix, credentials and TLS
    args = config.parse_args(p, argv)  # flags, then KPNG_* variables for those not given
    return args, bus_auth(args, p)


async def consume(args: argparse.Namespace, auth: BusAuth) -> int:
    count = 0
    bus = await connect(args.nats, name="kpng-example-consumer", prefix=args.prefix, auth=auth)
    async with bus:
        client = NodeViewClient(bus, args.node)
        async with contextlib.aclosing(client.events()) as events:  # unsubscribes on break
            async for event in events:
                print(
                    f"kind={event.kind} epoch={event.epoch} seq={event.seq} "
                    f"services={len(event.view.services)}",
                    flush=True,
                )
                count += 1
                if args.max_events and count >= args.max_events:
                    break
    return 0


async def main_async(args: argparse.Namespace, auth: BusAuth) -> int:
    task = asyncio.ensure_future(consume(args, auth))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        return await task
    return 0


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(main_async(*parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
