"""A pod's server: answers TCP and UDP on each given port with "<name> <client ip>" (in
HTTP when a TCP client starts with a GET line, e.g. curl; else after its first line).
A TCP client whose first line is ``ECHO <n>`` gets that answer and a newline, then the
``n`` bytes it sends next, echoed (large transfers through a service). One whose first
line is ``PORT`` gets "<name> <client ip> <port it reached>" (which target port served);
``ADDR``, the address it reached (which of a pod's several addresses served).

    ip netns exec POD python3 podserver.py NAME PORT [PORT...]
"""

from __future__ import annotations

import asyncio
import socket
import sys
from typing import cast


class Udp(asyncio.DatagramProtocol):
    def __init__(self, name: str) -> None:
        self.name = name
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        self.transport.sendto(f"{self.name} {addr[0]}".encode(), addr)


def udp_sockets(port: int) -> list[socket.socket]:
    """UDP on ``port`` for IPv4 and (where the namespace has it) IPv6, each family apart so
    that an IPv4 client reads as itself, not as a mapped IPv6 address."""
    v4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    v4.bind(("0.0.0.0", port))
    v6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    v6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    v6.bind(("::", port))
    return [v4, v6]


async def main(name: str, ports: list[int]) -> None:
    async def tcp(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        answer = f"{name} {w.get_extra_info('peername')[0]}"
        try:
            first = await asyncio.wait_for(r.readline(), 2)
        except (TimeoutError, OSError):
            first = b""
        if first.startswith(b"ECHO "):
            size = int(first.split()[1])
            w.write(answer.encode() + b"\n")
            try:
                while size > 0 and (chunk := await r.read(min(size, 1 << 16))):
                    size -= len(chunk)
                    w.write(chunk)
                    await w.drain()
            except OSError:
                pass
        elif first.strip() == b"ADDR":
            w.write(str(w.get_extra_info("sockname")[0]).encode())
        elif first.strip() == b"PORT":
            w.write(f"{answer} {w.get_extra_info('sockname')[1]}".encode())
        elif first.startswith((b"GET ", b"HEAD ")):  # curl: answer in HTTP
            body = answer + "\n"
            w.write(f"HTTP/1.0 200 OK\r\nContent-Length: {len(body)}\r\n\r\n{body}".encode())
        else:
            w.write(answer.encode())
        try:
            await w.drain()
        finally:
            w.close()

    # every family: None binds IPv4 and IPv6 (v6-only) sockets alike
    servers = [await asyncio.start_server(tcp, None, p) for p in ports]
    loop = asyncio.get_running_loop()
    for p in ports:
        for sock in udp_sockets(p):
            await loop.create_datagram_endpoint(lambda: Udp(name), sock=sock)
    print("ready", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], [int(p) for p in sys.argv[2:]]))
