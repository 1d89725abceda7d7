"""What the agent does not import: the cold start of ``kpng-agent`` is mostly imports.

nats-py imports aiohttp (with multidict, yarl, ...: ~0.15 s of CPU and ~10 MB) for its
websocket transport only, and falls back when the import fails. An agent whose NATS URLs
are none of them ``ws://``/``wss://`` imports nats-py with aiohttp marked absent
(``sys.modules[name] = None``, the import system's own way to say so); the mark is taken
back at once, so anything imported later that wants aiohttp still gets it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

WEBSOCKET_CLIENT = "aiohttp"


def websockets(urls: str) -> bool:
    """Whether any of these comma-separated NATS URLs is a websocket one."""
    return any(u.strip().lower().startswith(("ws://", "wss://")) for u in urls.split(","))


@contextmanager
def absent(module: str, when: bool = True) -> Iterator[None]:
    """Within the block, ``import module`` fails (unless it was imported already)."""
    if not when or module in sys.modules:
        yield
        return
    sys.modules[module] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        if sys.modules.get(module, 0) is None:
            del sys.modules[module]


def import_bus(urls: str) -> None:
    """Import the NATS adapter (nats-py) without its websocket client when no URL needs it."""
    with absent(WEBSOCKET_CLIENT, when=not websockets(urls)):
        import kpng.bus.nats  # noqa: F401
