"""How bench-scale's processes reach NATS: as deployed (kpng's roles, passwords, TLS), or
with --insecure without them, to measure what security costs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kpng.bus.auth import BusAuth
from kpng.bus.permissions import Permissions
from kpng_auth.natsconfig import Settings, UserSpec, generate

CONTROL = "kpngscale.ctl.>"  # the bench's own request/reply subjects (kpng_scale.control)
# every bench process also serves or asks on the control subjects, replying on inboxes
_ALSO = Permissions((CONTROL, "_INBOX.>"), (CONTROL,))
USERS = (
    UserSpec("watcher", "watcher", also=_ALSO),
    UserSpec("agent", "agent", also=_ALSO),
    UserSpec("bench", "observer", also=_ALSO),  # the controller, and the cold-storm reader
)


@dataclass(frozen=True, slots=True)
class Access:
    url: str
    directory: Path | None = None
    config: Path | None = None

    def auth(self, user: str) -> BusAuth:
        if self.directory is None:
            return BusAuth(insecure=True)
        return BusAuth(
            user=user,
            password_file=str(self.directory / "users" / f"{user}.password"),
            tls_ca=str(self.directory / "tls" / "ca.pem"),
        )

    def flags(self, user: str) -> list[str]:
        auth = self.auth(user)
        if auth.insecure:
            return ["--nats", self.url, "--nats-insecure"]
        return [
            *("--nats", self.url, "--nats-user", user),
            *("--nats-password-file", auth.password_file, "--nats-tls-ca", auth.tls_ca),
        ]


def secure_access(directory: Path, port: int, extra: str) -> Access:
    settings = Settings(
        "kpng", f"127.0.0.1:{port}", USERS, tls_generate=("127.0.0.1",), extra=extra
    )
    config = generate(settings, directory)
    return Access(f"tls://127.0.0.1:{port}", directory, config)
