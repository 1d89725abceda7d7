"""kpng: ask the observer about the cluster from a terminal.

    kpng status                          nodes: state, applied and published seq, lag, errors
    kpng services                        services, their ports and usable endpoints
    kpng explain NODE PROTO DST:PORT [--from SRC] [--from-pod | --no-from-pod]
                                         where a packet to DST:PORT would go
    kpng watch                           the observer's event stream, one line per event

``-o json`` prints the observer's JSON instead of tables. The observer is ``--observer URL``
(``KPNG_OBSERVER``), its bearer token ``--token-file FILE`` (``KPNG_TOKEN_FILE``) or
``KPNG_TOKEN``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.parse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TextIO

from kpng.runtime.config import ConfigError, add_version_argument, apply_settings
from kpng_cli import render
from kpng_cli.client import ObserverClient, ObserverError
from kpng_cli.sse import parse_events

PROTOCOLS = ("tcp", "udp", "sctp")


def destination(text: str) -> tuple[str, int]:
    """``DST:PORT`` (``[fd00::1]:80`` for IPv6) as an argparse type."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not DST:PORT")
    return host, int(port)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="kpng",
        description="Ask kpng's observer about nodes, services and packets.",
        epilog="Every option also reads KPNG_<OPTION> (KPNG_OBSERVER, KPNG_TOKEN, ...).",
    )
    p.add_argument(
        "--observer",
        default="http://127.0.0.1:8080",
        metavar="URL",
        help="the observer's base URL (default: %(default)s)",
    )
    p.add_argument("--token", help="the observer's bearer token (prefer --token-file)")
    p.add_argument("--token-file", type=Path, metavar="FILE", help="read the token from FILE")
    p.add_argument(
        "-o", "--output", choices=("table", "json"), default="table", help="output format"
    )
    add_version_argument(p)
    commands = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("status", help="nodes: state, applied/published seq, lag, errors")
    services = commands.add_parser("services", help="services, ports and usable endpoints")
    services.add_argument("-n", "--namespace", help="only this namespace")
    explain = commands.add_parser("explain", help="where a packet would go on a node")
    explain.add_argument("node")
    explain.add_argument("proto", type=str.lower, choices=PROTOCOLS)
    explain.add_argument("dst", type=destination, metavar="DST:PORT")
    explain.add_argument("--from", dest="source", metavar="SRC", help="the packet's source IP")
    explain.add_argument(
        "--from-pod",
        action=argparse.BooleanOptionalAction,
        help="it comes (or not) in on a pod's interface: where agents tell pods by interface "
        "(--detect-local-mode BridgeInterface, InterfaceNamePrefix)",
    )
    watch = commands.add_parser("watch", help="the event stream (Ctrl-C to stop)")
    watch.add_argument("--after", type=int, metavar="ID", help="resume after this event id")
    watch.add_argument(
        "--count", type=int, metavar="N", help="stop after N events (default: never)"
    )
    return p


def _token(args: argparse.Namespace) -> str | None:
    file: Path | None = args.token_file
    if file is not None:
        text = file.read_text().strip()
        if not text:
            raise ValueError(f"token file {file} is empty")
        return text
    token: str | None = args.token or None
    return token


def _print_json(out: TextIO, value: Any) -> None:
    out.write(json.dumps(value, indent=2, sort_keys=True) + "\n")


def status(client: ObserverClient, args: argparse.Namespace, out: TextIO) -> int:
    nodes = client.get("/nodes")
    if args.output == "json":
        _print_json(out, nodes)
    else:
        out.write(render.status_table(nodes) + "\n" + render.status_summary(nodes) + "\n")
    return 0


def services(client: ObserverClient, args: argparse.Namespace, out: TextIO) -> int:
    found = client.get("/services", {"namespace": args.namespace})
    if args.output == "json":
        _print_json(out, found)
    else:
        out.write(render.services_table(found) + "\n")
    return 0


def explain(client: ObserverClient, args: argparse.Namespace, out: TextIO) -> int:
    host, port = args.dst
    params = {"destination": host, "port": port, "protocol": args.proto.upper()}
    params["source"] = args.source
    if args.from_pod is not None:
        params["fromPod"] = "true" if args.from_pod else "false"
    result = client.get(f"/nodes/{urllib.parse.quote(args.node, safe='')}/explain", params)
    if args.output == "json":
        _print_json(out, result)
    else:
        shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        out.write(render.explain_text(result, args.proto.upper(), shown) + "\n")
    return 0


def watch(client: ObserverClient, args: argparse.Namespace, out: TextIO) -> int:
    events = parse_events(client.stream("/events", {"after": args.after}))
    for seen, event in enumerate(events, 1):
        line = render.event_json(event) if args.output == "json" else render.event_line(event)
        out.write(line + "\n")
        out.flush()
        if args.count is not None and seen >= args.count:
            break
    return 0


COMMANDS: dict[str, Callable[[ObserverClient, argparse.Namespace, TextIO], int]] = {
    "status": status,
    "services": services,
    "explain": explain,
    "watch": watch,
}


def main(
    argv: list[str] | None = None,
    environ: Mapping[str, str] | None = None,
    out: TextIO | None = None,
) -> int:
    p = parser()
    try:
        apply_settings(p, {}, "", os.environ if environ is None else environ)
    except ConfigError as exc:
        p.error(str(exc))
    args = p.parse_args(argv)
    out = sys.stdout if out is None else out
    try:
        client = ObserverClient(args.observer, _token(args))
        return COMMANDS[args.command](client, args, out)
    except (ObserverError, OSError, ValueError) as exc:
        print(f"kpng {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
