"""What every kpng service does the same way: logging, signals, argument errors, and the
common flags (--log-level, --config, --version)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Awaitable, Callable

from kpng.runtime.config import add_config_arguments

log = logging.getLogger(__name__)

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOGGING_FORMATS = ("text", "json")
# --logging-format json: one object a line, as log pipelines take them (Loki, Elasticsearch)
JSON_FIELDS = {"created": "ts", "levelname": "level", "name": "logger", "message": "msg"}


def setup_logging(level: str, fmt: str = "text") -> None:
    """Logs to stderr at ``level``, as text (``LOG_FORMAT``) or JSON lines (``ts`` in Unix
    seconds, as kube-proxy's JSON logs, ``level``, ``logger``, ``msg``, and ``exc_info``
    with an exception's traceback)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_formatter(fmt))
    logging.basicConfig(level=level.upper(), handlers=[handler])


def _formatter(fmt: str) -> logging.Formatter:
    if fmt == "json":
        from pythonjsonlogger.json import JsonFormatter  # only when asked for

        return JsonFormatter(
            "{created}{levelname}{name}{message}", style="{", rename_fields=JSON_FIELDS
        )
    return logging.Formatter(LOG_FORMAT)


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="log level (default: %(default)s)",
    )
    parser.add_argument(
        "--logging-format",
        default="text",
        choices=LOGGING_FORMATS,
        help="log lines as text or as JSON objects, as kube-proxy's flag (default: %(default)s)",
    )
    add_config_arguments(parser)


def run(main: Callable[[], Awaitable[None]]) -> int:
    """Run ``main`` until it returns or SIGINT/SIGTERM arrives; exit code 0 on a signal."""

    async def guarded() -> None:
        task = asyncio.ensure_future(main())
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        try:
            await task
        except asyncio.CancelledError:
            log.info("stopped by signal")

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(guarded())
    return 0


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must not be negative")
    return value


def host_port(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:80`` for IPv6) as an argparse type; port 0 picks a free one."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    return host.strip("[]") or "127.0.0.1", int(port)
