"""A TCP proxy in front of nats-server that can lose a message: a dropping path for one client.

It reads the server's side of the NATS protocol (``MSG``/``HMSG`` frames, other lines passed
on as they are) so that it can leave out whole messages; the client's side is copied as is.
It runs its own event loop in a thread, so that blocking tests (which wait with sleeps) and
the measuring command can use it alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable

Match = Callable[[str, bytes], bool]  # (subject, payload with any headers): lose it?


class DroppingProxy:
    """``port`` forwards to ``127.0.0.1:upstream``; :meth:`drop_next` loses one message."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.port = 0
        self.dropped: list[tuple[str, float]] = []  # (subject, monotonic time) of each loss
        self.seen: list[tuple[str, float]] = []  # (subject, time) of each message watched
        self._drop: list[Match] = []
        self._watch: list[Match] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    def start(self) -> int:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._listen(), self._loop)
        self.port = future.result(timeout=5)
        return self.port

    def drop_next(self, match: Match) -> None:
        """Lose the next message the server sends (to any client behind) that ``match``es."""
        with self._lock:
            self._drop.append(match)

    def watch(self, match: Match) -> None:
        """Note in :attr:`seen` when messages that ``match`` pass (until :meth:`close`)."""
        with self._lock:
            self._watch.append(match)

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def __enter__(self) -> DroppingProxy:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def _listen(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", self.upstream)
        except OSError:
            client_w.close()
            return
        try:
            await asyncio.gather(self._copy(client_r, server_w), self._messages(server_r, client_w))
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:  # closed: the connection ends here, quietly
            pass
        finally:
            for w in (client_w, server_w):
                w.close()
                with contextlib.suppress(OSError):
                    await w.wait_closed()

    async def _copy(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        while data := await r.read(65536):
            w.write(data)
            await w.drain()
        w.close()

    async def _messages(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        """The server's side, frame by frame: ``MSG subject sid [reply] size`` and ``HMSG
        subject sid [reply] header-size size`` carry ``size`` bytes and CRLF after the line."""
        while True:
            line = await r.readuntil(b"\r\n")
            frame = line
            if line.startswith((b"MSG ", b"HMSG ")):
                words = line.split()
                payload = await r.readexactly(int(words[-1]) + 2)
                if self._take(words[1].decode(), payload[:-2]):
                    continue
                frame += payload
            w.write(frame)
            await w.drain()

    def _take(self, subject: str, payload: bytes) -> bool:
        with self._lock:
            if any(match(subject, payload) for match in self._watch):
                self.seen.append((subject, time.monotonic()))
            for match in self._drop:
                if match(subject, payload):
                    self._drop.remove(match)
                    self.dropped.append((subject, time.monotonic()))
                    return True
            return False
