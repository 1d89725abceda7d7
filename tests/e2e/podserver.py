"""A pod's server: answers TCP and UDP on a port with "<name> <client ip>"."""

from __future__ import annotations

import asyncio
import sys


class Udp(asyncio.DatagramProtocol):
    def __init__(self, name: str) -> None:
        self.name = name
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        self.transport.sendto(f"{self.name} {addr[0]}".encode(), addr)


async def main(name: str, port: int) -> None:
    async def tcp(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        peer = w.get_extra_info("peername")[0]
        w.write(f"{name} {peer}".encode())
        await w.drain()
        w.close()

    server = await asyncio.start_server(tcp, "0.0.0.0", port)
    await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: Udp(name), local_addr=("0.0.0.0", port)
    )
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
