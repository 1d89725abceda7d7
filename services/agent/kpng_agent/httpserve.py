"""A tiny HTTP/1.0-style server on asyncio streams for the agent's health and metrics
endpoints: GET only, one response per connection, no dependencies."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from kpng.dataplane.health import Response

log = logging.getLogger(__name__)
Handler = Callable[[str], Response]
REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}
NOT_FOUND = Response(404, b"404 page not found\n", "text/plain; charset=utf-8")


def split_address(text: str, default_port: int) -> tuple[str, int]:
    """``HOST:PORT``, ``[v6]:PORT``, ``HOST`` or ``:PORT`` -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or "]" in port:
        host, port = text, str(default_port)
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


def encode_response(r: Response, head_only: bool = False) -> bytes:
    lines = [
        f"HTTP/1.1 {r.status} {REASONS.get(r.status, 'Unknown')}",
        f"Content-Type: {r.content_type}",
        f"Content-Length: {len(r.body)}",
        "X-Content-Type-Options: nosniff",
        "Connection: close",
        *(f"{k}: {v}" for k, v in r.headers),
    ]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode()
    return head if head_only else head + r.body


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str]:
    request = (await reader.readline()).decode("latin-1").split()
    while (await reader.readline()) not in (b"\r\n", b"\n", b""):
        pass
    if len(request) < 2:
        raise ValueError("malformed request line")
    return request[0], request[1].split("?", 1)[0]


class HttpServer:
    """Serves ``handler(path)`` on host:port until :meth:`close`."""

    def __init__(self, host: str, port: int, handler: Handler) -> None:
        self.host, self.port, self.handler = host, port, handler
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        if self.port == 0:
            self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            method, path = await asyncio.wait_for(_read_request(reader), 10)
            if method not in ("GET", "HEAD"):
                response = Response(405, b"", "text/plain")
            else:
                response = self.handler(path)
            writer.write(encode_response(response, method == "HEAD"))
            await writer.drain()
        except (ValueError, OSError, TimeoutError) as exc:
            log.debug("bad request on %s:%d: %s", self.host, self.port, exc)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
