"""The cold storm seen from the watcher's side: N full snapshots requested at once, their
replies counted (not decoded) by one raw NATS reader.

The simulated agents of the benchmark share two cores with the watcher and nats-server, so
their cold storm measures their own decoding more than the watcher. This reader speaks the
NATS text protocol on a plain socket and only parses message headers (and the first bytes of
each reply, for its chunk count), so what it measures is the watcher assembling and sending
N views and nats-server delivering them: the part of a cold storm that does not spread over
the N machines of a real cluster.
"""

from __future__ import annotations

import json
import socket
import ssl
import time
from dataclasses import dataclass, field
from urllib.parse import urlparse

import msgpack

from kpng.bus.auth import BusAuth
from kpng.bus.codec import (
    COMPACT_ENDPOINTS,
    COMPRESSED_OPS,
    PORT_MARKS,
    SnapshotRequest,
    encode,
)
from kpng.bus.subjects import Subjects

INBOX = "_INBOX.kpngscale.drain"


@dataclass(slots=True)
class Drained:
    seconds: float = 0.0
    replies: int = 0
    nodes_complete: int = 0
    bytes: int = 0
    chunks_left: dict[str, int] = field(default_factory=dict)


def _chunks(payload: bytes) -> int:
    """The ``chunks`` field of a snapshot chunk, read from its first bytes."""
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(payload[:256])
    for _ in range(unpacker.read_map_header()):
        key = unpacker.unpack()
        if key in ("ops", "zops"):
            break
        value = unpacker.unpack()
        if key == "chunks":
            return int(value)
    raise ValueError("a reply without a chunk count")


class _Reader:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()
        self._chunk = bytearray(1 << 18)
        self._view = memoryview(self._chunk)

    def line(self) -> bytes:
        while (end := self.buf.find(b"\r\n")) < 0:
            self._fill()
        out = bytes(self.buf[:end])
        del self.buf[: end + 2]
        return out

    def payload(self, size: int) -> tuple[bytes, int]:
        """The first bytes of a payload (and its size), the rest skipped."""
        head = bytes(self.buf[: min(size, 256)])
        while len(head) < min(size, 256):
            self._fill()
            head = bytes(self.buf[: min(size, 256)])
        left = size + 2
        while left > 0:
            if not self.buf:
                self._fill()
            n = min(left, len(self.buf))
            del self.buf[:n]
            left -= n
        return head, size

    def _fill(self) -> None:
        # into one reused buffer: an SSL socket's recv(n) allocates n bytes for each TLS
        # record (16 KB), and recv(4 MiB) made the reader 3x slower than the data it reads
        n = self.sock.recv_into(self._chunk)
        if not n:
            raise ConnectionError("nats-server closed the connection")
        self.buf += self._view[:n]


def drain(
    url: str,
    nodes: list[str],
    prefix: str = "kpng",
    timeout: float = 600.0,
    auth: BusAuth | None = None,
) -> Drained:
    """Request every node's full snapshot at once, as the agents ask for it (compact and
    compressed); time until all replies are in. With ``auth``'s user and CA: TLS and a
    password, as the agents connect."""
    parsed = urlparse(url)
    subjects = Subjects(prefix)
    out = Drained(chunks_left={})
    host = parsed.hostname or "127.0.0.1"
    with socket.create_connection((host, parsed.port or 4222)) as plain:
        plain.settimeout(timeout)
        sock = plain
        reader = _Reader(sock)
        reader.line()  # INFO, in clear; then the TLS upgrade, as NATS clients do it
        options: dict[str, object] = {"verbose": False, "pedantic": False}
        options["name"] = "kpng-scale-drain"
        if auth is not None and auth.tls_ca:
            sock = ssl.create_default_context(cafile=auth.tls_ca).wrap_socket(
                plain, server_hostname=host
            )
            reader = _Reader(sock)
        if auth is not None and auth.user:
            with open(auth.password_file) as f:
                options.update(user=auth.user, **{"pass": f.read().strip()})
        sock.sendall(f"CONNECT {json.dumps(options)}\r\nSUB {INBOX}.* 1\r\nPING\r\n".encode())
        while reader.line() != b"PONG":
            pass
        request = encode(SnapshotRequest(accept=(COMPACT_ENDPOINTS, COMPRESSED_OPS, PORT_MARKS)))
        started = time.perf_counter()
        batch = bytearray()
        for i, node in enumerate(nodes):
            subject = subjects.node_snapshot(node)
            batch += f"PUB {subject} {INBOX}.{i} {len(request)}\r\n".encode() + request + b"\r\n"
        sock.sendall(batch)
        while out.nodes_complete < len(nodes):
            line = reader.line()
            if line == b"PING":
                sock.sendall(b"PONG\r\n")
                continue
            if not line.startswith(b"MSG "):
                continue
            parts = line.split()
            inbox, size = parts[1].decode(), int(parts[-1])
            head, size = reader.payload(size)
            out.replies += 1
            out.bytes += size
            if size == 0:
                raise RuntimeError(f"no watcher answered {inbox}")
            left = out.chunks_left.get(inbox)
            left = (_chunks(head) if left is None else left) - 1
            out.chunks_left[inbox] = left
            if left == 0:
                out.nodes_complete += 1
        out.seconds = time.perf_counter() - started
    out.chunks_left = {}
    return out
