"""The auth-callout messages: nats-server's authorization request in, our response out.

nats-server (2.10+, ``authorization { auth_callout { ... } }``) sends every connection
attempt to ``$SYS.REQ.USER.AUTH`` as a JWT signed by the server; the answer is a JWT
signed by the callout's account key that carries either a user JWT (for the user nkey the
server generated for this connection, in the target account, with its permissions and
expiry) or an error. Pure: values in, text out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kpng.bus.permissions import Permissions
from kpng_auth.decide import Grant
from kpng_auth.natsjwt import SERVER, USER, JwtError, Signer, decode, public_key_bytes

SUBJECT = "$SYS.REQ.USER.AUTH"
REQUEST_AUDIENCE = "nats-authorization-request"


@dataclass(frozen=True, slots=True)
class AuthRequest:
    server_id: str  # the server's public key: the response's audience
    user_nkey: str  # the key the granted user JWT must be for
    client: str  # name and address, for logs
    token: str = ""
    user: str = ""
    password: str = ""


def parse_request(data: bytes) -> AuthRequest:
    """The request's fields once the server's signature checks; JwtError otherwise."""
    claims = decode(data.decode(errors="replace"), SERVER)
    nats = claims.get("nats")
    if claims.get("aud") != REQUEST_AUDIENCE or not isinstance(nats, dict):
        raise JwtError("not an authorization request")
    server = nats.get("server_id") or {}
    user_nkey = str(nats.get("user_nkey", ""))
    public_key_bytes(user_nkey, USER)  # raises JwtError for anything but a user key
    opts = nats.get("connect_opts") or {}
    info = nats.get("client_info") or {}
    client = f"{opts.get('name') or info.get('name') or '?'}@{info.get('host', '?')}"
    return AuthRequest(
        server_id=str(server.get("id") or claims["iss"]),
        user_nkey=user_nkey,
        client=client,
        token=str(opts.get("auth_token") or ""),
        user=str(opts.get("user") or ""),
        password=str(opts.get("pass") or ""),
    )


def _allow(subjects: tuple[str, ...]) -> dict[str, Any]:
    return {"allow": list(subjects)} if subjects else {"deny": [">"]}


def user_claims(grant: Grant, user_nkey: str, account: str, now: int) -> dict[str, Any]:
    """The user JWT's claims: ``grant``'s permissions in ``account`` until its expiry."""
    perms: Permissions = grant.permissions
    return {
        "sub": user_nkey,
        "name": grant.name,
        "aud": account,
        "iat": now,
        "exp": grant.expires,
        "nats": {
            "pub": _allow(perms.publish),
            "sub": _allow(perms.subscribe),
            "subs": -1,
            "data": -1,
            "payload": -1,
            "type": "user",
            "version": 2,
        },
    }


def response(
    signer: Signer,
    request: AuthRequest,
    now: int,
    *,
    grant: Grant | None = None,
    account: str = "",
    error: str = "",
) -> bytes:
    """The signed authorization response: the user JWT for ``grant``, or ``error``."""
    nats: dict[str, Any] = {"type": "authorization_response", "version": 2}
    if grant is not None:
        nats["jwt"] = signer.encode(user_claims(grant, request.user_nkey, account, now))
    else:
        nats["error"] = error or "not authorized"
    claims = {"sub": request.user_nkey, "aud": request.server_id, "iat": now, "nats": nats}
    return signer.encode(claims).encode()
