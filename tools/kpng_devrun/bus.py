"""`make run`'s bus: nats-server with kpng's roles, generated passwords and a throwaway CA.

Security is on in `make run` as everywhere we ship: each program connects over TLS with its
role's user (watcher, observer) and each agent with its node's own user (per-node identity:
only that node's subjects); nothing anonymous can publish a view.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kpng_auth.natsconfig import Settings, UserSpec, generate, node_user

ROLES = ("watcher", "agent", "observer")


@dataclass(frozen=True, slots=True)
class SecureBus:
    directory: Path
    config: Path
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"tls://{self.host}:{self.port}"

    def node_flags(self, node: str) -> list[str]:
        """What the agent of ``node`` needs to connect as that node only."""
        return [
            *("--nats", self.url, "--nats-user", node_user(node)),
            *("--nats-password-file", str(self.directory / "nodes" / f"{node}.password")),
            *("--nats-tls-ca", str(self.directory / "tls" / "ca.pem")),
        ]

    def flags(self, role: str) -> list[str]:
        """What a program of ``role`` needs to connect."""
        return [
            *("--nats", self.url, "--nats-user", role),
            *("--nats-password-file", str(self.directory / "users" / f"{role}.password")),
            *("--nats-tls-ca", str(self.directory / "tls" / "ca.pem")),
        ]


def secure_bus(
    directory: Path, host: str, port: int, prefix: str = "kpng", nodes: Sequence[str] = ()
) -> SecureBus:
    """Generate (or reuse) the configuration under ``directory`` for a server on host:port,
    with a user per node in ``nodes``."""
    users = tuple(UserSpec(role, role) for role in ROLES)
    hosts = tuple(dict.fromkeys((host, "127.0.0.1", "localhost")))
    settings = Settings(prefix, f"{host}:{port}", users, tls_generate=hosts, nodes=tuple(nodes))
    config = generate(settings, directory)
    return SecureBus(directory.resolve(), config.resolve(), host, port)
