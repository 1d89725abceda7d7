"""ApiSimulator: the store and the HTTP server together, with controls for tests."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import tempfile
from collections import Counter
from collections.abc import Generator
from pathlib import Path

import uvicorn

from kpng_apisim.defaults import AllocatorConfig
from kpng_apisim.kubeconfig import write_kubeconfig
from kpng_apisim.server import ApiApp, ServerConfig
from kpng_apisim.store import Store
from kpng_apisim.tokens import Tokens

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    """uvicorn without signal handling: the simulator is embedded in someone's loop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


class ApiSimulator:
    """A Kubernetes API server for tests: ``url = await sim.start()``, then ``await sim.stop()``."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        kubeconfig_path: Path | str | None = None,
        bookmark_interval: float = 1.0,
        service_cidr: str = "10.96.0.0/16",
        max_history: int = 100_000,
    ) -> None:
        self.host = host
        self.port = port
        self.store = Store(allocator=AllocatorConfig(service_cidr), max_history=max_history)
        self.app = ApiApp(self.store, ServerConfig(bookmark_interval=bookmark_interval))
        self._own_dir: tempfile.TemporaryDirectory[str] | None = None
        if kubeconfig_path is None:
            self._own_dir = tempfile.TemporaryDirectory(prefix="kpng-apisim-")
            kubeconfig_path = Path(self._own_dir.name) / "kubeconfig"
        self.kubeconfig_path = Path(kubeconfig_path)
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def requests(self) -> Counter[tuple[str, str]]:
        """Requests served, keyed by (verb, resource), e.g. ``("list", "services")``."""
        return self.app.requests

    @property
    def tokens(self) -> Tokens:
        """Service-account tokens to issue, reviewed by ``TokenReview``."""
        return self.app.tokens

    def request_count(self, verb: str, resource: str) -> int:
        return self.app.requests[verb, resource]

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> str:
        """Serve on the configured port (0: a free one); write the kubeconfig; return the URL."""
        if self.running:
            return self.url
        sock = _bind(self.host, self.port)
        self.port = sock.getsockname()[1]
        self.app.server_address = f"{self.host}:{self.port}"
        config = uvicorn.Config(
            self.app,
            log_config=None,
            access_log=False,
            lifespan="off",
            ws="none",
            timeout_graceful_shutdown=2,
            timeout_keep_alive=30,
        )
        self._server = _Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="kpng-apisim")
        while not self._server.started:
            if self._task.done():
                sock.close()
                await self._task
                raise RuntimeError("the API simulator failed to start")
            await asyncio.sleep(0.01)
        write_kubeconfig(self.kubeconfig_path, self.url)
        log.info("api simulator started", extra={"url": self.url})
        return self.url

    async def stop(self) -> None:
        """Cut the watches, stop serving; the store is kept (see ``restart``)."""
        await self._shutdown()
        if self._own_dir is not None:
            self._own_dir.cleanup()
            self._own_dir = None

    async def _shutdown(self) -> None:
        server, task = self._server, self._task
        self._server = self._task = None
        self.store.cut_watches()
        if server is None or task is None:
            return
        server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout=5)
        except TimeoutError:
            server.force_exit = True
            await task
        log.info("api simulator stopped", extra={"url": self.url})

    async def restart(self, *, keep_store: bool = True) -> str:
        """Stop and start again on the same port, keeping or dropping the objects.

        Dropping the store also forgets the history, so every old resourceVersion is
        compacted (410) and the resourceVersion keeps growing, as after an etcd restore.
        """
        await self._shutdown()
        if not keep_store:
            self.store.reset()
        return await self.start()

    def compact(self) -> int:
        """Compact history at the current resourceVersion; older ones now get 410."""
        return self.store.compact()

    def cut_watches(self) -> int:
        """End every open watch stream, as a load balancer cut would; return how many."""
        return self.store.cut_watches()

    async def __aenter__(self) -> ApiSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
