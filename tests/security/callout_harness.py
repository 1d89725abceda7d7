"""A bus behind auth callout for tests and the storm measurement: nats-server configured for
the callout, the API simulator issuing and reviewing tokens, kpng-auth's responder.

    python -m tests.security.callout_harness --connections 1000   # the storm figure
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from tempfile import TemporaryDirectory

from kpng.bus.auth import BusAuth
from kpng.bus.identity import node_inbox
from kpng.bus.nats import NatsBus, connect
from kpng.bus.subjects import Subjects
from kpng_apisim import ApiSimulator
from kpng_auth.calloutconf import CalloutConf, render_callout
from kpng_auth.decide import Policy
from kpng_auth.kube import KubeReviewer, api_client
from kpng_auth.natsjwt import Signer, new_seed
from kpng_auth.respond import Responder
from kpng_devrun.procs import ProcessGroup, free_port, nats_server_argv, wait_for_port
from tests.integration.harness import until

AGENT_SA = "kube-system/kpng-agent"
WATCHER_SA = "kube-system/kpng-watcher"


@dataclass
class CalloutBus:
    directory: Path
    url: str
    sim: ApiSimulator
    signer: Signer
    policy: Policy
    responder_task: asyncio.Task[None] | None = None
    responder: Responder | None = None
    _responder_bus: NatsBus | None = None
    _files: int = field(default=0)

    async def start_responder(self) -> Responder:
        auth = BusAuth(
            user="kpng-auth", password_file=str(self.directory / "auth.pw"), insecure=True
        )
        bus = await connect(self.url, name="kpng-auth", auth=auth, retry_forever=False)
        api = await api_client(str(self.sim.kubeconfig_path))
        responder = Responder(bus, KubeReviewer(api), self.policy, self.signer, "KPNG")
        self._responder_bus, self.responder = bus, responder

        async def serve() -> None:
            async with api:
                await responder.run()

        self.responder_task = asyncio.create_task(serve())
        await until(lambda: responder.readiness.check().ready)  # the server has its SUB
        return responder

    async def stop_responder(self) -> None:
        if self.responder_task is not None:
            self.responder_task.cancel()
            await asyncio.gather(self.responder_task, return_exceptions=True)
            self.responder_task = None
        if self._responder_bus is not None:
            await self._responder_bus.close()
            self._responder_bus = None

    def token_file(self, token: str) -> Path:
        self._files += 1
        path = self.directory / f"token-{self._files}"
        path.write_text(token + "\n")
        return path

    def agent_token(self, node: str, **kw: object) -> Path:
        return self.token_file(self.sim.tokens.issue(AGENT_SA, node, **kw))  # type: ignore[arg-type]

    async def connect(
        self, token_file: Path, node: str = "", retry_forever: bool = False, timeout: float = 2
    ) -> NatsBus:
        """A connection presenting ``token_file`` (an agent's inbox if ``node``)."""
        return await connect(
            self.url,
            name=f"kpng-agent-{node}" if node else "kpng",
            auth=BusAuth(token_file=str(token_file), insecure=True),
            retry_forever=retry_forever,
            connect_timeout=timeout,
            inbox_prefix=node_inbox(Subjects(), node) if node else "",
        )


def callout_files(directory: Path, issuer: str) -> Path:
    """kpng-auth's NATS password file (``auth.pw``, "auth-secret") and a nats-server config
    that sends every connection to its callout, signed by ``issuer``: the config's path."""
    (directory / "auth.pw").write_text("auth-secret\n")
    conf = directory / "nats.conf"
    conf.write_text(render_callout(CalloutConf(issuer, "kpng-auth", "auth-secret")))
    return conf


@contextlib.asynccontextmanager
async def callout_bus(directory: Path, responder: bool = True) -> AsyncIterator[CalloutBus]:
    signer = Signer(new_seed())
    conf = callout_files(directory, signer.public)
    port = free_port()
    policy = Policy(Subjects(), agent=AGENT_SA, roles={WATCHER_SA: "watcher"}, max_lifetime=600)
    with ProcessGroup(directory / "logs") as group:
        group.start("nats-server", nats_server_argv(port, conf))
        wait_for_port("127.0.0.1", port)
        async with ApiSimulator(kubeconfig_path=directory / "kubeconfig") as sim:
            bus = CalloutBus(directory, f"nats://127.0.0.1:{port}", sim, signer, policy)
            if responder:
                await bus.start_responder()
            try:
                yield bus
            finally:
                await bus.stop_responder()


async def storm(bus: CalloutBus, connections: int) -> tuple[float, list[NatsBus]]:
    """``connections`` agents of as many nodes connecting at once; seconds until all are.
    As agents do, each tries again when the callout has not admitted it in time (nats-server
    PINGs a client it has not admitted 2 to 2.4 s after accepting it; see kpng.bus.nats)."""
    files = [bus.agent_token(f"node-{i}") for i in range(connections)]
    started = time.perf_counter()
    conns = await asyncio.gather(
        *(bus.connect(f, f"node-{i}", True, timeout=30) for i, f in enumerate(files))
    )
    return time.perf_counter() - started, list(conns)


async def _clients(url: str, tokens: Path, connections: int) -> None:
    """The agents' side of the storm (its own process, as agents are on their own nodes)."""
    files = [tokens / f"token-{i}" for i in range(connections)]
    started = time.perf_counter()
    conns = await asyncio.gather(
        *(
            connect(
                url,
                name=f"kpng-agent-node-{i}",
                auth=BusAuth(token_file=str(f), insecure=True),
                retry_forever=True,  # as agents: a callout answer after ~2 s is a retry
                connect_timeout=30,
                inbox_prefix=node_inbox(Subjects(), f"node-{i}"),
            )
            for i, f in enumerate(files)
        )
    )
    assert all(c.connected for c in conns)
    print(f"{time.perf_counter() - started:.3f}", flush=True)
    await asyncio.gather(*(c.close() for c in conns))


async def _measure(connections: int) -> None:
    """kpng-auth, the simulator and nats-server here; the agents in a child process."""
    with TemporaryDirectory(prefix="kpng-storm-") as tmp:
        async with callout_bus(Path(tmp)) as bus:
            tokens = Path(tmp) / "tokens"
            tokens.mkdir()
            for i in range(connections):
                token = bus.sim.tokens.issue(AGENT_SA, f"node-{i}")
                (tokens / f"token-{i}").write_text(token + "\n")
            child = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tests.security.callout_harness",
                "--clients",
                bus.url,
                str(tokens),
                str(connections),
                stdout=asyncio.subprocess.PIPE,
            )
            out, _ = await child.communicate()
            assert bus.responder is not None and child.returncode == 0, out
            granted = bus.responder.metrics.granted.labels("node")._value.get()
            print(
                f"{connections} agents authorized through the callout in "
                f"{float(out.decode().split()[-1]):.2f}s ({granted:.0f} grants, "
                f"{bus.sim.tokens.reviews} TokenReviews)"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--clients", nargs=3, metavar=("URL", "TOKENS", "N"))
    args = parser.parse_args()
    if args.clients:
        url, tokens, n = args.clients
        asyncio.run(_clients(url, Path(tokens), int(n)))
    else:
        asyncio.run(_measure(args.connections))
