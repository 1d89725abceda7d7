"""``python -m kpng_apisim --port 0 --kubeconfig PATH``: run the simulator until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from pathlib import Path

from kpng_apisim.simulator import ApiSimulator


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="kpng_apisim", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--kubeconfig", type=Path, default=Path("kpng-apisim.kubeconfig"))
    parser.add_argument("--bookmark-interval", type=float, default=60.0)
    parser.add_argument("--service-cidr", default="10.96.0.0/16")
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


async def run(args: argparse.Namespace) -> None:
    sim = ApiSimulator(
        host=args.host,
        port=args.port,
        kubeconfig_path=args.kubeconfig,
        bookmark_interval=args.bookmark_interval,
        service_cidr=args.service_cidr,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    url = await sim.start()
    print(url, flush=True)
    print(f"kubeconfig: {sim.kubeconfig_path}", flush=True)
    try:
        await stop.wait()
    finally:
        await sim.stop()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(args))


if __name__ == "__main__":
    main()
