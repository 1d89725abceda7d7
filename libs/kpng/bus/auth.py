"""How a component proves who it is to the bus, and whether the connection is protected.

Pure settings: every secret stays in a file whose path is given here (never a secret on
the command line or in a URL); :mod:`kpng.bus.nats` reads them when it connects. A
component needs credentials and TLS unless ``insecure`` says otherwise, explicitly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

INSECURE_WARNING = (
    "connecting to NATS without {missing}: anyone who can reach the NATS server can read "
    "every node's view and change what nodes program (--nats-insecure)"
)


@dataclass(frozen=True, slots=True)
class BusAuth:
    user: str = ""
    password_file: str = ""  # with user
    token_file: str = ""
    nkey_file: str = ""  # an nkey seed (SU...)
    creds_file: str = ""  # a .creds file: user JWT and nkey seed
    tls_ca: str = ""  # PEM bundle the server's certificate must chain to
    tls_cert: str = ""  # client certificate (mutual TLS), with tls_key
    tls_key: str = ""
    tls_server_name: str = ""  # the name to verify, when it is not the URL's host
    insecure: bool = False

    @property
    def method(self) -> str:
        """How this component authenticates ("" when it does not)."""
        for name, value in (
            ("creds", self.creds_file),
            ("nkey", self.nkey_file),
            ("token", self.token_file),
            ("user", self.user),
        ):
            if value:
                return name
        return ""

    def tls(self, urls: Sequence[str]) -> bool:
        return bool(self.tls_ca or self.tls_cert) or any(u.startswith("tls://") for u in urls)

    def errors(self) -> list[str]:
        """Settings that contradict each other."""
        found = []
        methods = [m for m in (self.creds_file, self.nkey_file, self.token_file, self.user) if m]
        if len(methods) > 1:
            found.append("give one of --nats-creds, --nats-nkey, --nats-token-file, --nats-user")
        if bool(self.user) != bool(self.password_file):
            found.append("--nats-user and --nats-password-file go together")
        if bool(self.tls_cert) != bool(self.tls_key):
            found.append("--nats-tls-cert and --nats-tls-key go together")
        return found

    def missing(self, urls: Sequence[str]) -> list[str]:
        """What a secure connection lacks: "credentials", "TLS"."""
        out = []
        if not self.method:
            out.append("credentials")
        if not self.tls(urls):
            out.append("TLS")
        return out


def split_urls(url: str) -> list[str]:
    """``nats://a:4222,nats://b:4222`` as a list."""
    return [u.strip() for u in url.split(",") if u.strip()]
