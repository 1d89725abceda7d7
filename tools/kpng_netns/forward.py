"""A TCP forwarder from the root namespace into a network namespace, with no interface in
the root namespace: each connection to the other side is opened by a worker thread that
enters the target namespace (``setns``) just for the ``connect`` and comes back; a socket
stays in the namespace it was created in, so bytes then flow through ordinary asyncio
streams. Used by ``make run`` to show the observer (running in the infra namespace) on
127.0.0.1:8080."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import socket

log = logging.getLogger(__name__)
CLONE_NEWNET = 0x40000000


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def connect_in(ns: str, host: str, port: int, timeout: float = 5.0) -> socket.socket:
    """A TCP connection to host:port made from inside namespace ``ns`` (call from a worker
    thread: only the calling thread switches namespaces, and it switches back)."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/var/run/netns/{ns}", os.O_RDONLY)
    try:
        _setns(target)
        try:
            return socket.create_connection((host, port), timeout)
        finally:
            _setns(own)
    finally:
        os.close(own)
        os.close(target)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            writer.close()


async def forward(listen_host: str, listen_port: int, ns: str, host: str, port: int) -> None:
    """Serve listen_host:listen_port (root namespace) -> host:port in ``ns``, forever."""

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            sock = await asyncio.to_thread(connect_in, ns, host, port)
            sock.setblocking(False)
            ur, uw = await asyncio.open_connection(sock=sock)
        except OSError as exc:
            log.warning("forward to %s:%d in %s failed: %s", host, port, ns, exc)
            w.close()
            return
        await asyncio.gather(_pipe(r, uw), _pipe(ur, w))

    server = await asyncio.start_server(handle, listen_host, listen_port)
    async with server:
        await server.serve_forever()
