"""nats-server's configuration for auth callout (pure text).

Two accounts: ``AUTH`` holds only kpng-auth's own user (it answers the callout), and the
bus account (``KPNG``) where every user kpng-auth grants is placed. Everyone else
connecting goes through the callout; ``issuer`` is the public key of the account nkey
kpng-auth signs with (``kpng-auth keys`` prints it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

AUTH_ACCOUNT = "AUTH"
BUS_ACCOUNT = "KPNG"


@dataclass(frozen=True, slots=True)
class CalloutConf:
    issuer: str  # the account public key (A...) kpng-auth signs with
    auth_user: str
    auth_password: str
    account: str = BUS_ACCOUNT
    xkey: str = ""  # optional: the curve key requests are encrypted for (not used yet)
    # seconds a connection may wait for its answer (nats-server's default, 2, makes a
    # connection storm's late answers wasted work: the client retries, the callout answers twice)
    timeout: float = 10.0


def render_callout(conf: CalloutConf) -> str:
    """The ``accounts`` and ``authorization`` blocks."""
    q = json.dumps
    return "\n".join(
        [
            "accounts {",
            f"  {AUTH_ACCOUNT}: {{ users: [ {{user: {q(conf.auth_user)}, "
            f"password: {q(conf.auth_password)}}} ] }}",
            f"  {conf.account}: {{}}",
            "}",
            "authorization {",
            f"  timeout: {conf.timeout:g}",
            "  auth_callout {",
            f"    issuer: {q(conf.issuer)}",
            f"    auth_users: [ {q(conf.auth_user)} ]",
            f"    account: {AUTH_ACCOUNT}",
            "  }",
            "}",
            "",
        ]
    )
